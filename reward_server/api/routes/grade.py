"""`POST /v1/grade` and `GET /v1/backends`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request, Response

from reward_server.api.deps import PLAIN_BODY, BodyReader, Service
from reward_server.schemas import BackendInfo, BackendsResponse, ErrorResponse, GradeRequest, GradeResponse

router = APIRouter(prefix="/v1", tags=["grading"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (413, 415, 422, 503)}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` inlined (OpenAPI resolves `#/$defs/...` from the document's root)."""
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        return [inline(item) for item in node] if isinstance(node, list) else node

    result: dict[str, Any] = inline(schema)
    return result


# The body is read by `RequestBodyReader` (off the event loop), not by FastAPI: it is documented here.
REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_refs(GradeRequest.model_json_schema())}},
    }
}


@router.post(
    "/grade",
    response_model=GradeResponse,
    responses=ERRORS,
    openapi_extra=REQUEST_BODY,
    dependencies=PLAIN_BODY,
)
async def grade(request: Request, service: Service, reader: BodyReader) -> Response:
    """Grade groups of completions (a `GradeRequest`); the response keeps their order."""
    started = time.perf_counter()
    try:
        graded = await service.grade(await reader.read(await request.body()))
        # Serialized in a thread (up to 100,000 results), and not validated again by FastAPI.
        return Response(await asyncio.to_thread(graded.model_dump_json), media_type="application/json")
    finally:
        service.metrics.request_seconds.observe(time.perf_counter() - started)


@router.get("/backends", response_model=BackendsResponse)
async def backends(service: Service) -> BackendsResponse:
    """Registered backends, their versions and the JSON schema of their `reference`."""
    return BackendsResponse(
        backends=[
            BackendInfo(
                name=backend.name,
                version=backend.version,
                description=backend.description,
                reference_schema=backend.reference_model.model_json_schema(),
            )
            for backend in sorted(service.backends.values(), key=lambda b: b.name)
        ]
    )
