"""The queue's messages and settings, its Redis back-off, and how the grading service passes queue
refusals to the client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from tenacity import stop_after_attempt, stop_never

from reward_server.cache import MemoryCache
from reward_server.code_grading import CodeProblem
from reward_server.errors import QueueFull, QueueUnavailable
from reward_server.grading import GradingService
from reward_server.queue.protocol import (
    REDIS_DOWN,
    Job,
    QueueKeys,
    decode_reply,
    encode_reply,
    problem_key,
    retry_redis,
)
from reward_server.schemas import GradeGroup, GradeRequest, RewardSpec, Status
from reward_server.settings import RewardSettings
from reward_server.verdict import Verdict

PROBLEM = CodeProblem(tests=[{"input": "1\n", "output": "1\n"}], time_limit_s=2, memory_limit_mb=256)


def test_job_round_trips_through_stream_fields_as_redis_returns_them() -> None:
    job = Job(
        job_id="j1", reply_to="iarl:replies:s", problem_key="abc", code="print(1)\n", run_budget_s=12.5,
        accepted_at=1.5e9,
    )  # fmt: skip
    as_redis_returns = {name.encode(): value.encode() for name, value in job.to_fields().items()}
    assert Job.from_fields(as_redis_returns) == job


def test_malformed_job_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Job.from_fields({b"job_id": b"j1", b"code": b"x"})
    with pytest.raises(ValidationError):
        job = Job(job_id="j", reply_to="r", problem_key="p", code="", run_budget_s=1, accepted_at=0)
        Job.from_fields({**job.to_fields(), "run_budget_s": "soon"})
    with pytest.raises(ValidationError):
        Job.from_fields({**job.to_fields(), "run_budget_s": "0"})


def test_reply_round_trip_keeps_the_whole_verdict() -> None:
    verdict = Verdict(
        Status.INCORRECT,
        detail="test 2 of 5: wrong answer",
        tests={"passed": 2, "total": 5},
        backend_version="0.1.0+rules.0123abcd",  # the worker's rules
    )
    fields = {k.encode(): v.encode() for k, v in encode_reply("j9", verdict, "w1").items()}
    assert decode_reply(fields) == ("j9", verdict)


def test_a_verdict_names_its_rules_only_when_another_process_graded_it() -> None:
    """Cache entries of the server's own verdicts stay as small as before: no `backend_version: null`."""
    assert "backend_version" not in Verdict(Status.CORRECT).to_json()
    stamped = Verdict(Status.CORRECT, backend_version="v")
    assert Verdict.from_json(stamped.to_json()) == stamped


def test_a_verdict_of_a_worker_that_names_no_rules_is_not_cached() -> None:
    """A worker from before versioned verdicts: its rules are unknown, so the server must not cache it."""
    verdict = Verdict(Status.CORRECT, tests={"passed": 5, "total": 5})
    fields = {k.encode(): v.encode() for k, v in encode_reply("j9", verdict, "w1").items()}
    _job_id, decoded = decode_reply(fields)
    assert decoded is not None and decoded.status is Status.CORRECT and not decoded.cacheable


def test_equal_problems_share_one_key_and_different_ones_do_not() -> None:
    same = CodeProblem.model_validate(PROBLEM.model_dump())
    other = PROBLEM.model_copy(update={"time_limit_s": 3})
    assert problem_key(same)[0] == problem_key(PROBLEM)[0] != problem_key(other)[0]
    assert CodeProblem.model_validate_json(problem_key(PROBLEM)[1]) == PROBLEM


