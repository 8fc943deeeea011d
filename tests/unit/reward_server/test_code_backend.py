"""The code backend's verdicts around a scripted fake sandbox (no code is executed in these tests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from reward_server.backends.base import Verdict
from reward_server.backends.code_sandbox import CodeBackend
from reward_server.cache import MemoryCache
from reward_server.code_execution.local import build_sandbox
from reward_server.errors import BadRequest
from reward_server.grading import GradingService
from reward_server.schemas import GradeRequest, RewardSpec, Status, TestSummary
from reward_server.settings import RewardSettings
from sandbox.errors import SandboxCrashed, SandboxUnavailable
from sandbox.schemas import Limits, Outcome, Program, TestInput, TestRun

Behaviour = Callable[[TestInput], TestRun]


def ok(stdout: str = "", result: Any = None) -> TestRun:
    return TestRun(
        outcome=Outcome.OK, stdout=stdout, result_json=None if result is None else json.dumps(result)
    )


def add_stdin(test: TestInput) -> TestRun:
    return ok(f"{sum(map(int, test.stdin.split()))}\n")


def crash(test: TestInput) -> TestRun:
    raise SandboxCrashed("runner died")


def our_bug(test: TestInput) -> TestRun:
    raise ZeroDivisionError  # a bug on our side, outside the sandbox


PROGRAMS: dict[str, Behaviour] = {
    "add": add_stdin,
    "add_shouting": lambda t: ok(f"  {sum(map(int, t.stdin.split()))} \n\n"),
    "wrong_on_big": lambda t: ok("0\n") if "5" in t.stdin else add_stdin(t),
    "always_zero": lambda t: ok("0\n"),
    "crash_after_output": lambda t: TestRun(
        outcome=Outcome.RUNTIME_ERROR,
        stdout=add_stdin(t).stdout,
        exit_code=1,
        stderr_tail="Traceback (most recent call last):\nValueError: boom\n",
    ),
    "loop": lambda t: TestRun(outcome=Outcome.TIMEOUT, signal=9),
    "hog": lambda t: TestRun(outcome=Outcome.MEMORY, stderr_tail="MemoryError\n", exit_code=1),
    "escape_codes": lambda t: TestRun(
        outcome=Outcome.RUNTIME_ERROR,
        exit_code=1,
        stderr_tail="\x1b[2J\x1b]0;owned\x07Error: \x00boom\u202e\n",
    ),
    "chatty": lambda t: TestRun(outcome=Outcome.OUTPUT_LIMIT),
    "sandbox_crash": crash,
    "add_call": lambda t: ok(result=sum(t.args or [])),
    "pair_call": lambda t: ok(result=list(t.args or [])),
    "no_result": lambda t: TestRun(outcome=Outcome.OK),
    "bad_json": lambda t: TestRun(outcome=Outcome.OK, result_json="{oops"),
    "our_bug": our_bug,
}


class FakeSession:
    def __init__(self, sandbox: FakeSandbox, behaviour: Behaviour) -> None:
        self.sandbox = sandbox
        self.behaviour = behaviour

    async def run(self, test: TestInput) -> TestRun:
        await asyncio.sleep(0.005)  # long enough for parallel sessions to overlap
        self.sandbox.runs += 1
        return self.behaviour(test)


class FakeSandbox:
    """Looks up the program's (stripped) code in PROGRAMS; 'unavailable' cannot open a session."""

    name = "fake"
    isolation = "none (test double)"

    def __init__(self) -> None:
        self.started = False
        self.sessions: list[tuple[Program, Limits]] = []
        self.runs = 0
        self.active = 0
        self.max_active = 0

    @property
    def ready(self) -> bool:
        return self.started

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False

    @asynccontextmanager
    async def session(self, program: Program, limits: Limits) -> AsyncIterator[FakeSession]:
        self.sessions.append((program, limits))
        if program.code.strip() == "unavailable":
            raise SandboxUnavailable("no runner")
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            yield FakeSession(self, PROGRAMS[program.code.strip()])
        finally:
            self.active -= 1


STDIN = {"tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5\n", "output": "10\n"}]}
CALL = {"fn_name": "add", "tests": [{"input": [1, 2], "output": 3}, {"input": [5, 5], "output": 10}]}


