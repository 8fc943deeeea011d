"""`judge(gold, answer)`: is an extracted answer the same answer as the gold? (docs/math-conventions.md)

Stages, cheapest first; each pair stops at the first stage that decides it:

1. Exact string equality after `normalize` (notation, units, percent, separators).
2. Equal displays (canonical forms: `0.5` and `\\frac12` both display "1/2").
3. Typed comparison (`structure.py`) driven by the gold's type. Values compare by exact rational
   arithmetic in Q(i) first (`arithmetic.py`), then, only when a side is irrational or symbolic,
   with sympy (`symbolic.py`). sympy is imported with this module, on purpose: the worker pool
   preloads this package in its forkserver, so every (re)started worker has sympy ready.

The comparison is asymmetric where the conventions are: the gold's type decides what counts. A
bare-value gold accepts `x = 3` (§13); a single-valued gold rejects any list of several different
values (§3); a gold list needs a complete list (§12).

Guards: answers still longer than `MAX_ANSWER_CHARS` after collapsing whitespace only match an
identical text, or, for pure digit strings, the same exact integer; nesting and size guards live in
`parse.py` and `arithmetic.py`; a RecursionError anywhere means "not equivalent".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from reward_server.math_grading import symbolic
from reward_server.math_grading.arithmetic import Complex, TooLarge, Undefined, exact_value
from reward_server.math_grading.normalize import EXPLICIT_THOUSANDS, normalize, text_key
from reward_server.math_grading.parse import Node, digits_to_int
from reward_server.math_grading.structure import (
    Answer,
    BaseNumber,
    Bracketed,
    Equation,
    Interval,
    Matrix,
    Scalar,
    Solutions,
    Text,
    display,
    intervals_of,
    is_integer_literal,
    read_answer,
    shorten,
)

MAX_ANSWER_CHARS = 2_000
# Pure integers may be longer (a 5,000-digit answer), up to what exact arithmetic handles quickly.
MAX_INTEGER_DIGITS = 12_000
_WHITESPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"[+-]?\d+", re.ASCII)
_GROUPED_DIGITS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+", re.ASCII)
_CHOICE_LABEL = re.compile(r"(?:\\text\s*)?\{?\(([A-Za-z])\)\}?(?=.)", re.ASCII)
_OTHER_CHOICE = re.compile(r"\([A-Za-z]\)|\b(?:or|and)\b", re.ASCII)


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict on one (gold, answer) pair.

    Attributes:
        equivalent: whether the answer is the same answer as the gold.
        display: short canonical plain text of the answer; equal displays mean equivalent answers,
            so it is safe as a class key for majority voting. The one exception is "": an answer
            with nothing left after normalization (`\\boxed{\\%}`) is invalid and matches nothing.
    """

    equivalent: bool
    display: str


@dataclass(frozen=True, slots=True)
class _Analysis:
    normalized: str
    answer: Answer
    display: str


@lru_cache(maxsize=16_384)
def _analyze(text: str) -> _Analysis:
    normalized = normalize(text)
    answer = read_answer(normalized)
    try:
        shown = display(answer)
    except (Undefined, RecursionError):
        # `\frac{1}{0}` is only equal to its identical string: show the string itself.
        shown = shorten(normalized)
    return _Analysis(normalized, answer, shown)


def _collapse(text: str) -> str:
    """Whitespace runs to one space: the only normalization an over-long answer gets (linear)."""
    return _WHITESPACE.sub(" ", text).strip()


def _long_integer(text: str) -> str | None:
    """Canonical digits of a long integer answer ("1,000,...", "12\\,345...", leading zeros), or None."""
    compact = EXPLICIT_THOUSANDS.sub("", text.replace("$", "").strip())
    if _GROUPED_DIGITS.fullmatch(compact):
        compact = compact.replace(",", "")
    if not _DIGITS.fullmatch(compact):
        return None
    sign = "-" if compact.startswith("-") else ""
    return sign + (compact.lstrip("+-").lstrip("0") or "0")


