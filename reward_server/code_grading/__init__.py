"""Code grading: extraction, reference parsing and output comparison (pure functions, no execution).

The `code` backend (`reward_server.backends.code_sandbox`) runs programs in the sandbox and uses these to
decide. The rules are in each module's docstring.

Public API:
    extract_code(completion) -> str | None                      the program of a completion, or None
    normalize_reference(raw, policy, problems) -> CodeProblem   any accepted reference form, normalized
    load_problems(path, policy) -> dict[str, CodeProblem]       problems for `{"problem_id": ...}`
    stdout_matches(got, expected) -> bool                       the CodeContests token rule
    call_result_matches(got, expected, accept_wrapped) -> bool  JSON return values
    judge_test(problem, test, run) -> TestFailure | None        one test's verdict from a sandbox TestRun
"""

from reward_server.code_grading.compare import call_result_matches, stdout_matches
from reward_server.code_grading.extract import extract_code
from reward_server.code_grading.judge import FailureKind, TestFailure, judge_test
from reward_server.code_grading.reference import (
    CodeProblem,
    CodeReference,
    CodeTest,
    LimitPolicy,
    load_problems,
    normalize_reference,
    request_context,
)

__all__ = [
    "CodeProblem",
    "CodeReference",
    "CodeTest",
    "FailureKind",
    "LimitPolicy",
    "TestFailure",
    "call_result_matches",
    "extract_code",
    "judge_test",
    "load_problems",
    "normalize_reference",
    "request_context",
    "stdout_matches",
]