@pytest.fixture
def sandbox() -> FakeSandbox:
    return FakeSandbox()


async def make_backend(sandbox: FakeSandbox, **settings: Any) -> CodeBackend:
    backend = CodeBackend(RewardSettings(**settings), sandbox=sandbox)
    await backend.start()
    return backend


async def grade(backend: CodeBackend, reference: dict[str, Any], completions: list[str]) -> list[Verdict]:
    return await backend.grade(backend.parse_reference(reference), completions)


def summary(verdict: Verdict) -> TestSummary:
    assert verdict.tests is not None
    return TestSummary.model_validate(verdict.tests)


async def test_all_tests_pass_is_correct(sandbox: FakeSandbox) -> None:
    backend = await make_backend(sandbox)
    (verdict,) = await grade(backend, STDIN, ["```python\nadd\n```"])
    assert verdict.status is Status.CORRECT
    assert summary(verdict) == TestSummary(passed=2, total=2)
    assert backend.ready


async def test_stdout_compared_by_tokens(sandbox: FakeSandbox) -> None:
    (verdict,) = await grade(await make_backend(sandbox), STDIN, ["add_shouting"])
    assert verdict.status is Status.CORRECT


async def test_wrong_answer_stops_at_the_first_failure(sandbox: FakeSandbox) -> None:
    reference = {"tests": [*STDIN["tests"], {"input": "1 1\n", "output": "2\n"}]}
    (verdict,) = await grade(await make_backend(sandbox), reference, ["wrong_on_big"])
    assert verdict.status is Status.INCORRECT
    assert summary(verdict) == TestSummary(passed=1, total=3, first_failure=1, failure_kind="wrong_answer")
    assert sandbox.runs == 2  # the third test was not run
    assert verdict.detail is not None and "test 1 of 3" in verdict.detail


async def test_all_tests_run_when_not_stopping(sandbox: FakeSandbox) -> None:
    backend = await make_backend(sandbox, code_stop_on_first_failure=False)
    reference = {"tests": [*STDIN["tests"], {"input": "1 1\n", "output": "2\n"}]}
    (verdict,) = await grade(backend, reference, ["wrong_on_big"])
    assert summary(verdict) == TestSummary(passed=2, total=3, first_failure=1, failure_kind="wrong_answer")
    assert sandbox.runs == 3


@pytest.mark.parametrize(
    ("program", "kind"),
    [
        ("always_zero", "wrong_answer"),
        ("crash_after_output", "runtime_error"),  # right output, then a crash: not a pass
        ("loop", "timeout"),
        ("hog", "memory"),
        ("chatty", "output_limit"),
    ],
)
async def test_failure_kinds(sandbox: FakeSandbox, program: str, kind: str) -> None:
    (verdict,) = await grade(await make_backend(sandbox), STDIN, [program])
    assert verdict.status is Status.INCORRECT
    assert summary(verdict) == TestSummary(passed=0, total=2, first_failure=0, failure_kind=kind)


async def test_runtime_error_detail_shows_the_exception(sandbox: FakeSandbox) -> None:
    (verdict,) = await grade(await make_backend(sandbox), STDIN, ["crash_after_output"])
    assert verdict.detail == "test 0 of 2: runtime_error, exit status 1: ValueError: boom"


async def test_detail_shows_no_control_characters_the_program_wrote(sandbox: FakeSandbox) -> None:
    (verdict,) = await grade(await make_backend(sandbox), STDIN, ["escape_codes"])
    assert verdict.detail is not None and verdict.detail.isprintable()
    assert verdict.detail.endswith("Error: \ufffdboom\ufffd")


@pytest.mark.parametrize("program", ["sandbox_crash", "unavailable", "our_bug"])
async def test_infrastructure_failures_are_errors_not_wrong_answers(
    sandbox: FakeSandbox, program: str
) -> None:
    verdicts = await grade(await make_backend(sandbox), STDIN, [program, "add"])
    assert verdicts[0].status is Status.ERROR and verdicts[0].tests is None
    assert verdicts[1].status is Status.CORRECT  # one program's failure does not spoil the others


async def test_no_code_is_no_answer_and_never_runs(sandbox: FakeSandbox) -> None:
    verdicts = await grade(await make_backend(sandbox), STDIN, ["", "```cpp\nint main(){}\n```", "  \n"])
    assert [v.status for v in verdicts] == [Status.NO_ANSWER] * 3
    assert sandbox.sessions == []


