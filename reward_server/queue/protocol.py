"""Redis keys and messages shared by the reward server (`client`) and the workers (`worker`), and how both
retry Redis.

Two retry layers, each with its own job:

- redis-py (`connect`) retries one command a couple of times within half a second: a dropped connection
  or a failover blip, invisible to the caller;
- `retry_redis` (tenacity) is the callers' back-off when Redis stays away (a restart, an outage, a full
  memory): 0.1 s, doubling up to a cap, until the caller's own stop (shutdown, a deadline).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from tenacity.stop import StopBaseT
from tenacity.wait import wait_exponential

from reward_server.code_grading import CodeProblem
from reward_server.verdict import Verdict

# What a lost or restarting Redis raises; both sides back off and retry on these.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


T = TypeVar("T")

FIRST_BACKOFF_S = 0.1  # `redis_retrying`'s first wait; it doubles after each failure, up to the caller's cap


def is_out_of_memory(exc: BaseException) -> bool:
    """Redis refused a write: `maxmemory` reached under `noeviction` (also from inside a script)."""
    return isinstance(exc, OutOfMemoryError) or (isinstance(exc, ResponseError) and "OOM" in str(exc))


async def retry_redis(
    call: Callable[[], Awaitable[T]],
    retry_on: Callable[[BaseException], bool],
    *,
    max_backoff_s: float,
    stop: StopBaseT,
    on_failure: Callable[[BaseException, float], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`await call()`, backing off and trying again while it fails with an error that `retry_on` accepts.

    Args:
        call: the Redis work (a new awaitable each time it is called).
        retry_on: which errors to wait out (e.g. `REDIS_DOWN`); any other is raised at once.
        max_backoff_s: the cap of the exponential back-off (first wait `FIRST_BACKOFF_S`, then doubling).
        stop: when to give up (a tenacity stop: shutdown, a deadline); the last error is then raised.
        on_failure: called with each error that will be retried and the seconds until the next try (logs,
            health flags).
        sleep: the wait between tries (e.g. one that wakes early at shutdown).

    Returns:
        What `call` returned, once it succeeded.

    Example:
        value = await retry_redis(lambda: redis.get(key), lambda exc: isinstance(exc, REDIS_DOWN),
                                  max_backoff_s=2, stop=stop_before_delay(60), on_failure=log_it)
    """

    async def attempt() -> T:
        # redis-py's asyncio commands are plain methods that return a coroutine: await it here, inside
        # the retry, so that its errors are retried.
        return await call()

    def report(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if error is not None:
            on_failure(error, state.upcoming_sleep)

    retrying = AsyncRetrying(
        retry=retry_if_exception(retry_on),
        wait=wait_exponential(multiplier=FIRST_BACKOFF_S, max=max_backoff_s),
        stop=stop,
        sleep=sleep,
        before_sleep=report,
        reraise=True,
    )
    return await retrying(attempt)


@dataclass(frozen=True)
class QueueKeys:
    prefix: str

    @property
    def jobs(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def group(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def workers_alive(self) -> str:
        return f"{self.prefix}:workers:alive"

    @property
    def worker_slots(self) -> str:
        """Hash: worker name -> jobs it runs at once (its share of the fair-share computation)."""
        return f"{self.prefix}:workers:slots"

    @property
    def requests(self) -> str:
        """Sorted set: request key -> last time its server said it is in flight."""
        return f"{self.prefix}:requests"

    @property
    def reservations(self) -> str:
        """Hash: request key -> code jobs it holds or may still add (what REWARD_QUEUE_MAX_DEPTH bounds)."""
        return f"{self.prefix}:requests:jobs"

    def problem(self, problem_key: str) -> str:
        return f"{self.prefix}:problem:{problem_key}"

    def replies(self, server_id: str) -> str:
        return f"{self.prefix}:replies:{server_id}"


class Job(BaseModel):
    """One program to run against one stored problem; a stream entry of flat string fields."""

    job_id: str = Field(..., min_length=1)
    reply_to: str = Field(..., min_length=1)
    problem_key: str = Field(..., min_length=1)
    code: str
    run_budget_s: float = Field(
        ..., gt=0, description="How long the job may take once a worker has it (the server waits this long)."
    )
    accepted_at: float = Field(..., description="Unix time the server accepted the job (for humans).")

    def to_fields(self) -> dict[str, str]:
        return {name: str(value) for name, value in self.model_dump().items()}

    @classmethod
    def from_fields(cls, fields: dict[Any, Any]) -> Job:
        return cls.model_validate({as_text(name): as_text(value) for name, value in fields.items()})


def encode_reply(job_id: str, verdict: Verdict, worker: str) -> dict[str, str]:
    return {"job_id": job_id, "verdict": json.dumps(verdict.to_json()), "worker": worker}


def encode_taken(job_id: str, worker: str, delivery: int) -> dict[str, str]:
    """The notice a worker sends when it takes a job: the job's run clock starts now."""
    return {"job_id": job_id, "taken": str(delivery), "worker": worker}


def decode_reply(fields: dict[Any, Any]) -> tuple[str, Verdict | None]:
    """(job id, verdict) of a reply; (job id, None) for a notice that a worker took the job.

    The verdict carries the worker's rules version (`Verdict.backend_version`), under which it is cached."""
    decoded = {as_text(name): as_text(value) for name, value in fields.items()}
    if "taken" in decoded:
        return decoded["job_id"], None
    verdict = Verdict.from_json(json.loads(decoded["verdict"]))
    if verdict.backend_version is None:
        # A worker from before versioned verdicts: its rules are unknown, so its verdict is served but not
        # cached (under the server's version it could outlive a rule change by a week).
        verdict = replace(verdict, certain=False)
    return decoded["job_id"], verdict


def problem_key(problem: CodeProblem) -> tuple[str, str]:
    """(content hash, JSON) of a problem: equal problems share one stored copy."""
    payload = problem.model_dump_json()
    return hashlib.sha256(payload.encode()).hexdigest(), payload


def connect(url: str, *, blocking: bool = False) -> aioredis.Redis:
    """A client that retries a command briefly on a dropped connection (a restart takes longer: callers
    back off and retry, `retry_redis`). Its pool is bounded and makes callers wait for a free connection
    (a burst of groups must not fail with "Too many connections"). `blocking` clients wait seconds in
    XREAD(GROUP)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=64,
        timeout=10,
        socket_connect_timeout=2,
        socket_timeout=10 if blocking else 5,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() disconnects it


async def ensure_group(redis: aioredis.Redis, keys: QueueKeys) -> None:
    """Create the job stream and its consumer group if missing (after a Redis restart without data, too).

    The group starts at id 0 so that jobs added before any worker existed are delivered.
    """
    try:
        await redis.xgroup_create(keys.jobs, keys.group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def as_text(value: Any) -> str:
    """A Redis reply field as text (clients return bytes unless told to decode)."""
    return value.decode() if isinstance(value, bytes) else str(value)
