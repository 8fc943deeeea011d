"""Redis keys and messages shared by the reward server (`client`) and the workers (`worker`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from reward_server.backends.base import Verdict
from reward_server.code_grading import CodeProblem

# What a lost or restarting Redis raises; both sides back off and retry on these.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def is_out_of_memory(exc: BaseException) -> bool:
    """Redis refused a write: `maxmemory` reached under `noeviction` (also from inside a script)."""
    return isinstance(exc, OutOfMemoryError) or (isinstance(exc, ResponseError) and "OOM" in str(exc))


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
    back off and retry). Its pool is bounded and makes callers wait for a free connection (a burst of
    groups must not fail with "Too many connections"). `blocking` clients wait seconds in XREAD(GROUP)."""
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