async def test_equal_code_is_graded_once(sandbox: FakeSandbox) -> None:
    completions = ["```python\nadd\n```", "add", "Sure:\n```py\nadd\n```\nDone.", "always_zero"]
    verdicts = await grade(await make_backend(sandbox), STDIN, completions)
    assert [v.status for v in verdicts] == [Status.CORRECT] * 3 + [Status.INCORRECT]
    assert sorted(program.code for program, _ in sandbox.sessions) == ["add\n", "always_zero\n"]


async def test_parallel_sessions_are_bounded(sandbox: FakeSandbox) -> None:
    backend = await make_backend(sandbox, code_max_parallel=2)
    programs = ["add", "add_shouting", "always_zero", "loop", "hog", "chatty"]
    await asyncio.gather(grade(backend, STDIN, programs[:3]), grade(backend, STDIN, programs[3:]))
    assert sandbox.max_active == 2


async def test_program_and_limits_reach_the_sandbox(sandbox: FakeSandbox) -> None:
    backend = await make_backend(sandbox)
    await grade(backend, {**CALL, "time_limit_s": 2.5, "memory_limit_mb": 200}, ["add_call"])
    program, limits = sandbox.sessions[0]
    assert program == Program(code="add_call\n", mode="call", fn_name="add")
    # The time limit is on CPU time; the wall clock stops a sleeping program at 2 x the limit + 1 s.
    assert (limits.cpu_time_s, limits.wall_time_s, limits.memory_mb) == (2.5, 6.0, 232)


async def test_call_results(sandbox: FakeSandbox) -> None:
    backend = await make_backend(sandbox)
    verdicts = await grade(backend, CALL, ["add_call", "pair_call", "no_result", "bad_json"])
    assert [v.status for v in verdicts] == [Status.CORRECT] + [Status.INCORRECT] * 3
    assert [summary(v).failure_kind for v in verdicts[1:]] == [
        "wrong_answer",
        "runtime_error",
        "wrong_answer",
    ]


async def test_taco_wrapped_call_outputs(sandbox: FakeSandbox) -> None:
    io = {"fn_name": "add", "inputs": [[1, 2], [5, 5]], "outputs": [[3], [10]]}
    (verdict,) = await grade(await make_backend(sandbox), {"input_output": json.dumps(io)}, ["add_call"])
    assert verdict.status is Status.CORRECT


async def test_no_answer_classes_for_code(sandbox: FakeSandbox) -> None:
    backend = await make_backend(sandbox)
    verdicts = await grade(backend, STDIN, ["add", "add", "always_zero", ""])

    async def memo(parts: Any, compute: Any) -> Any:
        raise AssertionError("not used")

    assert await backend.answer_classes(backend.parse_reference(STDIN), verdicts, memo) == [None] * 4


async def test_through_the_grading_service(sandbox: FakeSandbox) -> None:
    backend = await make_backend(sandbox)
    service = GradingService({"code": backend}, MemoryCache(100), RewardSpec())
    body = {
        "groups": [
            {
                "group_id": "g",
                "backend": "code",
                "reference": STDIN,
                "completions": ["add", "always_zero", "", "sandbox_crash"],
            }
        ]
    }
    group = (await service.grade(GradeRequest.model_validate(body))).groups[0]
    assert [r.status for r in group.results] == ["correct", "incorrect", "no_answer", "error"]
    assert [r.reward for r in group.results] == [1.0, -1.0, -1.0, None]
    assert group.results[1].tests == TestSummary(
        passed=0, total=2, first_failure=0, failure_kind="wrong_answer"
    )
    assert [r.answer_class for r in group.results] == [None] * 4 and group.answer_classes == []


async def test_bad_reference_is_a_4xx_naming_the_field(sandbox: FakeSandbox) -> None:
    service = GradingService({"code": await make_backend(sandbox)}, MemoryCache(100), RewardSpec())
    reference = {"private_tests": {"input": ["1", "2"], "output": ["1"]}}
    body = {"groups": [{"group_id": "g", "backend": "code", "reference": reference, "completions": ["add"]}]}
    with pytest.raises(BadRequest) as info:
        await service.grade(GradeRequest.model_validate(body))
    assert info.value.http_status == 422
    assert info.value.fields[0]["loc"] == ["body", "groups", 0, "reference", "private_tests", "output"]
    assert "1 inputs" not in str(info.value) and "reference.private_tests.output" in str(info.value)
    assert sandbox.sessions == []


