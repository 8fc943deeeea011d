"""From what one test did (`sandbox.schemas.TestRun`) to pass or the kind of failure; pure.

A test passes only if the program ended normally (outcome `ok`: exit status 0 within the limits) and its
output matches. A crash after the right output is a `runtime_error`: the outcome is checked first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from reward_server.code_grading.compare import call_result_matches, stdout_matches
from reward_server.code_grading.reference import CodeProblem, CodeTest
from sandbox.schemas import Outcome, TestRun


class FailureKind(StrEnum):
    WRONG_ANSWER = "wrong_answer"
    TIMEOUT = "timeout"
    RUNTIME_ERROR = "runtime_error"
    MEMORY = "memory"
    OUTPUT_LIMIT = "output_limit"


_KIND_OF_OUTCOME = {
    Outcome.TIMEOUT: FailureKind.TIMEOUT,
    Outcome.MEMORY: FailureKind.MEMORY,
    Outcome.RUNTIME_ERROR: FailureKind.RUNTIME_ERROR,
    Outcome.OUTPUT_LIMIT: FailureKind.OUTPUT_LIMIT,
}


@dataclass(frozen=True)
class TestFailure:
    __test__ = False

    kind: FailureKind
    detail: str


def judge_test(problem: CodeProblem, test: CodeTest, run: TestRun) -> TestFailure | None:
    """None if `run` passes `test`, else why not.

    Example:
        >>> problem = CodeProblem(tests=[CodeTest(input="", output="3")], time_limit_s=1, memory_limit_mb=64)
        >>> judge_test(problem, problem.tests[0], TestRun(outcome="ok", stdout="3\\n")) is None
        True
    """
    if run.outcome is not Outcome.OK:
        return TestFailure(_KIND_OF_OUTCOME[run.outcome], _describe(run))
    if problem.fn_name is None:
        if stdout_matches(run.stdout, test.output):
            return None
        return TestFailure(FailureKind.WRONG_ANSWER, "output differs")
    if run.result_json is None:
        return TestFailure(FailureKind.RUNTIME_ERROR, f"{problem.fn_name} returned no result")
    try:
        result = json.loads(run.result_json)
    except (ValueError, RecursionError):
        return TestFailure(FailureKind.WRONG_ANSWER, "return value is not JSON")
    if call_result_matches(result, test.output, accept_wrapped=problem.accept_wrapped_output):
        return None
    return TestFailure(FailureKind.WRONG_ANSWER, "return value differs")


def _describe(run: TestRun) -> str:
    parts = [run.outcome.value]
    if run.exit_code is not None:
        parts.append(f"exit status {run.exit_code}")
    if run.signal is not None:
        parts.append(f"signal {run.signal}")
    last_line = next((line for line in reversed(run.stderr_tail.splitlines()) if line.strip()), "")
    text = ", ".join(parts)
    return f"{text}: {_printable(last_line[:200])}" if last_line else text


def _printable(text: str) -> str:
    # The program writes this line: escape sequences or control characters would reach every log and terminal
    # that shows a verdict's detail, so each non-printable character becomes U+FFFD.
    return "".join(char if char.isprintable() else "\ufffd" for char in text)
