"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reward_server.api.deps import BodyReader, Service

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 while the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(service: Service, reader: BodyReader) -> JSONResponse:
    """200 when every backend's workers and the body readers are up and the cache answers; 503 otherwise."""
    checks = {f"backend:{name}": backend.ready for name, backend in service.backends.items()}
    checks["body_reader"] = reader.ready
    checks["cache"] = await service.cache.ping()
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(service: Service) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
