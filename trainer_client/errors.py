"""Errors of the reward client (`trainer_client.client`).

    RewardClientError             base class; also raised for a request that cannot be sent at all
    ├── RewardRequestError        HTTP 4xx: the request is wrong; never retried; has the server's error body
    ├── RewardServerUnavailable   retries exhausted on connection errors, timeouts, HTTP 5xx or 429
    ├── RewardResponseError       a 2xx answer that is malformed or does not match the request
    └── LocalServerError          a reward server started by `trainer_client.local_server` did not come up

Grading outcomes are data, never exceptions: a completion the server failed to grade comes back with status
`error` and becomes a NaN reward (see `trainer_client.client.to_tensors`), never a wrong-answer reward.
"""

from __future__ import annotations

from typing import Any


class RewardClientError(Exception):
    """Base class of the reward client's exceptions."""


class RewardRequestError(RewardClientError):
    """The server refused the request with a 4xx answer; retrying the same request cannot help.

    Attributes:
        status_code: The HTTP status, e.g. 422.
        error: The server's machine-readable error kind (`invalid_request`, `unknown_backend`, ...), or None
            when the body was not the server's JSON error body (e.g. a proxy's HTML page).
        message: The server's message, which names the offending field.
        fields: The offending fields, each a dict with `loc` (a path such as
            `["body", "groups", 0, "backend"]`) and `msg`.
        body: The raw body text of the answer.
        request_id: The request id that was sent.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error: str | None = None,
        fields: list[dict[str, Any]] | None = None,
        body: str = "",
        request_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.error = error
        self.message = message
        self.fields = list(fields or [])
        self.body = body
        self.request_id = request_id
        where = "; ".join(
            f"{'.'.join(str(part) for part in field.get('loc', []))}: {field.get('msg', '')}"
            for field in self.fields
        )
        super().__init__(
            f"reward server refused request {request_id!r} with HTTP {status_code}"
            f"{f' ({error})' if error else ''}: {message}{f' [{where}]' if where else ''}"
        )


class RewardServerUnavailable(RewardClientError):
    """The server could not be reached or kept failing (5xx, 429) after every retry.

    Attributes:
        attempts: How many attempts were made.
        last_status: The HTTP status of the last attempt, or None when it failed without an answer.
        last_error: The exception of the last attempt (connection error, timeout), or None when it got an
            answer; it is also the `__cause__`.
        request_id: The request id that was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        last_status: int | None = None,
        last_error: BaseException | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_status = last_status
        self.last_error = last_error
        self.request_id = request_id


class RewardResponseError(RewardClientError):
    """The server answered 2xx, but the body is not a GradeResponse or does not match the request
    (a different number of groups or completions, other group ids, another request id)."""


class LocalServerError(RewardClientError):
    """The reward server started by `trainer_client.local_server` exited or was not ready in time."""
