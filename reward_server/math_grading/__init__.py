"""MATH answer grading: extraction, normalization and equivalence (pure functions, no timeouts).

The rules are those of `docs/math-conventions.md`. Nothing here enforces a deadline: callers run
these functions inside a worker process that is killed at a hard deadline (see `reward_server.deadline_pool`).

Public API:
    extract_answer(completion) -> str | None      the raw final answer of a completion, or None
    gold_answer(reference) -> str                 the gold of a reference (GSM8K's "#### 42" gives 42)
    judge(gold, answer) -> Judgement              is `answer` (an extracted answer) equivalent to `gold`?
    grade_completion(gold, completion) -> bool    extract + judge, for benches and one-off checks
"""

from reward_server.math_grading.equivalence import Judgement, display_form, judge
from reward_server.math_grading.extract import extract_answer, gold_answer
from reward_server.math_grading.grader import grade_completion

__all__ = ["Judgement", "display_form", "extract_answer", "gold_answer", "grade_completion", "judge"]
