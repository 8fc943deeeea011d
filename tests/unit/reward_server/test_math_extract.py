"""Final-answer extraction (CONVENTIONS §1-§3): table-driven cases plus linear-time guards."""

from __future__ import annotations

import time

import pytest

from reward_server.math_grading import extract_answer

BOXES = [
    ("So the answer is $\\boxed{42}$.", "42"),
    ("$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}"),
    ("Thus $\\boxed{\\dfrac{2^{10}}{3}}$.", "\\dfrac{2^{10}}{3}"),
    ("\\fbox{7}", "7"),
    ("The number of divisors is $\\boxed 9$.", "9"),
    ("The number of divisors is \\boxed 9.", "9"),
    ("\\[\n\\boxed{1}\n\\]", "1"),
    ("$$\\boxed{-1}$$\n\n(Note: a common mistake is to answer $1$ here.)", "-1"),
    ("which gives \\boxed{3}. Wait, let me verify: $2(3) + 1 = 7$. Yes.", "3"),
    ("\\boxed{\\boxed{3}}", "\\boxed{3}"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}"),
    ("Solving, we get $\\boxed{x = 3}$.", "x = 3"),
]

LAST_BOX_WINS = [
    ("The smallest value is $\\boxed{7}$.\n\nActually 7 fails; 9 works.\n\nFinal answer: $\\boxed{9}$", "9"),
    ("The width is $w = \\boxed{3}$ and the length is $4$. The area is $12$.\n\nHence $\\boxed{12}$.", "12"),
    ("\\boxed{a}\\boxed{b}", "b"),
    ("An early \\boxed{12 draft, then \\boxed{5}", "5"),
]

ADJACENT_BOXES = [
    ("x = \\boxed{-2} or x = \\boxed{5}", "-2, 5"),
    ("So $x = \\boxed{-2}$ or $x = \\boxed{5}$.", "-2, 5"),
    ("The roots are $\\boxed{2}$ and $\\boxed{3}$.", "2, 3"),
    ("\\boxed{2}, \\boxed{3}, \\boxed{4}", "2, 3, 4"),
    ("$\\boxed{1}$ \\text{ or } $\\boxed{2}$", "1, 2"),
    # Two different values in the final sentence are a hedge: returned as a list so a single gold fails.
    ("It is \\boxed{6} or \\boxed{7}.", "6, 7"),
    ("It is \\boxed{6} or \\boxed{6}.", "6"),
]

MARKERS = [
    ("**Answer:** $\\frac12$", "\\frac12"),
    ("**Final Answer:** **74**", "74"),
    ("The final answer is 9.", "9"),
    ("The final answer is 8. I double-checked the count.", "8"),
    ("Final Answer: The final answer is $24$. I hope it is correct.", "24"),
    ("Final Answer: The final answer is $\\$1.05$. I hope it is correct.", "\\$1.05"),
    ("Answer: 42", "42"),
    ("The answer is: $x = 3$", "x = 3"),
    ("The answer is \\(\\frac{3}{4}\\).", "\\frac{3}{4}"),
    ("The answer is $6$ or $7$.", "6, 7"),
    ("The answer is 6 or maybe 7, I'm not completely sure.", "6 or maybe 7, I'm not completely sure"),
    ("The answer is 5. Hmm, no. The answer is 7.", "7"),
]

LAST_SENTENCE = [
    ("Adding everything up, the total is $42$.", "42"),
    ("So there are 42 ways.", "42"),
    ("Therefore\n\\[ x = 5 \\]", "x = 5"),
    ("$$\\frac{3}{4}$$", "\\frac{3}{4}"),
    ("Final Answer\n\n$5$", "5"),
]

INVALID = [
    ("The answer is $\\boxed{12", "unterminated box"),
    ("The answer is $\\boxed{}$.", "empty box"),
    ("The answer is $\\boxed{ }$.", "blank box"),
    ("\\boxed{3} and, revising, \\boxed{", "last box unterminated"),
    ("Writing $196 = 2^2 \\cdot 7^2$, the exponent of 2 can be", "truncated"),
    ("The final answer is", "marker without value"),
    ("The final answer is $\\frac{1}{2", "marker with unterminated math"),
    ("I'm sorry, but I can't help with that.", "refusal"),
    ("I cannot solve this problem without more information.", "refusal without answer"),
    ("We factor 196 first.", "no answer stated"),
    ("", "empty"),
    ("   \n ", "blank"),
]


@pytest.mark.parametrize(("completion", "expected"), BOXES + LAST_BOX_WINS)
def test_last_complete_box(completion: str, expected: str) -> None:
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(("completion", "expected"), ADJACENT_BOXES)
def test_adjacent_boxes_form_one_list(completion: str, expected: str) -> None:
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(("completion", "expected"), MARKERS)
def test_marker_without_box(completion: str, expected: str) -> None:
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(("completion", "expected"), LAST_SENTENCE)
def test_last_sentence_fallback(completion: str, expected: str) -> None:
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(("completion", "why"), INVALID, ids=[why for _, why in INVALID])
def test_invalid_answers_are_none(completion: str, why: str) -> None:
    assert extract_answer(completion) is None, why


MEGABYTE = 1_000_000
LINEAR_INPUTS = {
    "3000-deep box": "\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}",
    "3000-deep unterminated": "\\boxed{" + "{" * 3000 + "1",
    "1MB prose": "The answer is 5. " * (MEGABYTE // 17),
    "1MB one word": "x" * MEGABYTE,
    "1MB braces around a box": "{" * (MEGABYTE // 2) + "\\boxed{3}" + "}" * (MEGABYTE // 2),
    "1MB boxes": "\\boxed{1} and " * (MEGABYTE // 14),
    "1MB unterminated boxes": "\\boxed{" * (MEGABYTE // 7),
    "1MB dollars": "$" * MEGABYTE,
    "1MB after marker": "answer: $" + "1" * MEGABYTE,
    "1MB backslashes": "\\" * MEGABYTE,
}


@pytest.mark.parametrize("name", list(LINEAR_INPUTS))
def test_extraction_is_fast_on_adversarial_input(name: str) -> None:
    start = time.perf_counter()
    extract_answer(LINEAR_INPUTS[name])
    assert time.perf_counter() - start < 2.0


def test_extraction_time_grows_linearly() -> None:
    # Quadratic behaviour would make the 8x input take ~64x longer; allow generous noise.
    def seconds(size: int) -> float:
        text = ("\\boxed{1} and {x} " * size) + "\\boxed{" * size
        start = time.perf_counter()
        extract_answer(text)
        return time.perf_counter() - start

    small, large = seconds(5_000), seconds(40_000)
    assert large < 30 * max(small, 1e-3)