def _long_pair_equal(gold: str, answer: str) -> bool:
    """Over-long pairs match only by identical collapsed text, or as exact integers."""
    if gold == answer:
        return True
    answer_digits = _long_integer(answer)
    if answer_digits is None or len(answer_digits) > MAX_INTEGER_DIGITS:
        # A long gold integer against a short answer (2^{16000} written as a power) is the mirror case.
        gold_digits = _long_integer(gold)
        return (
            answer_digits is None
            and gold_digits is not None
            and len(answer) <= MAX_ANSWER_CHARS
            and len(gold_digits) <= MAX_INTEGER_DIGITS
            and _integer_value_equal(answer, gold_digits)
        )
    gold_digits = _long_integer(gold)
    if gold_digits is not None:
        return gold_digits == answer_digits
    return len(gold) <= MAX_ANSWER_CHARS and _integer_value_equal(gold, answer_digits)


def _integer_value_equal(short: str, digits: str) -> bool:
    """Whether a short answer such as `10^{4999}` has exactly the value of a long digit string."""
    answer = _analyze(short).answer
    if not isinstance(answer, Scalar):
        return False
    try:
        value = exact_value(answer.node)
    except (TooLarge, Undefined):
        return False
    sign = -1 if digits.startswith("-") else 1
    return value == (Fraction(sign * digits_to_int(digits.lstrip("-"))), Fraction(0))


def _prepare(text: str) -> str:
    return text if len(text) <= MAX_ANSWER_CHARS else _collapse(text)


def display_form(answer: str) -> str:
    """Short canonical plain-text form of an answer, for humans and for grouping answers.

    Args:
        answer: an extracted answer (raw LaTeX).

    Returns:
        The display; equal displays mean equivalent answers.

    Example:
        >>> display_form("\\\\dfrac{14}{3}")
        '14/3'
    """
    prepared = _prepare(answer)
    if len(prepared) > MAX_ANSWER_CHARS:
        digits = _long_integer(prepared)
        return shorten(digits if digits is not None else prepared)
    try:
        return _analyze(prepared).display
    except RecursionError:
        return shorten(prepared)


def judge(gold: str, answer: str) -> Judgement:
    """Decide whether `answer` is the same answer as `gold`, and give its display form.

    Args:
        gold: the gold answer, bare LaTeX as in MATH's `answer` field.
        answer: the extracted final answer of a completion (see `extract_answer`).

    Returns:
        A Judgement. Malformed or adversarial input gives `equivalent=False`, not an exception.

    Example:
        >>> judge("\\\\frac{1}{2}", "0.5")
        Judgement(equivalent=True, display='1/2')
    """
    shown = display_form(answer)
    try:
        return Judgement(_equivalent(gold, answer), shown)
    except (RecursionError, ArithmeticError, ValueError, LookupError):
        # Too deep, too large, unparseable: all mean "not shown to be equivalent".
        return Judgement(False, shown)


def _equivalent(gold: str, answer: str) -> bool:
    gold, answer = _prepare(gold), _prepare(answer)
    if len(gold) > MAX_ANSWER_CHARS or len(answer) > MAX_ANSWER_CHARS:
        return _long_pair_equal(gold, answer)
    expected, given = _analyze(gold), _analyze(answer)
    if not given.normalized:
        return False
    if expected.normalized == given.normalized or expected.display == given.display:
        return True
    if isinstance(expected.answer, Text) or _is_choice_letter(expected.answer):
        key = text_key(expected.normalized)
        return key == text_key(given.normalized) or (
            len(key) == 1 and _choice_with_content(given.normalized) == key
        )
    return _answers_equal(expected.answer, given.answer)


def _choice_with_content(normalized: str) -> str | None:
    """The letter of `(C) 12` or `\\text{(C) } 12`: a choice label followed by that option's text.

    None when the rest names another choice or hedges ("(C) or (D)").
    """
    match = _CHOICE_LABEL.match(normalized)
    if match is None or _OTHER_CHOICE.search(normalized, match.end()) is not None:
        return None
    return match.group(1).lower()


def _is_choice_letter(answer: Answer) -> bool:
    # A lone capital letter gold ("B") is a multiple-choice label: compared as text (§15).
    return (
        isinstance(answer, Scalar)
        and answer.node.kind == "sym"
        and isinstance(answer.node.value, str)
        and len(answer.node.value) == 1
        and answer.node.value.isupper()
    )


