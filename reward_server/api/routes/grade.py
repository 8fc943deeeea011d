"""`POST /v1/grade` and `GET /v1/backends`."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from reward_server.api.deps import Service
from reward_server.schemas import BackendInfo, BackendsResponse, ErrorResponse, GradeRequest, GradeResponse

router = APIRouter(prefix="/v1", tags=["grading"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (413, 422, 503)}


@router.post("/grade", response_model=GradeResponse, responses=ERRORS)
async def grade(request: GradeRequest, service: Service) -> GradeResponse:
    """Grade groups of completions; the response keeps the order of groups and completions."""
    started = time.perf_counter()
    try:
        return await service.grade(request)
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
