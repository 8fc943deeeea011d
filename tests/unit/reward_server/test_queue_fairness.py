"""The queue's fair share of worker slots, a request's charge against the depth limit, and the request scope
that lets the queue see requests (not groups)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from reward_server.cache import MemoryCache
from reward_server.grading import GradingService
from reward_server.queue.tracking import SPARE_JOBS, RequestState, TrackedJob, fair_share
from reward_server.request_scope import RequestScope, current_scope, request_scope
from reward_server.schemas import GradeGroup, GradeRequest, RewardSpec, Status
from reward_server.verdict import Verdict


def test_a_lone_request_may_use_every_slot() -> None:
    assert fair_share(worker_slots=8, requests=1) == 8 + SPARE_JOBS


def test_requests_split_the_slots_and_each_keeps_a_spare() -> None:
    assert fair_share(worker_slots=8, requests=2) == 4 + SPARE_JOBS
    assert fair_share(worker_slots=8, requests=3) == 3 + SPARE_JOBS  # rounded up: no slot idles
    assert fair_share(worker_slots=2, requests=100) == 1 + SPARE_JOBS  # never zero


def test_without_workers_a_request_still_queues_its_first_jobs() -> None:
    """So that the first worker to start has work at once."""
    assert fair_share(worker_slots=0, requests=1) == 1 + SPARE_JOBS


def _job(request: RequestState) -> TrackedJob:
    from reward_server.queue.protocol import Job

    job = Job(job_id="j", reply_to="r", problem_key="p", code="", run_budget_s=1, accepted_at=0)
    return TrackedJob(job=job, payload="{}", future=asyncio.Future(), request=request, waiting_since=0)


async def test_a_request_is_charged_its_estimate_until_answers_come_back() -> None:
    request = RequestState(key="k", estimate=10)
    assert request.charge() == 10  # admitted for 10, whatever it has enqueued so far
    request.answered = 4
    assert request.charge() == 6
    request.backlog.extend(_job(request) for _ in range(8))
    assert request.charge() == 8  # never less than what it holds


async def test_a_job_is_in_the_backlog_then_queued_then_running() -> None:
    job = _job(RequestState(key="k", estimate=1))
    assert job.phase == "backlog"
    job.entry_id = "1-0"
    assert job.phase == "queued"
    job.taken_at = 1.0
    assert job.phase == "running"


async def test_tasks_created_in_a_scope_see_it_and_close_callbacks_run() -> None:
    closed: list[str] = []
    async with request_scope({"code": 3}) as scope:
        scope.on_close(lambda: closed.append(scope.key))
        seen = await asyncio.gather(*(asyncio.create_task(_current()) for _ in range(3)))
        assert seen == [scope] * 3
    assert current_scope() is None
    assert closed == [scope.key]


async def _current() -> RequestScope | None:
    await asyncio.sleep(0)
    return current_scope()


class Reference(BaseModel):
    pass


class ScopeRecorder:
    """A backend that records the request scope each group is graded in."""

    version = "1"
    description = "test"
    reference_model = Reference
    ready = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.scopes: list[RequestScope | None] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def parse_reference(self, raw: dict[str, Any]) -> BaseModel:
        return Reference()

    async def grade(self, reference: BaseModel, completions: Sequence[str]) -> list[Verdict]:
        self.scopes.append(current_scope())
        return [Verdict(Status.CORRECT)] * len(completions)

    async def answer_classes(
        self, reference: BaseModel, verdicts: Sequence[Verdict], memo: Any
    ) -> list[None]:
        return [None] * len(verdicts)


async def test_every_group_of_a_request_shares_one_scope_that_counts_completions_per_backend() -> None:
    code, math = ScopeRecorder("code"), ScopeRecorder("math")
    service = GradingService({"code": code, "math": math}, MemoryCache(100), RewardSpec())
    groups = [
        GradeGroup(group_id="a", backend="code", reference={}, completions=["1", "2"]),
        GradeGroup(group_id="b", backend="code", reference={}, completions=["3", "4", "5"]),
        GradeGroup(group_id="c", backend="math", reference={}, completions=["6"]),
    ]
    await service.grade(GradeRequest(groups=groups))
    fresh = GradeGroup(group_id="d", backend="code", reference={}, completions=["7"])  # not in the cache
    await service.grade(GradeRequest(groups=[fresh]))
    first, second, again = code.scopes
    assert first is second is not None and again is not None and again is not first
    assert first.completions_for("code") == 5 and first.completions_for("math") == 1
    assert math.scopes == [first]
