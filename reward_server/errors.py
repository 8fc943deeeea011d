"""Errors of the reward server.

    RewardError
    ├── BadRequest            the request is wrong (HTTP 422 or 400), names the offending field
    │   ├── BackendNotFound   the group names a backend that is not registered (HTTP 422)
    │   ├── BodyTooLarge      the body is too big or too complex to read (HTTP 413)
    │   └── UnsupportedEncoding  the body is compressed (Content-Encoding), which is not read (HTTP 415)
    ├── DuplicateBackend      two backends claim one name (start-up)
    ├── InvalidBackend        a backend (a plug-in) cannot be loaded or lacks what the server needs (start-up)
    ├── GradingFailed         a compat route whose trainer cannot drop a sample got an `error` verdict (503)
    └── Overloaded            too much work in flight (HTTP 503 with Retry-After)
        ├── QueueUnavailable  the code job queue (Redis) is unreachable (HTTP 503 with Retry-After)
        │   └── QueueStorageFull  the queue's Redis is out of memory and refuses writes (HTTP 503)
        └── QueueFull         the code job queue is too deep (HTTP 429 with Retry-After)

Grading outcomes are data (`schemas.Status`), never exceptions: an answer that fails to parse is a
verdict, and an infrastructure failure is the status `error` of that completion.
"""

from __future__ import annotations

from typing import Any


class RewardError(Exception):
    """Base class of the reward server's exceptions."""

    http_status = 500
    kind = "internal"


class BadRequest(RewardError):
    http_status = 422
    kind = "invalid_request"

    def __init__(self, message: str, fields: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable with its fields: a request body is read in a worker process (`api.request_body`).
        return type(self), (str(self), self.fields)


class BackendNotFound(BadRequest):
    kind = "unknown_backend"


class BodyTooLarge(BadRequest):
    http_status = 413
    kind = "body_too_large"


class UnsupportedEncoding(BadRequest):
    http_status = 415
    kind = "unsupported_encoding"


class DuplicateBackend(RewardError):
    kind = "duplicate_backend"


class InvalidBackend(RewardError):
    """A backend cannot be loaded, or it does not satisfy `backends.base.RewardBackend`; the message names
    the backend, where it comes from (its entry point) and what is wrong."""

    kind = "invalid_backend"


class GradingFailed(RewardError):
    """Some completions could not be graded (status `error`) and the caller's protocol has no way to drop
    them (OpenRLHF's remote reward model): the whole request fails, naming them, rather than invent a
    reward. Nothing wrong was cached: a retry grades them again."""

    http_status = 503
    kind = "grading_failed"

    def __init__(self, message: str, fields: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class Overloaded(RewardError):
    http_status = 503
    kind = "overloaded"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueUnavailable(Overloaded):
    """The code job queue (Redis) cannot be reached: nothing was graded, try again."""

    kind = "queue_unavailable"


class QueueStorageFull(QueueUnavailable):
    """The queue's Redis refuses writes (maxmemory reached, noeviction): nothing was lost, try again later."""

    kind = "queue_storage_full"


class QueueFull(Overloaded):
    """Too many code jobs are waiting or running: come back later (HTTP 429)."""

    http_status = 429
    kind = "queue_full"
