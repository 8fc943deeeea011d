"""The FastAPI application factory.

Run it with `reward-server serve` (or `uvicorn --factory reward_server.api.app:create_app`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from reward_server.api.auth import BearerAuth
from reward_server.api.body_limit import BodySizeLimit
from reward_server.api.request_body import RequestBodyReader, body_rules
from reward_server.api.routes import compat_openrlhf, grade, health
from reward_server.backends.registry import create_backends
from reward_server.cache import build_cache
from reward_server.errors import Overloaded, RewardError
from reward_server.grading import GradingService
from reward_server.metrics import Metrics, metrics_port
from reward_server.schemas import RewardSpec
from reward_server.settings import RewardSettings, get_settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def build_service(settings: RewardSettings) -> AsyncIterator[GradingService]:
    """Start backends and cache for the duration of the block (the app's lifespan, or the CLI)."""
    backends = create_backends(settings)
    cache = build_cache(settings)
    started = []
    try:
        for backend in backends.values():
            await backend.start()
            started.append(backend)
        log.info("backends ready: %s; cache: %s", ", ".join(sorted(backends)), type(cache).__name__)
        yield GradingService(
            backends,
            cache,
            RewardSpec(correct=settings.reward_correct, incorrect=settings.reward_incorrect),
            Metrics(),
            settings.max_completions_per_request,
            settings.max_groups_per_request,
        )
    finally:
        for backend in started:
            await backend.close()
        await cache.close()


def parse_memory_mb(settings: RewardSettings) -> int:
    """Address space of a body reader: the densest JSON (`[{},{},...]`) takes about 30 times its size as
    Python objects, so that a body within the limit is read and refused naming its field (not a 413)."""
    return max(1024, int(48 * settings.max_body_mb))


def create_app(settings: RewardSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with build_service(settings) as service:
            rules = body_rules(
                service.backends, settings.max_groups_per_request, settings.max_completions_per_request
            )
            reader = RequestBodyReader(rules, settings.parse_workers, parse_memory_mb(settings))
            await reader.start()
            app.state.service = service
            app.state.body_reader = reader
            try:
                with metrics_port(settings.metrics_port, settings.host, service.metrics.registry):
                    yield
            finally:
                await reader.close()

    app = FastAPI(
        title="Inference-aware RL reward server",
        version="0.1.0",
        description="Grades k-sample groups of completions (MATH answers, code) for RL training.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(grade.router)
    app.include_router(health.router)
    app.include_router(compat_openrlhf.router)
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(RewardError, _reward_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(BodySizeLimit, max_bytes=int(settings.max_body_mb * 1024 * 1024))
    if settings.api_keys:  # added last, so outermost: a request without a key is refused before its body
        app.add_middleware(BearerAuth, keys=settings.api_keys)
    log.info(
        "authentication: %s",
        f"{len(settings.api_keys)} API key(s)" if settings.api_keys else "none (no REWARD_API_KEYS)",
    )
    return app


class _ErrorResponse(JSONResponse):
    """ASCII JSON: an error that quotes the request (a path, a name) cannot fail to encode, not even a lone
    surrogate (`JSONResponse` writes UTF-8, which has none)."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def _error(
    status: int, kind: str, message: str, fields: list[dict[str, object]], **headers: str
) -> JSONResponse:
    return _ErrorResponse(
        {"error": kind, "message": message, "fields": fields}, status_code=status, headers=headers
    )


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in exc.errors()
    ]
    first = fields[0] if fields else {"loc": ["body"], "msg": "invalid"}
    where = ".".join(str(part) for part in first["loc"])
    if first.get("type") == "json_invalid":
        message = f"malformed JSON body: {first['msg']} at {where}"
    else:
        message = f"invalid request: {where}: {first['msg']}"
    _count(request, "invalid_request")
    return _error(422, "invalid_request", message, fields)


async def _reward_error(request: Request, exc: RewardError) -> JSONResponse:
    _count(request, exc.kind)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Overloaded) else {}
    return _error(exc.http_status, exc.kind, str(exc), list(getattr(exc, "fields", [])), **headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Errors raised by the framework itself (unreadable body, unknown path, wrong method), located at
    what is wrong: the path of a 404, the method of a 405, else the body."""
    kind = "invalid_request" if exc.status_code == 400 else "http_error"
    _count(request, kind)
    headers = exc.headers or {}
    where, message = "body", str(exc.detail)
    if exc.status_code == 400:
        message = f"{exc.detail} (the body must be UTF-8 JSON)"
    elif exc.status_code == 404:
        where, message = "path", f"no route {request.url.path[:200]!r} (the routes are listed at /docs)"
    elif exc.status_code == 405:
        allowed = headers.get("Allow") or headers.get("allow") or "another method"
        where, message = "method", f"{request.method} is not allowed on {request.url.path}; use {allowed}"
    return _error(exc.status_code, kind, message, [{"loc": [where], "msg": str(exc.detail)}], **headers)


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    """The client left (or was cut off by the read deadline) before its body arrived: nobody to answer."""
    log.info("client gone before its request body arrived: %s %s", request.method, request.url.path)
    return _error(
        400, "client_disconnected", "the request body never arrived", [{"loc": ["body"], "msg": "incomplete"}]
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    _count(request, "internal")
    return _error(500, "internal", "internal error; it has been logged", [])


def _count(request: Request, kind: str) -> None:
    service = getattr(request.app.state, "service", None)
    if service is not None:
        service.metrics.rejected.labels(kind).inc()