def _answers_equal(gold: Answer, answer: Answer) -> bool:
    """Typed comparison; the gold's type decides the rule."""
    if isinstance(gold, Scalar):
        return _scalar_matches(gold.node, answer)
    if isinstance(gold, Text):
        return isinstance(answer, Text) and answer.text == gold.text
    if isinstance(gold, Solutions):
        return _solutions_equal(gold.items, _as_items(answer))
    if isinstance(gold, Bracketed):
        return _bracketed_equal(gold, answer)
    if isinstance(gold, Equation):
        return _equation_matches(gold, answer)
    if isinstance(gold, BaseNumber):
        return _base_number_matches(gold, answer)
    if isinstance(gold, Matrix):
        return _matrix_matches(gold, answer)
    gold_intervals = intervals_of(gold)
    if gold_intervals is not None:
        answer_intervals = intervals_of(answer)
        return answer_intervals is not None and _interval_sets_equal(gold_intervals, answer_intervals)
    return False


def _scalar_matches(gold: Node, answer: Answer) -> bool:
    if isinstance(answer, Scalar):
        return values_equal(gold, answer.node)
    if isinstance(answer, Equation):
        # "x = 3", "f(2) = 7", "m + n = 10": the left side only names the asked quantity (§13).
        return values_equal(gold, answer.sides[-1])
    if isinstance(answer, Solutions) and answer.items:
        # Several candidates are a hedge (§3) unless they all are the gold value.
        return all(_scalar_matches(gold, item) for item in answer.items)
    return False


def _as_items(answer: Answer) -> tuple[Answer, ...]:
    return answer.items if isinstance(answer, Solutions) else (answer,)


def _solutions_equal(gold: tuple[Answer, ...], answer: tuple[Answer, ...]) -> bool:
    """Unordered, complete and exact (§12): every answer item is some gold item and vice versa."""
    if not gold or not answer:
        return not gold and not answer
    matched = [False] * len(gold)
    for item in answer:
        hits = [index for index, expected in enumerate(gold) if _item_equal(expected, item)]
        if not hits:
            return False
        for index in hits:
            matched[index] = True
    return all(matched)


def _item_equal(gold: Answer, answer: Answer) -> bool:
    if gold == answer:
        return True
    return _answers_equal(gold, answer)


# Conventional coordinate orders: (x, y, z), (a, b, c, d), polar (r, theta), spherical (rho, theta, phi), ...
_COORDINATE_ORDERS: tuple[tuple[str, ...], ...] = (
    ("x", "y", "z"),
    ("a", "b", "c", "d"),
    ("p", "q", "r", "s"),
    ("h", "k"),
    ("m", "n"),
    ("r", "theta", "z"),
    ("rho", "theta", "phi"),
)


def _named_values(answer: Answer) -> tuple[Answer, ...] | None:
    """`x = -2, y = 1`: the values of equations that each name a different variable, in their order."""
    if not isinstance(answer, Solutions) or len(answer.items) < 2:
        return None
    named: dict[str, Answer] = {}
    for item in answer.items:
        if not isinstance(item, Equation) or not _names_quantity(item):
            return None
        named[str(item.sides[0].value)] = Scalar(item.sides[1])
    if len(named) != len(answer.items):
        return None
    # "y = 8, x = -2" is the point (-2, 8): coordinates with conventional names take their conventional
    # place, whatever order they are written in; other names keep the written order.
    order = next((family for family in _COORDINATE_ORDERS if set(named) <= set(family)), None)
    names = sorted(named, key=order.index) if order is not None else list(named)
    return tuple(named[name] for name in names)


