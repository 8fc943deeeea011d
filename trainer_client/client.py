"""HTTP client of the reward server (`POST /v1/grade`) and the conversion of its verdicts into tensors.

`AsyncRewardClient` is what the training loop uses (grading of one batch overlaps generation of the next);
`RewardClient` is its synchronous twin for scripts. Both:

- share one connection pool and cap the requests in flight (`max_in_flight`, a semaphore in the async client);
- set explicit timeouts (`connect_timeout_s` to connect, `timeout_s` for the server's answer);
- retry only connection errors, timeouts, HTTP 5xx and 429, with exponential back-off and full jitter, and
  wait at least the server's `Retry-After`; the same body and `request_id` travel on every attempt, so a
  retry is idempotent (the server caches verdicts by content);
- fail fast on a 4xx with `RewardRequestError`, which carries the server's message and offending fields;
- split large batches into requests of at most `max_groups_per_request` groups, sent concurrently and
  reassembled in order;
- send the server's API key (`api_key`, else the environment variable `REWARD_SERVER_API_KEY`) as
  `Authorization: Bearer <key>`; a wrong or missing key is a 401, raised as `RewardRequestError`. The key
  is never logged.

Example:

    async with AsyncRewardClient("http://127.0.0.1:8000") as client:
        group = GradeGroup(group_id="p0", backend="math", reference={"answer": "1/2"},
                           completions=["$\\\\boxed{0.5}$", "$\\\\boxed{2}$"])
        batch = await client.grade_rewards([group])
        batch.rewards  # tensor([[ 1., -1.]], dtype=torch.float64)
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
import torch
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from reward_server.schemas import (
    ErrorResponse,
    GradeGroup,
    GradeRequest,
    GradeResponse,
    RewardSpec,
    Status,
)
from trainer_client.errors import (
    RewardClientError,
    RewardRequestError,
    RewardResponseError,
    RewardServerUnavailable,
)

__all__ = ["AsyncRewardClient", "GradedBatch", "RewardClient", "to_tensors"]

log = logging.getLogger(__name__)

GRADE_PATH = "/v1/grade"
API_KEY_ENV = "REWARD_SERVER_API_KEY"
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
# Transport errors that are our own fault: retrying them cannot help.
_NOT_RETRYABLE = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The Authorization header of `api_key`, else of `$REWARD_SERVER_API_KEY`; none without a key.

    An explicit empty `api_key` means no key, whatever the environment says.
    """
    key = (api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")).strip()
    if not key:
        return {}
    if not key.isprintable() or not key.isascii() or " " in key:
        raise ValueError(
            f"the reward server's API key ({API_KEY_ENV}) must be printable ASCII without spaces"
        )
    return {"authorization": f"Bearer {key}"}


# --------------------------------------------------------------------------------------------------------
# Tensors for the trainer


@dataclass(frozen=True)
class GradedBatch:
    """The verdicts of B groups of n completions each, as the estimators take them.

    Attributes:
        rewards: float64 [B, n]; NaN where the server failed to grade (status `error`), so the estimators
            drop the sample instead of counting it as a wrong answer.
        classes: int64 [B, n]; the answer class of each completion within its group, -1 without one.
        correct: bool [B, n]; status is `correct`.
        statuses: [B][n] statuses.
        group_ids: [B] group ids, in request order.
    """

    rewards: torch.Tensor
    classes: torch.Tensor
    correct: torch.Tensor
    statuses: list[list[Status]]
    group_ids: list[str]

    @property
    def valid(self) -> torch.Tensor:
        """bool [B, n]: the samples that have a reward."""
        return ~torch.isnan(self.rewards)


def to_tensors(response: GradeResponse) -> GradedBatch:
    """Turn a GradeResponse into the tensors of the trainer.

    Args:
        response: The server's answer; every group must have the same number of completions.

    Returns:
        The GradedBatch: a result with status `error` (or no reward) has reward NaN, never a wrong-answer
        reward; a result without an answer class has class -1.

    Raises:
        ValueError: The groups have different numbers of completions (no [B, n] tensor holds them).

    Example:
        >>> batch = to_tensors(response)  # 1 group: correct, incorrect, error
        >>> batch.rewards
        tensor([[ 1., -1., nan]], dtype=torch.float64)
    """
    sizes = {len(group.results) for group in response.groups}
    if len(sizes) > 1:
        raise ValueError(f"groups have different numbers of completions {sorted(sizes)}; expected one n")
    n = sizes.pop() if sizes else 0
    rewards = [
        [math.nan if r.status is Status.ERROR or r.reward is None else r.reward for r in group.results]
        for group in response.groups
    ]
    classes = [
        [-1 if r.answer_class is None else r.answer_class for r in group.results] for group in response.groups
    ]
    correct = [[r.status is Status.CORRECT for r in group.results] for group in response.groups]
    shape = (len(response.groups), n)
    return GradedBatch(
        rewards=torch.tensor(rewards, dtype=torch.float64).reshape(shape),
        classes=torch.tensor(classes, dtype=torch.int64).reshape(shape),
        correct=torch.tensor(correct, dtype=torch.bool).reshape(shape),
        statuses=[[r.status for r in group.results] for group in response.groups],
        group_ids=[group.group_id for group in response.groups],
    )


# --------------------------------------------------------------------------------------------------------
# What both twins share: building requests, reading answers, the retry policy


@dataclass(frozen=True)
class _Chunk:
    """One HTTP request: its groups and its body, serialized once so that every attempt sends the same."""

    request_id: str
    groups: list[GradeGroup]
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "x-request-id": self.request_id}