async def test_close_stops_the_sandbox(sandbox: FakeSandbox) -> None:
    backend = await make_backend(sandbox)
    await backend.close()
    assert not sandbox.started and not backend.ready


def test_settings_choose_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARD_SANDBOX_BACKEND", "docker")
    monkeypatch.setenv("REWARD_CODE_MAX_PARALLEL", "3")
    settings = RewardSettings()
    assert settings.sandbox_backend == "docker" and settings.code_max_parallel == 3
    monkeypatch.setenv("REWARD_SANDBOX_BACKEND", "firecracker")
    with pytest.raises(ValueError, match="sandbox_backend"):
        RewardSettings()
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        build_sandbox("firecracker")


def starved_once() -> Behaviour:
    """Out of wall time with CPU to spare on its first run (a neighbour's load?), right on its second."""
    runs: list[int] = []

    def behaviour(test: TestInput) -> TestRun:
        runs.append(1)
        if len(runs) == 1:
            return TestRun(outcome=Outcome.TIMEOUT, signal=9, certain=False)
        return add_stdin(test)

    return behaviour


async def test_an_uncertain_failure_is_run_again(
    sandbox: FakeSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PROGRAMS, "starved_once", starved_once())
    (verdict,) = await grade(await make_backend(sandbox), STDIN, ["starved_once"])
    assert verdict.status is Status.CORRECT and verdict.certain
    assert sandbox.runs == 3  # test 0 twice, test 1 once


async def test_a_certain_failure_is_not_run_again(sandbox: FakeSandbox) -> None:
    (verdict,) = await grade(await make_backend(sandbox), STDIN, ["loop"])
    assert verdict.status is Status.INCORRECT and verdict.certain and sandbox.runs == 1


async def test_an_uncertain_verdict_is_never_cached(
    sandbox: FakeSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        PROGRAMS, "starved", lambda t: TestRun(outcome=Outcome.TIMEOUT, signal=9, certain=False)
    )
    service = GradingService({"code": await make_backend(sandbox)}, MemoryCache(100), RewardSpec())
    body = {
        "groups": [
            {"group_id": "g", "backend": "code", "reference": STDIN, "completions": ["starved", "loop"]}
        ]
    }
    for round_ in (1, 2):
        (group,) = (await service.grade(GradeRequest.model_validate(body))).groups
        assert [r.status for r in group.results] == ["incorrect", "incorrect"]
        assert "not cached" in (group.results[0].detail or "")
        # Graded anew each time (run twice each time); the certain timeout only once, then from the cache.
        assert sandbox.runs == {1: 2 + 1, 2: 2 + 1 + 2}[round_]


async def test_long_completions_are_extracted_in_a_worker_process(sandbox: FakeSandbox) -> None:
    backend = await make_backend(sandbox)
    long_prose = "x\n" * (1024 * 1024) + "```python\nadd\n```\n"  # 2 MB: over the inline limit
    long_nothing = "```cpp\n" + "int x;\n" * 300_000 + "```"
    verdicts = await grade(backend, STDIN, [long_prose, "```python\nadd\n```", long_nothing])
    assert [v.status for v in verdicts] == [Status.CORRECT, Status.CORRECT, Status.NO_ANSWER]
    assert backend.extractor.pool.alive
    await backend.close()
    assert not backend.extractor.pool.alive


async def test_a_run_longer_than_its_cap_stops_as_an_uncertain_timeout(sandbox: FakeSandbox) -> None:
    backend = await make_backend(sandbox, code_max_run_s=0.001)  # each fake test takes 5 ms
    (verdict,) = await grade(backend, STDIN, ["add"])
    assert verdict.status is Status.INCORRECT and not verdict.certain
    assert summary(verdict).failure_kind == "timeout" and summary(verdict).first_failure == 1
    assert "REWARD_CODE_MAX_RUN_S" in (verdict.detail or "") and sandbox.runs == 1
