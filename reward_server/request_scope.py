"""Which request a piece of grading work belongs to: a context variable set by `GradingService.grade`.

A backend grades one group at a time, but a shared executor must see requests: the job queue shares its
workers fairly between requests (one large batch must not starve a small request) and refuses a request as a
whole before enqueuing any of it. The groups of a request run in tasks created inside the scope, which copy
the context, so each of them sees the scope.

    async with request_scope({"code": 512, "math": 64}) as scope:
        ...                                  # current_scope() is `scope` here and in tasks created here
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RequestScope:
    """One request: a unique key, its completions per backend, and executors' per-request state."""

    key: str
    completions: Mapping[str, int]
    state: dict[object, Any] = field(default_factory=dict)
    _on_close: list[Callable[[], None]] = field(default_factory=list)

    def completions_for(self, backend: str) -> int:
        return self.completions.get(backend, 0)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the request ends (it must not block: schedule async work instead)."""
        self._on_close.append(callback)


_current: ContextVar[RequestScope | None] = ContextVar("reward_request_scope", default=None)


def current_scope() -> RequestScope | None:
    return _current.get()


@asynccontextmanager
async def request_scope(completions: Mapping[str, int]) -> AsyncIterator[RequestScope]:
    scope = RequestScope(uuid.uuid4().hex, dict(completions))
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
        for callback in scope._on_close:
            try:
                callback()
            except Exception:  # one executor's cleanup must not hide the request's own outcome
                log.exception("request scope: a close callback failed")