def test_keys_share_the_prefix() -> None:
    keys = QueueKeys("team-a")
    assert {keys.jobs, keys.group, keys.workers_alive, keys.problem("h"), keys.replies("s")} == {
        "team-a:jobs", "team-a:workers", "team-a:workers:alive", "team-a:problem:h", "team-a:replies:s"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("executor", "redis_url", "expected"),
    [("auto", None, False), ("auto", "redis://r:6379/0", True), ("local", "redis://r:6379/0", False),
     ("queue", "redis://r:6379/0", True)],
)  # fmt: skip
def test_code_goes_to_the_queue_when_redis_is_set_unless_told_otherwise(
    executor: str, redis_url: str | None, expected: bool
) -> None:
    settings = RewardSettings(code_executor=executor, redis_url=redis_url)  # type: ignore[arg-type]
    assert settings.use_queue is expected


class NoReference(BaseModel):
    pass


class RefusingBackend:
    """A backend whose executor refuses work, as the queue does when full or unreachable."""

    name = "refusing"
    version = "1"
    description = "test"
    reference_model = NoReference
    ready = True

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def parse_reference(self, raw: dict[str, Any]) -> BaseModel:
        return NoReference()

    async def grade(self, reference: BaseModel, completions: Sequence[str]) -> list[Verdict]:
        raise self.error

    async def answer_classes(
        self, reference: BaseModel, verdicts: Sequence[Verdict], memo: Any
    ) -> list[None]:
        return [None] * len(verdicts)


@pytest.mark.parametrize(
    "error", [QueueFull("full", retry_after_s=7), QueueUnavailable("down", retry_after_s=2)]
)
async def test_a_queue_refusal_reaches_the_client_instead_of_error_verdicts(error: Exception) -> None:
    service = GradingService({"refusing": RefusingBackend(error)}, MemoryCache(10), RewardSpec())
    group = GradeGroup(group_id="g", backend="refusing", reference={}, completions=["a"])
    with pytest.raises(type(error)):
        await service.grade(GradeRequest(groups=[group]))


async def test_any_other_backend_failure_is_an_error_verdict() -> None:
    service = GradingService(
        {"refusing": RefusingBackend(RuntimeError("bug"))}, MemoryCache(10), RewardSpec()
    )
    group = GradeGroup(group_id="g", backend="refusing", reference={}, completions=["a"])
    response = await service.grade(GradeRequest(groups=[group]))
    assert [r.status for r in response.groups[0].results] == [Status.ERROR]


class FlakyRedis:
    """Fails its first `failures` calls with `error`, then answers "ok"; records the waits between tries."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.waits: list[float] = []
        self.reported: list[tuple[str, float]] = []

    async def call(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def report(self, exc: BaseException, retry_in_s: float) -> None:
        self.reported.append((type(exc).__name__, retry_in_s))


def retry_flaky(redis: FlakyRedis, *, stop: Any = stop_never, max_backoff_s: float = 0.3) -> Any:
    return retry_redis(
        redis.call,
        lambda exc: isinstance(exc, REDIS_DOWN),
        max_backoff_s=max_backoff_s,
        stop=stop,
        on_failure=redis.report,
        sleep=redis.sleep,
    )


async def test_retry_redis_backs_off_exponentially_up_to_its_cap_while_redis_is_down() -> None:
    redis = FlakyRedis(4, RedisConnectionError("refused"))
    assert await retry_flaky(redis) == "ok"
    assert redis.calls == 5
    assert redis.waits == pytest.approx([0.1, 0.2, 0.3, 0.3])  # doubling from FIRST_BACKOFF_S, capped
    assert [name for name, _ in redis.reported] == ["ConnectionError"] * 4
    assert [seconds for _, seconds in redis.reported] == redis.waits


async def test_retry_redis_raises_other_errors_at_once() -> None:
    redis = FlakyRedis(1, ResponseError("WRONGTYPE"))
    with pytest.raises(ResponseError):
        await retry_flaky(redis)
    assert redis.calls == 1 and redis.waits == []


async def test_retry_redis_raises_the_last_error_when_told_to_stop() -> None:
    redis = FlakyRedis(10, RedisConnectionError("refused"))
    with pytest.raises(RedisConnectionError):
        await retry_flaky(redis, stop=stop_after_attempt(3))
    assert redis.calls == 3 and len(redis.waits) == 2
