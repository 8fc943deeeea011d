"""The `code` backend: CodeContests/TACO-style Python solutions, run against their tests in a sandbox.

Flow for one group: take the program out of every completion (`code_grading.extract_code`; none -> status
`no_answer`), run each distinct program once (equal code in a group is graded once) in its own sandbox
session, test after test, and compare what it printed or returned with the expected output
(`code_grading.judge_test`). A completion is `correct` only if every test passes; else `incorrect` with a
test summary (`schemas.TestSummary`: passed, total, first failing test and its kind). By default a solution
stops at its first failing test. If the sandbox itself fails (`SandboxError`), or anything else breaks
while grading a program, the status is `error`: an infrastructure failure never becomes a wrong answer.

Solutions run in parallel up to `REWARD_CODE_MAX_PARALLEL` sessions for the whole server (one semaphore
for all requests). The sandbox is `REWARD_SANDBOX_BACKEND`: `process` (default) or `docker`, configured by
its own `SANDBOX_*` settings.

Answer classes: none (every completion gets class None). Majority voting needs a decidable equivalence
of answers; two programs' equivalence is not decidable, and classing by identical code or by identical
outputs on the tests would make maj@k meaningless for code, so code groups have no classes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from reward_server.backends.base import Memo, Verdict
from reward_server.backends.registry import register_backend
from reward_server.code_grading import (
    CodeProblem,
    CodeReference,
    LimitPolicy,
    TestFailure,
    extract_code,
    judge_test,
    load_problems,
    normalize_reference,
)
from reward_server.schemas import Status, TestSummary
from reward_server.settings import RewardSettings
from sandbox.errors import SandboxError
from sandbox.runners.base import Sandbox
from sandbox.schemas import Limits, Program, TestInput

log = logging.getLogger(__name__)


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


def limit_policy(settings: RewardSettings) -> LimitPolicy:
    return LimitPolicy(
        default_time_limit_s=settings.code_default_time_limit_s,
        default_memory_mb=settings.code_default_memory_mb,
        time_limit_factor=settings.code_time_limit_factor,
        memory_headroom_mb=settings.code_memory_headroom_mb,
        max_time_limit_s=settings.code_max_time_limit_s,
        max_memory_mb=settings.code_max_memory_mb,
    )


@register_backend("code")
class CodeBackend:
    name = "code"
    version = "0.1.0"
    description = (
        "Python solutions (CodeContests/TACO) run in a sandbox: last fenced Python block, stdin/stdout "
        "tests compared by the CodeContests token rule (1e-5), call tests by JSON return value; "
        "correct only if every test passes."
    )
    reference_model = CodeReference

    def __init__(self, settings: RewardSettings, sandbox: Sandbox | None = None) -> None:
        """`sandbox` is for tests; by default it is built from the settings in `start`."""
        self.settings = settings
        self.policy = limit_policy(settings)
        self.stop_on_first_failure = settings.code_stop_on_first_failure
        self.parallel = asyncio.Semaphore(settings.code_max_parallel)  # sessions at once, all requests
        self.sandbox = sandbox
        self.problems = (
            load_problems(settings.code_problems_path, self.policy) if settings.code_problems_path else {}
        )
        self._started = False

    async def start(self) -> None:
        if self.sandbox is None:
            self.sandbox = build_sandbox(self.settings.sandbox_backend)
        await self.sandbox.start()
        self._started = True
        log.info(
            "code backend: sandbox %s (%s), %d parallel, %d problems loaded",
            self.sandbox.name,
            self.sandbox.isolation,
            self.settings.code_max_parallel,
            len(self.problems),
        )

    async def close(self) -> None:
        if self.sandbox is not None and self._started:
            self._started = False
            await self.sandbox.close()

    @property
    def ready(self) -> bool:
        return self._started and self.sandbox is not None and self.sandbox.ready

    def parse_reference(self, raw: dict[str, Any]) -> CodeProblem:
        return normalize_reference(raw, self.policy, self.problems)

    async def grade(self, reference: BaseModel, completions: Sequence[str]) -> list[Verdict]:
        assert isinstance(reference, CodeProblem)
        codes = [extract_code(text) for text in completions]
        distinct = list(dict.fromkeys(code for code in codes if code is not None))
        inputs = [
            TestInput(stdin=test.input) if reference.fn_name is None else TestInput(args=test.input)
            for test in reference.tests
        ]
        verdicts = await asyncio.gather(*(self._grade_program(reference, inputs, code) for code in distinct))
        by_code = dict(zip(distinct, verdicts, strict=True))
        return [
            Verdict(Status.NO_ANSWER, detail="no Python code found") if code is None else by_code[code]
            for code in codes
        ]

    async def _grade_program(self, problem: CodeProblem, inputs: list[TestInput], code: str) -> Verdict:
        assert self.sandbox is not None, "the code backend is not started"
        program = Program(code=code, mode=problem.mode, fn_name=problem.fn_name)
        limits = Limits(wall_time_s=problem.time_limit_s, memory_mb=problem.memory_limit_mb)
        passed = 0
        first: tuple[int, TestFailure] | None = None
        async with self.parallel:
            try:
                async with self.sandbox.session(program, limits) as session:
                    for index, (test, test_input) in enumerate(zip(problem.tests, inputs, strict=True)):
                        failure = judge_test(problem, test, await session.run(test_input))
                        if failure is None:
                            passed += 1
                            continue
                        first = first or (index, failure)
                        if self.stop_on_first_failure:
                            break
            except SandboxError as exc:
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
        return Verdict(
            Status.INCORRECT,
            detail=f"test {index} of {total}: {failure.detail}",
            tests=summary.model_dump(),
        )

    async def answer_classes(
        self, reference: BaseModel, verdicts: Sequence[Verdict], memo: Memo
    ) -> list[int | None]:
        """No classes for code (see the module docstring): None for every verdict."""
        return [None] * len(verdicts)
