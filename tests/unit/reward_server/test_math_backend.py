"""The math backend with its real worker pool: a completion is only ever graded by what it does itself."""

from __future__ import annotations

import resource
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from reward_server.backends import math_sympy
from reward_server.backends.math_sympy import MathBackend, MathReference
from reward_server.deadline_pool import JobFailed, WorkerCrashed
from reward_server.schemas import Status
from reward_server.settings import RewardSettings

# About 9 s of extraction on the dev machine (32 MB of bare boxes): far past the 1 s deadline below, and
# past three completions' worth of it (3 s) even on a faster machine. Extracted with its neighbours in one
# job, it took them all down.
SLOW_TO_EXTRACT = "\\boxed 1 " * (32 * 1024 * 1024 // 9)


@pytest.fixture
async def backend() -> AsyncIterator[MathBackend]:
    backend = MathBackend(RewardSettings(math_workers=2, math_timeout_s=1.0))
    await backend.start()
    yield backend
    await backend.close()


@pytest.mark.parametrize("batch", ["alone", "with_its_neighbours"])
async def test_a_completion_too_slow_to_extract_affects_only_itself(
    backend: MathBackend, batch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if batch == "with_its_neighbours":  # one job for the three: it fails, and each is extracted again alone
        monkeypatch.setattr(math_sympy, "EXTRACT_BATCH_CHARS", 64 * 1024 * 1024)
    completions = ["so $\\boxed{1}$", SLOW_TO_EXTRACT, "The final answer is 2."]
    verdicts = await backend.grade(MathReference(answer="1"), completions)
    statuses = [verdict.status for verdict in verdicts]
    assert statuses == [Status.CORRECT, Status.INCORRECT, Status.INCORRECT], verdicts
    assert verdicts[1].detail is not None and "extraction deadline" in verdicts[1].detail
    assert backend.ready  # the worker that ran past the deadline was replaced


async def test_many_completions_are_extracted_in_batches(backend: MathBackend) -> None:
    completions = [f"$\\boxed{{{i % 7}}}$" for i in range(300)]
    verdicts = await backend.grade(MathReference(answer="3"), completions)
    assert [v.status is Status.CORRECT for v in verdicts] == [i % 7 == 3 for i in range(300)]


async def test_a_gsm8k_reference_is_graded_by_its_final_line(backend: MathBackend) -> None:
    reference = MathReference(answer="Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72")
    assert reference.answer == "72"
    completions = ["She sold 48 + 24 = 72 clips.\n#### 72", "The answer is 1,250.", "So 72 is the answer."]
    verdicts = await backend.grade(reference, completions)
    assert [verdict.status for verdict in verdicts] == [Status.CORRECT, Status.INCORRECT, Status.CORRECT]


async def test_the_worker_memory_setting_reaches_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARD_MATH_WORKER_MEMORY_MB", "1536")
    backend = MathBackend(RewardSettings(math_workers=1))
    await backend.start()
    try:
        soft, hard = await backend.pool.run(resource.getrlimit, resource.RLIMIT_AS, timeout_s=30)
    finally:
        await backend.close()
    assert soft == hard == 1536 * 2**20


def test_the_worker_memory_limit_is_part_of_the_version() -> None:
    default = MathBackend(RewardSettings(math_workers=1))
    assert default.pool.memory_limit_mb == 4096  # the limit before it became a setting
    other = MathBackend(RewardSettings(math_workers=1, math_worker_memory_mb=8192))
    assert other.version != default.version


async def test_an_answer_whose_judging_raises_is_incorrect_and_a_dead_worker_is_an_error(
    backend: MathBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pool stands in for what the workers do: the judging of "7" raises (the answer's doing, e.g. a
    # MemoryError under the worker's limit), that of "8" loses its worker (ours).
    run = backend.pool.run

    async def judging_fails(fn: Callable[..., Any], *args: Any, timeout_s: float) -> Any:
        if fn is math_sympy.judge_answer and args[1] == "7":
            raise JobFailed("MemoryError")
        if fn is math_sympy.judge_answer and args[1] == "8":
            raise WorkerCrashed("the worker died")
        return await run(fn, *args, timeout_s=timeout_s)

    monkeypatch.setattr(backend.pool, "run", judging_fails)
    completions = ["$\\boxed{7}$", "$\\boxed{8}$", "$\\boxed{1}$"]
    verdicts = await backend.grade(MathReference(answer="1"), completions)
    assert [verdict.status for verdict in verdicts] == [Status.INCORRECT, Status.ERROR, Status.CORRECT]
    assert verdicts[0].detail is not None and "MemoryError" in verdicts[0].detail