def _bracketed_equal(gold: Bracketed, answer: Answer) -> bool:
    named = _named_values(answer)
    if named is not None:
        # "x = -2, y = 1" for the point (-2, 1): the components are named in the tuple's order (the
        # conventions are silent; a grader reads named coordinates as the ordered tuple).
        return len(named) == len(gold.items) and all(
            _item_equal(g, a) for g, a in zip(gold.items, named, strict=True)
        )
    if isinstance(answer, Bracketed):
        if len(answer.items) != len(gold.items):
            return False
        # Points and vectors keep their order (§11); a pair must also keep its bracket kind.
        if len(gold.items) == 2 and (answer.left, answer.right) != (gold.left, gold.right):
            return False
        return all(_item_equal(g, a) for g, a in zip(gold.items, answer.items, strict=True))
    if isinstance(answer, Matrix):
        cells = _vector_cells(answer)
        return (
            cells is not None
            and len(cells) == len(gold.items)
            and all(_item_equal(g, a) for g, a in zip(gold.items, cells, strict=True))
        )
    gold_intervals = intervals_of(gold)
    answer_intervals = intervals_of(answer)
    if gold_intervals is not None and answer_intervals is not None:
        return _interval_sets_equal(gold_intervals, answer_intervals)
    return False


def _vector_cells(matrix: Matrix) -> tuple[Answer, ...] | None:
    if len(matrix.rows) == 1:
        return matrix.rows[0]
    if all(len(row) == 1 for row in matrix.rows):
        return tuple(row[0] for row in matrix.rows)
    return None


def _matrix_matches(gold: Matrix, answer: Answer) -> bool:
    cells = _vector_cells(gold)
    if isinstance(answer, Matrix):
        if len(answer.rows) != len(gold.rows) or any(
            len(g) != len(a) for g, a in zip(gold.rows, answer.rows, strict=True)
        ):
            # A vector written as a row instead of a column is the same vector (the conventions are
            # silent; MATH vectors are columns, and a grader reads the entries, as for `(a, b, c)`).
            answer_cells = _vector_cells(answer)
            return (
                cells is not None
                and answer_cells is not None
                and len(cells) == len(answer_cells)
                and all(_item_equal(g, a) for g, a in zip(cells, answer_cells, strict=True))
            )
        return all(
            _item_equal(g, a)
            for grow, arow in zip(gold.rows, answer.rows, strict=True)
            for g, a in zip(grow, arow, strict=True)
        )
    # A vector gold accepts its entries as a tuple, `(1/5, -18/5)` included: the gold's type says it is
    # a vector, so a parenthesised pair cannot mean an interval here.
    if isinstance(answer, Bracketed) and cells is not None and len(cells) == len(answer.items) >= 2:
        return all(_item_equal(g, a) for g, a in zip(cells, answer.items, strict=True))
    return False


def _names_quantity(equation: Equation) -> bool:
    """`x = 5`, `y = 2x + 3`: the left side is one name that the right side does not use."""
    if len(equation.sides) != 2 or equation.sides[0].kind != "sym":
        return False
    return str(equation.sides[0].value) not in _symbols(equation.sides[1])


def _is_function_value(node: Node) -> bool:
    return node.kind == "sym" and "(" in str(node.value)


def _equation_matches(gold: Equation, answer: Answer) -> bool:
    if isinstance(answer, Equation):
        if symbolic.equations_equal((gold.sides[0], gold.sides[-1]), (answer.sides[0], answer.sides[-1])):
            return True
        # "f(x) = 2x + 3" for "y = 2x + 3": both left sides only name the function's value.
        return (
            _names_quantity(gold)
            and len(answer.sides) == 2
            and (_is_function_value(gold.sides[0]) or _is_function_value(answer.sides[0]))
            and answer.sides[0].kind == "sym"
            and values_equal(gold.sides[1], answer.sides[1])
        )
    # "x = 5" as gold accepts the bare value 5, and "y = 2x + 3" accepts "2x + 3": the left side only
    # names the quantity (conventions §13 gives that reason for the mirror case; the rule is silent here).
    if isinstance(answer, Scalar) and _names_quantity(gold):
        return values_equal(gold.sides[1], answer.node)
    return False


def _base_number_matches(gold: BaseNumber, answer: Answer) -> bool:
    if isinstance(answer, BaseNumber):
        return answer == gold
    if isinstance(answer, Equation):
        return _base_number_matches(gold, Scalar(answer.sides[-1]))
    # The subscript may be left out, but the digits must be the same digits (§16).
    if isinstance(answer, Scalar) and is_integer_literal(answer.node):
        assert isinstance(answer.node.value, Fraction)
        return str(answer.node.value.numerator) == gold.digits
    return False


