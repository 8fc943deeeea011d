"""`grade_completion`: extraction plus judgement in one call, for benches and one-off checks."""

from __future__ import annotations

from reward_server.math_grading.equivalence import judge
from reward_server.math_grading.extract import extract_answer, gold_answer


def grade_completion(gold: str, completion: str) -> bool:
    """Whether a completion's final answer is equivalent to the gold answer.

    Args:
        gold: the gold answer, bare LaTeX as in MATH's `answer` field (or GSM8K's "... #### 42").
        completion: the model's full response.

    Returns:
        False when no valid answer can be extracted (conventions §2), else `judge(...).equivalent`.

    Example:
        >>> grade_completion("\\\\frac{14}{3}", "Thus, the answer is $\\\\boxed{\\\\dfrac{14}{3}}$.")
        True
    """
    answer = extract_answer(completion)
    return answer is not None and judge(gold_answer(gold), answer).equivalent
