"""Final-answer extraction (conventions §1-§3): table-driven cases plus linear-time guards."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reward_server.math_grading import extract_answer, grade_completion

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
    # Boxes with nothing but space between them are side by side too (§3: two boxes with different values).
    ("\\boxed{a}\\boxed{b}", "a, b"),
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

# Formats of other models and eval harnesses (GSM8K, minerva-math, chat templates); see also
# data/math/format_cases.jsonl for whole graded cases.
ONLY_A_VALUE = [
    ("-12", "-12"),
    ("\\frac{3}{4}", "\\frac{3}{4}"),
    ("40 percent", "40 percent"),
    ("1,250,000", "1,250,000"),
    ("9.", "9"),
    ("  $x = 5$  ", "x = 5"),
    ("(C)", "(C)"),
    ("C", "C"),
    ("Evelyn", "Evelyn"),
]
ANSWER_AFTER_VALUE = [
    ("Checking all cases, $x=4$ is the solution.", "x=4"),
    ("So 12 is our answer.", "12"),
    ("Hence $\\frac{1}{2}$ is the final answer.", "\\frac{1}{2}"),
    ("We try small cases first. So 7 is the answer. I hope it is correct.", "7"),
    # A hedge or a list before "is the answer" is returned whole, never its last element alone.
    ("So 3 or 4 is the answer.", "3, 4"),
    ("So $3$ or maybe $4$ is the answer.", "3, 4"),
    ("Checking each, 2, 3 and 5 are the solutions.", "2, 3, 5"),
]
CHAT_TOKENS = [
    ("So the total is $42$.<|im_end|>", "42"),
    ("So the total is $42$.</s>", "42"),
    ("So the total is $42$.<|eot_id|>", "42"),
    ("The answer is 5.<|im_end|>\n<|im_start|>user\nNow solve 2+2. The answer is 9.", "5"),
    ("<|im_start|>assistant\nThe answer is 5.<|im_end|>", "5"),
    ("Therefore the answer is \\boxed{3}.<|endoftext|>Question: what is \\boxed{4}?", "3"),
]
GSM8K = [
    ("Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 clips.\n#### 72", "72"),
    ("Janet has 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = $18.\nA: 18", "18"),
    ("Q: How many?\nA: There are 3 + 4 = 7 apples. The answer is 7.", "7"),
    # A Markdown heading is not GSM8K's answer line.
    ("#### Step 1: count\nThere are 3 + 4 = 7 apples.\n#### Step 2: total\nThe total is 12.", "12"),
]
OTHER_MARKERS = [
    ("Adding up the parts gives the total.\nAnswer $ 12 $", "12"),
    ("Final Answer: Janet makes 18 dollars every day.", "18"),
    ("We simplify the fraction.\nResult: $\\frac{2}{3}$", "\\frac{2}{3}"),
    ("So the answer is (C).", "(C)"),
    ("Final Answer: The final answer is 24. I hope it is correct.", "24"),
    ("Adding the two equations gives $2a = 14$.\n**Answer** $7$", "7"),
    # GSM8K's currency: a `$` with no other `$` after it on its line is a dollar sign, not math.
    ("She sells 9 eggs at $2 each.\nThe answer is $18.", "18"),
    ("It was sold for 25% more. The answer is $1,250,000", "1,250,000"),
]
STATED_IN_PROSE = [
    ("We counted 40 marbles and 12 of them are red. So, 30% of the marbles are red.", "30%"),
    ("12 cars were left in the lot.", "12"),
    ("In the end, 12 cars were left in the lot.", "12"),
    ("After the sale, five boxes are left.", "5"),
    ("Five boxes are left.", "5"),
    ("There are twenty-four ways.", "24"),
    ("So the value is $7$.\nI hope it is correct.", "7"),
    ("So the value is $7$.\nThis should be right.", "7"),
    ("She sells 9 eggs at 2 dollars each.\nShe ends up with 18 dollars.", "18"),
]
# A completion that boxes intermediate values and then states its final answer: the final statement wins;
# a box after the statement wins in turn; a word after a box ("the answer is correct") does not override.
FINAL_STATEMENT_AFTER_BOXES = [
    ("First $a = \\boxed{4}$, then $b = \\boxed{2}$. The final answer is $6$.", "6"),
    ("So $\\boxed{4}$.\n\nFinal Answer: The final answer is 6. I hope it is correct.", "6"),
    ("The final answer is $6$. Correcting an error: \\boxed{8}", "8"),
    ("Thus \\boxed{12}. I checked that the answer is correct.", "12"),
    ("Thus \\boxed{12}. Note that the answer is 12 only when x > 0.", "12"),
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
    ("<|im_end|>The answer is 5.", "nothing before the end of the turn"),
    ("We factor 196 first.", "prose without a value"),
    ("We compute the sum.\nI hope it is correct.", "a closing remark is no answer"),
    ("Step 1: compute 3 times 4", "truncated step"),
    ("no idea", "a few words are no value"),
    ("no answer here", "a few words are no value either"),
]


@pytest.mark.parametrize(("completion", "expected"), BOXES + LAST_BOX_WINS)
def test_last_complete_box(completion: str, expected: str) -> None:
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(("completion", "expected"), ADJACENT_BOXES)
def test_adjacent_boxes_form_one_list(completion: str, expected: str) -> None:
    assert extract_answer(completion) == expected


# Boxes that assign different variables keep their names (§1, read as a point by §11); a name that ends
# an expression ("x + y = \boxed{23}", "2y = \boxed{6}") is not the variable the box holds.
NAMED_BOXES = [
    ("(2,3)", "So $x = \\boxed{2}$ and $y = \\boxed{3}$.", True),
    ("(2,3)", "So \\(x = \\boxed{2}\\) and \\(y = \\boxed{3}\\).", True),
    ("(2,3)", "\\[x = \\boxed{2}, \\quad y = \\boxed{3}\\]", True),
    ("(2,3)", "So $x_1 = \\boxed{2}$ and $x_2 = \\boxed{3}$.", True),
    ("(46,23)", "So $x + y = \\boxed{23}$ and $x = \\boxed{46}$.", False),
    ("(46,23)", "So $x - y = \\boxed{23}$ and $x = \\boxed{46}$.", False),
    ("(1,6)", "So $2y = \\boxed{6}$ and $x = \\boxed{1}$.", False),
    ("(1,6)", "So $2 \\cdot y = \\boxed{6}$ and $x = \\boxed{1}$.", False),
]


@pytest.mark.parametrize(("gold", "completion", "expected"), NAMED_BOXES)
def test_named_boxes_keep_only_plain_variable_names(gold: str, completion: str, expected: bool) -> None:
    assert grade_completion(gold, completion) is expected


@pytest.mark.parametrize(("completion", "expected"), MARKERS)
def test_marker_without_box(completion: str, expected: str) -> None:
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(("completion", "expected"), LAST_SENTENCE)
def test_last_sentence_fallback(completion: str, expected: str) -> None:
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(("completion", "why"), INVALID, ids=[why for _, why in INVALID])
def test_invalid_answers_are_none(completion: str, why: str) -> None:
    assert extract_answer(completion) is None, why


FORMATS = ONLY_A_VALUE + ANSWER_AFTER_VALUE + CHAT_TOKENS + GSM8K + OTHER_MARKERS + STATED_IN_PROSE


@pytest.mark.parametrize(("completion", "expected"), FORMATS)
def test_formats_of_other_models_and_harnesses(completion: str, expected: str) -> None:
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(("completion", "expected"), FINAL_STATEMENT_AFTER_BOXES)
def test_a_final_statement_after_the_boxes_wins(completion: str, expected: str) -> None:
    assert extract_answer(completion) == expected


# Words around a value that take back its claim to be the answer (reward_server/math_grading/qualifiers.py):
# (gold, completion, equivalent). Each class has must-fail cases and must-pass neighbours.
QUALIFIED_VALUES = [
    # a bound before the value is an inequality, not the value
    ("7", "After bounding, the answer is at least $7$.", False),
    ("7", "So the answer is no more than 7.", False),
    ("7", "Therefore $n$ is at least $7$.", False),
    ("7", "The minimum is at least $\\boxed{7}$.", False),
    ("4", "The number is between $\\boxed{3}$ and $\\boxed{5}$.", False),
    ("7", "The least such $n$ is $\\boxed{7}$.", True),
    ("7", "So at least one of them works, and the answer is $\\boxed{7}$.", True),
    # a condition after the value makes it one case of several
    ("7", "So the answer is $7$ if $n$ is even and $8$ otherwise.", False),
    ("7", "The answer is $7$ unless $n = 2$.", False),
    ("8", "Thus $\\boxed{7}$ if $n$ is even, and $\\boxed{8}$ otherwise.", False),
    ("7", "Final Answer: The final answer is $7$ if $n$ is odd. I hope it is correct.", False),
    ("-4", "The minimum is $\\boxed{-4}$ when $x = 1$.", True),
    ("5", "The answer is $\\boxed{5}$ if I am not mistaken.", True),
    # a doubt or an alternative after a box is a hedge; an equivalent restatement is not
    ("7", "The answer is $\\boxed{7}$, but it might be $8$.", False),
    ("7", "The box is $\\boxed{7}$, though it could also be $8$.", False),
    ("7", "So $\\boxed{7}$, or possibly $8$.", False),
    ("7", "So $\\boxed{7}$ (or 8).", False),
    ("7", "So $\\boxed{7}$ or maybe 8.", False),
    ("\\frac12", "The probability is $\\boxed{\\frac12}$ (or $0.5$).", True),
    ("7, 8", "So $x = \\boxed{7}$ or 8.", True),
    ("\\text{(C)}", "So the answer is $\\boxed{C}$, or possibly D.", False),
    ("\\text{(C)}", "So the answer is $\\boxed{\\text{(C)}}$ or (D).", False),
    ("\\text{(C)}", "So the answer is $\\boxed{C}$ or Alice.", True),
    ("7", "So $\\boxed{7}$, but we should double check the arithmetic.", True),
    ("12", "So $\\boxed{12}$, but this may be written as $\\frac{24}{2}$.", True),
    # a later box in a sentence that opens with a hedge joins the box before it; a revision does not
    ("8", "So the answer is $\\boxed{7}$. Or maybe it is $\\boxed{8}$.", False),
    ("8", "The answer is $\\boxed{7}$; alternatively $\\boxed{8}$.", False),
    ("8", "So the answer is $\\boxed{7}$. Actually, I made an error: it is $\\boxed{8}$.", True),
    ("7, 8", "So the answer is $\\boxed{7}$. Or maybe it is $\\boxed{8}$.", True),
    # a second answer offered after the stated one is a hedge; a check after it is not
    ("7", "We get $\\boxed{7}$. (If the order matters, the answer would be $14$.)", False),
    ("7", "The answer is $\\boxed{7}$. Alternatively, one might argue for $8$.", False),
    ("7", "The answer is 7. Alternatively, it could be 8.", False),
    ("7", "So $\\boxed{7}$. Checking: if $x = 7$, the total would be $3 \\cdot 7 - 2 = 19$.", True),
    ("7", "The final answer is $7$. It could be verified by substitution.", True),
    # boxes side by side with nothing between them are one list answer
    ("6", "The possible values are $\\boxed{5}$ $\\boxed{6}$", False),
    ("6", "So the answer is $\\boxed{5}$\n\n$\\boxed{6}$", False),
    ("5, 6", "The possible values are $\\boxed{5}$ $\\boxed{6}$", True),
    ("5", "So $\\boxed{5}$ $\\boxed{5}$", True),
    # a negated or retracted box states nothing; a confirmation after it is fine
    ("5", "It is definitely not $\\boxed{5}$.", False),
    ("5", "So the answer is $\\boxed{5}$. Hmm, no, that's wrong.", False),
    ("5", "So $\\boxed{5}$ is incorrect.", False),
    ("5", "So the answer is $\\boxed{5}$. This is correct because $5 \\cdot 3 = 15$.", True),
    ("5", "So the answer is $\\boxed{5}$. Note that $6$ would be wrong because it is even.", True),
    ("5", "So the answer is $\\boxed{5}$. My first try gave $6$, but that was wrong.", True),
]

# Sentences that state no result: a plan whose math is the data of the problem, and fenced code.
NO_RESULT = [
    ("5", "We are told that $x = 5$ and asked for $y = x^2 + 1$. Let's compute $y$ from $x = 5$.", False),
    ("12", "We need to find the number of $n$ with $n < 12$.", False),
    ("5", "I'll substitute $x = 5$ into the formula.", False),
    ("5", "We can conclude that $x = 5$.", True),
    ("5", "Putting everything together, we have $x = 5$.", True),
    ("7", "```\n\\boxed{7}\n```", False),
    ("7", "Check:\n```python\nprint(3 + 4)\n```\nThe answer is $\\boxed{7}$.", True),
    ("7", "```output\n8\n```\nSo the answer is $7$.", True),
]


@pytest.mark.parametrize(("gold", "completion", "expected"), QUALIFIED_VALUES + NO_RESULT)
def test_qualified_values_and_plans(gold: str, completion: str, expected: bool) -> None:
    assert grade_completion(gold, completion) is expected, extract_answer(completion)


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
    "1MB spaces then a value": " " * MEGABYTE + "12 is the answer.",
    "1MB of 'is the answer'": "x is the answer " * (MEGABYTE // 16),
    "1MB of answer lines": "\nA: 1\n#### 2" * (MEGABYTE // 12),
    "1MB of role headers": "<|im_start|>assistant\n" * (MEGABYTE // 22),
    "1MB of number words": "twenty-four " * (MEGABYTE // 12) + ".",
    "1MB of stars before an answer": "*" * MEGABYTE + "Answer $1$",
    "1MB of spaces after a box": "\\boxed{1}" + " " * MEGABYTE + "x",
    "1MB of spaces between boxes": "\\boxed{1}" + " " * MEGABYTE + "x \\boxed{2}",
    "1MB of spaces and dollars between boxes": "\\boxed{1}" + " $" * (MEGABYTE // 2) + ". Or \\boxed{2}",
    "1MB of code fences": "```" * (MEGABYTE // 3) + "\\boxed{1}",
    "1MB of spaces after a marker": "The answer is $7$" + " " * MEGABYTE + "x",
}


@pytest.mark.parametrize("name", list(LINEAR_INPUTS))
def test_extraction_is_fast_on_adversarial_input(name: str) -> None:
    # Linear inputs take well under a second here; a quadratic pass over 1 MB would take hours. The bound
    # leaves room for a loaded 2-core machine.
    start = time.perf_counter()
    extract_answer(LINEAR_INPUTS[name])
    assert time.perf_counter() - start < 5.0


def test_extraction_time_grows_linearly() -> None:
    # Quadratic behaviour would make the 8x input take ~64x longer; allow generous noise.
    def seconds(size: int) -> float:  # (the best of three: a busy machine only ever adds time)
        text = ("\\boxed{1} and {x} " * size) + "\\boxed{" * size
        times = []
        for _ in range(3):
            start = time.perf_counter()
            extract_answer(text)
            times.append(time.perf_counter() - start)
        return min(times)

    small, large = seconds(5_000), seconds(40_000)
    assert large < 30 * max(small, 1e-3)


# Mixed prose, LaTeX, markers, answer lines of other formats and chat tokens, in any order.
FUZZ_PIECES = [
    "The answer is ",
    "Final Answer: ",
    "final answer is ",
    "Answer ",
    "Result: ",
    "#### ",
    "\nA: ",
    "A: ",
    " is the answer",
    " is our solution",
    ". ",
    "\n",
    "! ",
    "I hope it is correct.",
    "Five ",
    "twenty-four ",
    " boxes are left",
    "30% of ",
    "12 ",
    "-3",
    "1,250,000",
    "9.",
    "$",
    "$$",
    "\\(",
    "\\)",
    "\\[",
    "\\]",
    "\\boxed{",
    "\\boxed ",
    "\\fbox{",
    "{",
    "}",
    "\\frac{1}{2}",
    "x = ",
    "(C)",
    "\\text{ or }",
    " and ",
    "<|im_end|>",
    "<|im_start|>user\n",
    "<|im_start|>assistant\n",
    "</s>",
    "<|eot_id|>",
    "**",
    "(",
    ")",
    ",",
]


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(FUZZ_PIECES), max_size=60), st.integers(min_value=1, max_value=2000))
def test_fuzz_extraction_never_raises_and_is_fast(pieces: list[str], repeat: int) -> None:
    for text in ("".join(pieces), "".join(pieces) * (repeat // 20 + 1)):
        start = time.perf_counter()
        answer = extract_answer(text)
        assert time.perf_counter() - start < 1.0, text[:200]
        assert answer is None or (isinstance(answer, str) and answer.strip())


# Each new format is a new place to hedge, list or restate: all of these must stay incorrect.
HEDGES_IN_NEW_FORMATS = [
    ("3", "3 or 4"),
    ("3", "A: 3 or 4"),
    ("3", "#### 3 or 4"),
    ("3", "So 3 or 4 is the answer."),
    ("4", "So $3$ or $4$ is our answer."),
    ("3", "Answer $3$ or $4$"),
    ("3", "Result: $3 \\text{ or } 4$"),
    ("5", "Five or six boxes are left."),
    ("30", "30% of the marbles are red, or maybe 40%."),
    ("12", "How many cars were left if 12 left?"),
    ("12", "Janet had 12 cars and 5 left. How many remain?"),
    ("5", "2, 3 and 5 are the solutions."),
    ("6", "First $a = \\boxed{4}$, then $b = \\boxed{2}$. The final answer is $6$ or $7$."),
    ("3", "The answer is 4.<|im_end|><|im_start|>user\nNo, it is 3. The answer is 3."),
]


@pytest.mark.parametrize(("gold", "completion"), HEDGES_IN_NEW_FORMATS)
def test_hedges_lists_and_restatements_in_the_new_formats_stay_incorrect(gold: str, completion: str) -> None:
    assert grade_completion(gold, completion) is False
