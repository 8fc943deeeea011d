"""FastAPI dependencies: the objects the lifespan put on `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from reward_server.api.request_body import RequestBodyReader
from reward_server.errors import UnsupportedEncoding
from reward_server.grading import GradingService
from reward_server.settings import RewardSettings


def get_service(request: Request) -> GradingService:
    service: GradingService = request.app.state.service
    return service


def get_body_reader(request: Request) -> RequestBodyReader:
    reader: RequestBodyReader = request.app.state.body_reader
    return reader


def get_app_settings(request: Request) -> RewardSettings:
    settings: RewardSettings = request.app.state.settings
    return settings


def refuse_encoded_body(request: Request) -> None:
    """Raise UnsupportedEncoding for a body sent compressed (`Content-Encoding: gzip`): bodies are read as
    they come, and a gzip body would otherwise be refused as "not UTF-8", naming the body, not the header."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        message = f"Content-Encoding {encoding[:64]!r} is not read: send the body uncompressed"
        raise UnsupportedEncoding(message, [{"loc": ["header", "content-encoding"], "msg": message}])


Service = Annotated[GradingService, Depends(get_service)]
BodyReader = Annotated[RequestBodyReader, Depends(get_body_reader)]
Settings = Annotated[RewardSettings, Depends(get_app_settings)]
PLAIN_BODY = [Depends(refuse_encoded_body)]  # `dependencies=` of the routes that read a body
