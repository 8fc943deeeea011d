"""The math backend with its real worker pool: a completion is only ever graded by what it does itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from reward_server.backends.math_sympy import MathBackend, MathReference
from reward_server.schemas import Status
from reward_server.settings import RewardSettings

# About 2 s of extraction on the dev machine (8 MB of bare boxes), far past the 0.3 s deadline below, and
# past three completions' worth of it: extracted with its neighbours in one job, it took them all down.
SLOW_TO_EXTRACT = "\\boxed 1 " * (8 * 1024 * 1024 // 9)


@pytest.fixture
async def backend() -> AsyncIterator[MathBackend]:
    backend = MathBackend(RewardSettings(math_workers=2, math_timeout_s=0.3))
    await backend.start()
    yield backend
    await backend.close()


async def test_a_completion_too_slow_to_extract_affects_only_itself(backend: MathBackend) -> None:
    completions = ["so $\\boxed{1}$", SLOW_TO_EXTRACT, "$\\boxed{2}$", "The final answer is 1."]
    verdicts = await backend.grade(MathReference(answer="1"), completions)
    statuses = [verdict.status for verdict in verdicts]
    assert statuses == [Status.CORRECT, Status.INCORRECT, Status.INCORRECT, Status.CORRECT], verdicts
    assert verdicts[1].detail is not None and "extraction deadline" in verdicts[1].detail
    assert backend.ready  # the worker that ran past the deadline was replaced


async def test_many_completions_are_extracted_in_batches(backend: MathBackend) -> None:
    completions = [f"$\\boxed{{{i % 7}}}$" for i in range(300)]
    verdicts = await backend.grade(MathReference(answer="3"), completions)
    assert [v.status is Status.CORRECT for v in verdicts] == [i % 7 == 3 for i in range(300)]