def _infinity_sign(node: Node) -> int:
    if node.kind == "const" and node.value == "oo":
        return 1
    if node.kind == "neg" and _infinity_sign(node.args[0]) == 1:
        return -1
    return 0


def _endpoints_equal(gold: Node, answer: Node) -> bool:
    gold_sign, answer_sign = _infinity_sign(gold), _infinity_sign(answer)
    if gold_sign or answer_sign:
        return gold_sign == answer_sign
    return values_equal(gold, answer)


def _intervals_equal(gold: Interval, answer: Interval) -> bool:
    return (
        gold.low_closed == answer.low_closed
        and gold.high_closed == answer.high_closed
        and _endpoints_equal(gold.low, answer.low)
        and _endpoints_equal(gold.high, answer.high)
    )


def _interval_sets_equal(gold: tuple[Interval, ...], answer: tuple[Interval, ...]) -> bool:
    if _same_pieces(gold, answer):
        return True
    # "(0,2) \cup [2,3)" is the set (0,3): pieces that meet at a shared, included end are one interval.
    return _same_pieces(_joined(gold), _joined(answer))


_MAX_JOINED_PIECES = 8


def _joined(parts: tuple[Interval, ...]) -> tuple[Interval, ...]:
    """The union with every two pieces that meet at a shared end, included in one of them, made one.

    Only exactly shared ends are joined (no ordering of symbolic ends is needed); `(0,2) \\cup (2,3)`, which
    leaves 2 out, stays two pieces. A union of more than `_MAX_JOINED_PIECES` pieces is left as it is (the
    pairwise search is cubic, and no MATH answer has that many pieces)."""
    if len(parts) > _MAX_JOINED_PIECES:
        return parts
    pieces = list(parts)
    joined = True
    while joined:
        joined = False
        for first in pieces:
            for second in pieces:
                meet = first is not second and (first.high_closed or second.low_closed)
                if meet and _endpoints_equal(first.high, second.low) and _infinity_sign(first.high) == 0:
                    pieces.remove(first)
                    pieces.remove(second)
                    pieces.append(Interval(first.low, second.high, first.low_closed, second.high_closed))
                    joined = True
                    break
            if joined:
                break
    return tuple(pieces)


def _same_pieces(gold: tuple[Interval, ...], answer: tuple[Interval, ...]) -> bool:
    # A union is a set: order does not matter (§10), but every piece must be there.
    if len(gold) != len(answer):
        return False
    unused = list(answer)
    for expected in gold:
        for index, candidate in enumerate(unused):
            if _intervals_equal(expected, candidate):
                del unused[index]
                break
        else:
            return False
    return True


def _symbols(node: Node) -> frozenset[str]:
    names: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current.kind == "sym":
            names.add(str(current.value))
        stack.extend(current.args)
    return frozenset(names)


@lru_cache(maxsize=16_384)
def _exact(node: Node) -> Complex | None:
    return exact_value(node)


def values_equal(gold: Node, answer: Node) -> bool:
    """Whether two expression trees have the same value: exact Q(i) arithmetic, then sympy.

    Args:
        gold: the gold tree.
        answer: the answer tree.

    Returns:
        True when the values are provably equal.

    Example:
        >>> values_equal(parse_expression("\\\\frac34"), parse_expression("0.75"))
        True
    """
    try:
        gold_value, answer_value = _exact(gold), _exact(answer)
    except Undefined:
        # `\frac{1}{0}` is equal to nothing but its identical string (checked before we get here).
        return False
    except TooLarge:
        # Too large to evaluate: structural equality is all we accept.
        return gold == answer
    if gold == answer:
        return True
    if gold_value is not None and answer_value is not None:
        return gold_value == answer_value
    # No shortcut on differing symbol sets: sin^2 x + cos^2 x is 1. sympy's numeric test rejects fast.
    return symbolic.expressions_equal(gold, answer)
