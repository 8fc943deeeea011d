"""Runs programs in this process's own sandbox: the embedded default, and what each queue worker runs.

One program is one sandbox session: its tests run in turn, each judged by `code_grading.judge_test`. A
program is `correct` only if every test passes; else `incorrect` with a test summary
(`schemas.TestSummary`); by default it stops at its first failing test. If the sandbox itself fails
(`SandboxError`), or anything else breaks while grading, the status is `error`: an infrastructure failure
never becomes a wrong answer. At most `REWARD_CODE_MAX_PARALLEL` sessions run at once (one semaphore for
every request of the process).

Time: a problem's time limit is on CPU time (all the program's processes together), so a busy machine or a
neighbour's load does not make a program miss it; the wall clock only stops programs that sleep or block,
at `REWARD_CODE_WALL_TIME_FACTOR` x the limit + 1 s. A failing test whose outcome the sandbox cannot pin on
the program (`TestRun.certain` false: out of wall time with CPU time to spare, or an OOM kill in a cgroup it
shared) is run once more; if that run is no more certain, the verdict stands but is marked uncertain and the
grading service does not cache it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from reward_server.code_grading import CodeProblem, FailureKind, TestFailure, judge_test
from reward_server.metrics import COMPONENTS
from reward_server.schemas import Status, TestSummary
from reward_server.settings import RewardSettings
from reward_server.verdict import Verdict
from sandbox.errors import SandboxError
from sandbox.runners.base import Sandbox
from sandbox.schemas import Limits, Program, TestInput

log = logging.getLogger(__name__)

WALL_SLACK_S = 1.0  # beyond the wall-clock multiple of the time limit: a program's start and exit


def sandbox_limits(problem: CodeProblem, settings: RewardSettings) -> Limits:
    """The sandbox limits of each of `problem`'s tests: its time limit on CPU time, a wall-clock backstop."""
    return Limits(
        cpu_time_s=problem.time_limit_s,
        wall_time_s=problem.time_limit_s * settings.code_wall_time_factor + WALL_SLACK_S,
        memory_mb=problem.memory_limit_mb,
    )


def run_cap_s(problem: CodeProblem, settings: RewardSettings) -> float:
    """How long a program's tests may take in all: each at its wall-clock limit, capped by
    REWARD_CODE_MAX_RUN_S. A run that has used it up (e.g. with reruns) stops before its next test."""
    return min(len(problem.tests) * sandbox_limits(problem, settings).wall_time_s, settings.code_max_run_s)


def run_time_bound_s(problem: CodeProblem, settings: RewardSettings) -> float:
    """The longest a program's run can take (for whoever waits on it, e.g. the job queue): its compilation
    (at most one wall-clock limit), its tests up to the cap, then the test under way and its one rerun."""
    return run_cap_s(problem, settings) + 3 * sandbox_limits(problem, settings).wall_time_s


def build_sandbox(backend: str) -> Sandbox:
    """The sandbox named by `REWARD_SANDBOX_BACKEND`, configured by `SANDBOX_*` (not started)."""
    if backend not in ("process", "docker"):
        raise ValueError(f"unknown sandbox backend {backend!r}; valid: process, docker")
    from sandbox.settings import SandboxSettings

    if backend == "docker":
        from sandbox.runners.docker import DockerSandbox

        return DockerSandbox(SandboxSettings())
    from sandbox.runners.process import ProcessSandbox

    return ProcessSandbox(SandboxSettings())


class LocalExecutor:
    """Grades programs in a sandbox of this process (built from the settings unless one is given)."""

    def __init__(self, settings: RewardSettings, sandbox: Sandbox | None = None) -> None:
        self.settings = settings
        self.sandbox = sandbox or build_sandbox(settings.sandbox_backend)
        self.stop_on_first_failure = settings.code_stop_on_first_failure
        self.parallel = asyncio.Semaphore(settings.code_max_parallel)
        self._started = False

    @property
    def description(self) -> str:
        return (
            f"local sandbox {self.sandbox.name} ({self.sandbox.isolation}), "
            f"{self.settings.code_max_parallel} parallel"
        )

    async def start(self) -> None:
        await self.sandbox.start()
        self._started = True

    async def close(self) -> None:
        if self._started:
            self._started = False
            await self.sandbox.close()

    @property
    def ready(self) -> bool:
        return self._started and self.sandbox.ready

    async def run_all(self, problem: CodeProblem, codes: Sequence[str]) -> list[Verdict]:
        """One verdict per program, in order; the programs run in parallel (up to the limit)."""
        inputs = [
            TestInput(stdin=test.input) if problem.fn_name is None else TestInput(args=test.input)
            for test in problem.tests
        ]
        verdicts = list(await asyncio.gather(*(self._run(problem, inputs, code) for code in codes)))
        COMPONENTS.programs_graded(verdicts)  # metrics hook
        return verdicts

    async def _run(self, problem: CodeProblem, inputs: list[TestInput], code: str) -> Verdict:
        program = Program(code=code, mode=problem.mode, fn_name=problem.fn_name)
        passed = 0
        first: tuple[int, TestFailure] | None = None
        certain = True
        async with self.parallel:
            try:
                async with self.sandbox.session(program, sandbox_limits(problem, self.settings)) as session:
                    cap_s = run_cap_s(problem, self.settings)
                    run_ends = time.monotonic() + cap_s
                    for index, (test, test_input) in enumerate(zip(problem.tests, inputs, strict=True)):
                        if time.monotonic() > run_ends:
                            # Slow on many tests: the run stops, a timeout (sleeping or starved: not certain).
                            if first is None:
                                detail = f"its tests took over {cap_s:g} s in all (REWARD_CODE_MAX_RUN_S)"
                                first, certain = (index, TestFailure(FailureKind.TIMEOUT, detail)), False
                            break
                        run = await session.run(test_input)
                        COMPONENTS.test_run(run)  # metrics hook
                        failure = judge_test(problem, test, run)
                        if failure is not None and not run.certain:
                            # Perhaps not the program's doing (a neighbour's load or memory): once more.
                            run = await session.run(test_input)
                            COMPONENTS.test_run(run)
                            failure = judge_test(problem, test, run)
                            certain = certain and (failure is None or run.certain)
                        if failure is None:
                            passed += 1
                            continue
                        first = first or (index, failure)
                        if self.stop_on_first_failure:
                            break
            except SandboxError as exc:
                COMPONENTS.sandbox_failure(exc)  # metrics hook
                log.warning("sandbox failed: %s", exc)
                return Verdict(Status.ERROR, detail=f"sandbox failed: {type(exc).__name__}: {exc}")
            except Exception as exc:  # a bug of ours is an infrastructure failure too, never a wrong answer
                log.exception("grading a program failed")
                return Verdict(Status.ERROR, detail=f"grading failed: {type(exc).__name__}")
        total = len(problem.tests)
        if first is None:
            return Verdict(Status.CORRECT, tests=TestSummary(passed=passed, total=total).model_dump())
        index, failure = first
        summary = TestSummary(
            passed=passed, total=total, first_failure=index, failure_kind=failure.kind.value
        )
        doubt = "" if certain else " (perhaps others' load: not cached)"
        return Verdict(
            Status.INCORRECT,
            detail=f"test {index} of {total}: {failure.detail}{doubt}",
            tests=summary.model_dump(),
            certain=certain,
        )