class _Core:
    """Settings and the pure steps of a grade call, shared by the async and the sync client."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        connect_timeout_s: float,
        max_retries: int,
        backoff_base_s: float,
        backoff_max_s: float,
        max_groups_per_request: int,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"base_url must be an http(s) URL such as 'http://127.0.0.1:8000', not {base_url!r}"
            )
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("timeout_s and connect_timeout_s must be positive")
        if max_retries < 0 or backoff_base_s < 0 or backoff_max_s < 0:
            raise ValueError("max_retries, backoff_base_s and backoff_max_s must not be negative")
        if max_groups_per_request < 1:
            raise ValueError("max_groups_per_request must be at least 1")
        self.base_url = base_url
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.attempts = max_retries + 1
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._full_jitter = wait_random_exponential(multiplier=backoff_base_s, max=backoff_max_s)
        self.max_groups_per_request = max_groups_per_request

    def chunks(
        self, groups: Sequence[GradeGroup], reward: RewardSpec | None, request_id: str | None
    ) -> tuple[str, list[_Chunk]]:
        """Validate the whole request (e.g. duplicate group ids) and split it into requests."""
        request_id = request_id or str(uuid.uuid4())
        GradeRequest(request_id=request_id, groups=list(groups), reward=reward)
        size = self.max_groups_per_request
        # No groups, no request: the answer is empty.
        parts = [list(groups[start : start + size]) for start in range(0, len(groups), size)]
        chunks = []
        for index, part in enumerate(parts):
            # One id per HTTP request; a batch that fits one request keeps the caller's id.
            chunk_id = request_id if len(parts) == 1 else f"{request_id}/{index}"
            body = GradeRequest(request_id=chunk_id, groups=part, reward=reward).model_dump_json().encode()
            chunks.append(_Chunk(chunk_id, part, body))
        return request_id, chunks

    def retry_policy(self, chunk: _Chunk) -> dict[str, Any]:
        """The tenacity arguments of `chunk`'s attempts, the same for both twins (each adds its `sleep`).

        Only `_RetryableFailure` is retried; after the last attempt it leaves the retry loop as it is
        (`reraise`) and `unavailable` turns it into `RewardServerUnavailable`.
        """
        return {
            "retry": retry_if_exception_type(_RetryableFailure),
            "stop": stop_after_attempt(self.attempts),
            "wait": self.delay_s,
            "before_sleep": lambda state: self.log_retry(chunk, state),
            "reraise": True,
        }

    def delay_s(self, state: RetryCallState) -> float:
        """Seconds to wait before the next attempt, after attempt number `state.attempt_number` failed.

        Full jitter: uniform in [0, min(backoff_max_s, backoff_base_s * 2**(attempt-1))]. The server's
        `Retry-After` (capped at backoff_max_s, so that a misconfigured proxy cannot stall training for an
        hour) is a floor instead: we wait that long plus a jitter of at most backoff_base_s, so that the
        clients it turned away do not all come back at the same instant.
        """
        failure = _failure(state)
        if failure.retry_after_s is not None:
            jitter_s = random.uniform(0, min(self.backoff_base_s, self.backoff_max_s))
            return min(failure.retry_after_s, self.backoff_max_s) + jitter_s
        return float(self._full_jitter(state))

    def read(self, chunk: _Chunk, response: httpx.Response) -> GradeResponse:
        """The GradeResponse of a 2xx answer; raises `_RetryableFailure` for 5xx and 429, an error else."""
        status = response.status_code
        if status == 429 or status >= 500:
            reason = f"HTTP {status}: {_short(response.text)}"
            raise _RetryableFailure(reason, status=status, retry_after_s=_retry_after_s(response))
        if 400 <= status < 500:
            raise _request_error(chunk.request_id, response)
        if not 200 <= status < 300:
            raise RewardResponseError(
                f"request {chunk.request_id!r}: unexpected HTTP {status} from {self.base_url}"
                f"{GRADE_PATH}: {_short(response.text)}"
            )
        try:
            graded = GradeResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise RewardResponseError(
                f"request {chunk.request_id!r}: the answer is not a GradeResponse: {exc}"
            ) from exc
        _check_matches(chunk, graded)
        return graded

    def send_error(self, chunk: _Chunk, exc: httpx.HTTPError) -> Exception:
        """What a failed POST raises: `_RetryableFailure` for a connection error or a timeout; an error that
        a retry cannot fix (our own transport misuse, an unreadable answer) otherwise."""
        if isinstance(exc, _NOT_RETRYABLE):
            return RewardClientError(f"request {chunk.request_id!r} cannot be sent: {exc}")
        if isinstance(exc, httpx.TransportError):
            return _RetryableFailure(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, exc)
        return RewardResponseError(f"request {chunk.request_id!r}: unreadable answer: {exc}")  # e.g. decoding

    def log_retry(self, chunk: _Chunk, state: RetryCallState) -> None:
        log.warning(
            "reward request %s: attempt %d/%d failed (%s); retrying in %.2f s",
            chunk.request_id,
            state.attempt_number,
            self.attempts,
            _failure(state).reason,
            state.upcoming_sleep,
        )

    def unavailable(self, chunk: _Chunk, failure: _RetryableFailure) -> RewardServerUnavailable:
        return RewardServerUnavailable(
            f"reward server {self.base_url} unavailable: request {chunk.request_id!r} failed "
            f"{self.attempts} attempt(s); last: {failure.reason}",
            attempts=self.attempts,
            last_status=failure.status,
            last_error=failure.error,
            request_id=chunk.request_id,
        )


class _RetryableFailure(Exception):
    """One attempt failed in a way a later one may not: a connection error, a timeout, HTTP 5xx or 429."""

    def __init__(
        self,
        reason: str,
        error: httpx.TransportError | None = None,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.status = status
        self.retry_after_s = retry_after_s


def _failure(state: RetryCallState) -> _RetryableFailure:
    """The failure of the attempt that `state` describes (tenacity asks only after a retryable one)."""
    assert state.outcome is not None
    failure = state.outcome.exception()
    assert isinstance(failure, _RetryableFailure)
    return failure


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _retry_after_s(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds, or None when absent or not a number of seconds."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _request_error(request_id: str, response: httpx.Response) -> RewardRequestError:
    text = response.text
    try:
        body = ErrorResponse.model_validate_json(response.content)
    except ValidationError:
        return RewardRequestError(
            response.status_code, _short(text) or "(empty body)", body=text, request_id=request_id
        )
    return RewardRequestError(
        response.status_code,
        body.message,
        error=body.error,
        fields=body.fields,
        body=text,
        request_id=request_id,
    )


def _check_matches(chunk: _Chunk, response: GradeResponse) -> None:
    """Raise RewardResponseError unless `response` answers `chunk`, group by group, result by result."""

    def fail(why: str) -> RewardResponseError:
        return RewardResponseError(
            f"request {chunk.request_id!r}: the answer does not match the request: {why}"
        )

    if response.request_id is not None and response.request_id != chunk.request_id:
        raise fail(f"it answers request {response.request_id!r}")
    if len(response.groups) != len(chunk.groups):
        raise fail(f"{len(response.groups)} groups for {len(chunk.groups)}")
    for index, (sent, got) in enumerate(zip(chunk.groups, response.groups, strict=True)):
        where = f"group {sent.group_id!r}"
        if got.group_id != sent.group_id:
            raise fail(f"group {index} is {got.group_id!r}, expected {sent.group_id!r}")
        if len(got.results) != len(sent.completions):
            raise fail(f"group {sent.group_id!r} has {len(got.results)} results for {len(sent.completions)}")
        for position, result in enumerate(got.results):
            # The contract: reward is null exactly for `error`. Anything else is a broken server, and an
            # infrastructure failure must never reach the trainer as a reward.
            if (result.reward is None) != (result.status is Status.ERROR):
                raise fail(f"{where} result {position}: status {result.status} with reward {result.reward}")
            if result.answer_class is not None and not 0 <= result.answer_class < len(got.answer_classes):
                raise fail(f"{where} result {position}: answer_class {result.answer_class} out of range")


def _merge(request_id: str, responses: Sequence[GradeResponse]) -> GradeResponse:
    if len(responses) == 1:
        return responses[0].model_copy(update={"request_id": request_id})
    backends: dict[str, str] = {}
    for response in responses:
        backends.update(response.backends)
    groups = [group for response in responses for group in response.groups]
    return GradeResponse(request_id=request_id, groups=groups, backends=backends)


# --------------------------------------------------------------------------------------------------------
# The clients


class AsyncRewardClient:
    """Async client of the reward server; one per process, shared by all grading calls.

    Args:
        base_url: The server, e.g. `http://127.0.0.1:8000`.
        max_in_flight: The most HTTP requests in flight at once (a request waiting to retry holds no slot).
        timeout_s: How long to wait for the server's answer once connected (httpx read/write/pool timeout);
            a grading request may take a while, so this is generous. Each attempt gets it afresh.
        connect_timeout_s: How long to wait for a connection.
        max_retries: Retries after the first attempt (so `max_retries + 1` attempts), on connection errors,
            timeouts, HTTP 5xx and 429 only.
        backoff_base_s: The first back-off ceiling; it doubles every retry (full jitter).
        backoff_max_s: The largest back-off ceiling.
        max_groups_per_request: Larger batches are split into requests of at most this many groups.
        api_key: The server's bearer key (`REWARD_API_KEYS` there); None: `$REWARD_SERVER_API_KEY`, if set.
        transport: An httpx transport (e.g. `httpx.MockTransport` in tests).
        sleep: The sleep used between retries (tests record the delays instead of sleeping).

    Example:
        async with AsyncRewardClient("http://127.0.0.1:8000", max_in_flight=32) as client:
            batch = await client.grade_rewards(groups)
    """

    def __init__(
        self,
        base_url: str,
        *,
        max_in_flight: int = 64,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_groups_per_request: int = 64,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._core = _Core(
            base_url,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            max_retries=max_retries,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            max_groups_per_request=max_groups_per_request,
        )
        self.max_in_flight = max_in_flight
        self._semaphore = asyncio.Semaphore(max_in_flight)
        self._sleep = sleep
        limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=self._core.timeout,
            limits=limits,
            transport=transport,
            headers=auth_headers(api_key),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def grade(
        self,
        groups: Sequence[GradeGroup],
        *,
        reward: RewardSpec | None = None,
        request_id: str | None = None,
    ) -> GradeResponse:
        """Grade `groups`; the response keeps the order of groups and completions.

        Args:
            groups: The groups to grade (group ids must be unique).
            reward: Reward values; the server's defaults when None.
            request_id: Idempotency key sent with every attempt; a uuid4 when None. A batch split into
                several requests sends `{request_id}/{i}` with request i.

        Returns:
            The GradeResponse of all groups, with `request_id` set to the request id.

        Raises:
            RewardRequestError: The server refused the request (4xx); not retried.
            RewardServerUnavailable: Connection errors, timeouts, 5xx or 429 outlasted the retries.
            RewardResponseError: The answer is malformed or does not match the request.
            pydantic.ValidationError: The request itself is invalid (e.g. duplicate group ids).
        """
        request_id, chunks = self._core.chunks(groups, reward, request_id)
        tasks = [asyncio.ensure_future(self._send(chunk)) for chunk in chunks]
        try:
            responses = await asyncio.gather(*tasks)
        except BaseException:
            # One request failed for good: stop the others rather than leave them running.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return _merge(request_id, responses)

    async def grade_rewards(
        self,
        groups: Sequence[GradeGroup],
        *,
        reward: RewardSpec | None = None,
        request_id: str | None = None,
    ) -> GradedBatch:
        """`grade`, then `to_tensors`: rewards (NaN for `error`), classes, correctness as [B, n] tensors."""
        return to_tensors(await self.grade(groups, reward=reward, request_id=request_id))

    async def _send(self, chunk: _Chunk) -> GradeResponse:
        retrying = AsyncRetrying(sleep=self._sleep, **self._core.retry_policy(chunk))
        try:
            return await retrying(self._attempt, chunk)
        except _RetryableFailure as failure:
            raise self._core.unavailable(chunk, failure) from failure.error

    async def _attempt(self, chunk: _Chunk) -> GradeResponse:
        try:
            async with self._semaphore:  # held while the request is in flight, never while it waits to retry
                response = await self._http.post(GRADE_PATH, content=chunk.body, headers=chunk.headers)
        except httpx.HTTPError as exc:
            raise self._core.send_error(chunk, exc) from exc
        return self._core.read(chunk, response)


class RewardClient:
    """Synchronous twin of `AsyncRewardClient` for scripts: same arguments, same retries and errors.

    A batch split into several requests sends them one after another, so there is no `max_in_flight`.

    Example:
        with RewardClient("http://127.0.0.1:8000") as client:
            batch = client.grade_rewards(groups)
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_groups_per_request: int = 64,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._core = _Core(
            base_url,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            max_retries=max_retries,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            max_groups_per_request=max_groups_per_request,
        )
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url, timeout=self._core.timeout, transport=transport, headers=auth_headers(api_key)
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def grade(
        self,
        groups: Sequence[GradeGroup],
        *,
        reward: RewardSpec | None = None,
        request_id: str | None = None,
    ) -> GradeResponse:
        """See `AsyncRewardClient.grade`."""
        request_id, chunks = self._core.chunks(groups, reward, request_id)
        return _merge(request_id, [self._send(chunk) for chunk in chunks])

    def grade_rewards(
        self,
        groups: Sequence[GradeGroup],
        *,
        reward: RewardSpec | None = None,
        request_id: str | None = None,
    ) -> GradedBatch:
        """See `AsyncRewardClient.grade_rewards`."""
        return to_tensors(self.grade(groups, reward=reward, request_id=request_id))

    def _send(self, chunk: _Chunk) -> GradeResponse:
        retrying = Retrying(sleep=self._sleep, **self._core.retry_policy(chunk))
        try:
            return retrying(self._attempt, chunk)
        except _RetryableFailure as failure:
            raise self._core.unavailable(chunk, failure) from failure.error

    def _attempt(self, chunk: _Chunk) -> GradeResponse:
        try:
            response = self._http.post(GRADE_PATH, content=chunk.body, headers=chunk.headers)
        except httpx.HTTPError as exc:
            raise self._core.send_error(chunk, exc) from exc
        return self._core.read(chunk, response)
