"""Is a program's output right? Pure functions; expected values come from the reference, never the sandbox.

stdout (the CodeContests rule: `OutputsMatch` in google-deepmind/code_contests,
`execution/tester_sandboxer.cc`):

- both texts are split on the characters space, `\\n`, `\\t`, `\\r`, `\\v` (runs of them, empty pieces
  skipped) and ASCII-lowercased, so `YES` = `yes`, and trailing spaces, blank lines and the 60 leading
  spaces of some CodeContests outputs (1139C) do not matter;
- the token counts must be equal (an extra printed line fails);
- two tokens match when they are equal, or when both are numbers (absl `SimpleAtod` syntax: decimal with an
  optional exponent, `inf`, `infinity`, `nan`, optional sign) whose doubles differ by less than 1e-5
  absolute. Integers are compared as doubles too, as CodeContests does, so integers beyond 2**53 that round
  to the same double match.
- One deliberate difference: identical tokens always match. CodeContests compares `nan` with `nan` by
  |a-b| < 1e-5, which is false, unless the two whole outputs are identical.

call results (TACO/LiveCodeBench compare return values with `==`; we compare the JSON the sandbox returns):

- the JSON texts are parsed and compared structurally, never through the solution's own `__eq__`; a tuple
  arrives as a list, so it equals a list; object keys are strings on both sides;
- numbers: integers and booleans compare as in Python (`True == 1`, like `==` in TACO and in the labels);
  when either side is a float, they match if equal within 1e-9 relative or absolute, which absorbs only
  floating-point noise (0.1 + 0.2 vs 0.3); unlike stdout, return values are full doubles, not rounded text,
  so the loose 1e-5 of printed output is not needed. NaN matches NaN.
- with `accept_wrapped` (TACO references), an expected value `[x]` also accepts the return value `x`:
  TACO stores many call outputs wrapped in a one-element list and its checker accepts either
  (TACO accepts `x[0]` for any non-empty list; we only unwrap one-element lists).
"""

from __future__ import annotations

import math
import re
from typing import Any

STDOUT_TOLERANCE = 1e-5
CALL_TOLERANCE = 1e-9
_TOKEN = re.compile(r"[^ \n\t\r\v]+")
_SEPARATORS = re.compile(r"[ \n\t\r\v]+")
_WHITESPACE = " \n\t\r\v"
# Each digit has one place to go: `[0-9]+\.?[0-9]*` split a run of digits between its two loops in every
# way, quadratic on a token that fails at its end (a program printing 32,000 digits and an "x" held the
# event loop 25 s; 8 MiB of output, days).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def stdout_tokens(text: str) -> list[str]:
    """Whitespace-split, ASCII-lowercased tokens of `text` (CodeContests' `SplitAndLowercase`)."""
    lowered = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    return _TOKEN.findall(lowered)


def _first_tokens(text: str, count: int) -> list[str]:
    """The first `count` tokens of `text` as `stdout_tokens` has them (fewer if it has fewer).

    A wrong output may hold millions of tokens (8 MB of "1 "), and the comparison runs on the server's
    event loop: past the first `count` tokens the text is neither cut into strings nor lowercased, so a
    long wrong output costs what the expected one does (a few ms, not 0.3 s and 100 MB per test).
    """
    pieces = _SEPARATORS.split(text.strip(_WHITESPACE), maxsplit=count)  # (count >= 1: 0 means no limit)
    return [
        piece.lower() if piece.isascii() else piece.translate(_ASCII_LOWER)
        for piece in pieces[:count]
        if piece
    ]


def _number(token: str) -> float | None:
    # Tokens are already lowercase, so `1E5`, `INF` and `NaN` are covered.
    if _NUMBER.fullmatch(token) is None:
        return None
    return float(token)


def tokens_match(got: str, expected: str) -> bool:
    """One token pair: equal, or both numeric within 1e-5 absolute."""
    if got == expected:
        return True
    a, b = _number(got), _number(expected)
    return a is not None and b is not None and abs(a - b) < STDOUT_TOLERANCE


def stdout_matches(got: str, expected: str) -> bool:
    """Does the printed output `got` match the expected output (the CodeContests rule)?

    Example:
        >>> stdout_matches("YES\\n0.3333333\\n", "   yes 0.333333")
        True
    """
    expected_tokens = stdout_tokens(expected)
    got_tokens = _first_tokens(got, len(expected_tokens) + 1)
    if got_tokens == expected_tokens:
        return True
    if len(got_tokens) != len(expected_tokens):
        return False
    return all(tokens_match(a, b) for a, b in zip(got_tokens, expected_tokens, strict=True))


def json_values_match(got: Any, expected: Any) -> bool:
    """Structural equality of two parsed JSON values, with float noise tolerated (see the module doc)."""
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(got) == len(expected)
            and all(json_values_match(a, b) for a, b in zip(got, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(json_values_match(got[key], value) for key, value in expected.items())
        )
    if isinstance(expected, int | float) and isinstance(got, int | float):
        if isinstance(expected, float) or isinstance(got, float):
            a, b = float(got), float(expected)
            if math.isnan(a) or math.isnan(b):
                return math.isnan(a) and math.isnan(b)
            return math.isclose(a, b, rel_tol=CALL_TOLERANCE, abs_tol=CALL_TOLERANCE)
        return bool(got == expected)
    if expected is None or isinstance(expected, str):
        return type(got) is type(expected) and bool(got == expected)
    return False


def call_result_matches(got: Any, expected: Any, *, accept_wrapped: bool = False) -> bool:
    """Does the parsed return value `got` match the expected JSON value?

    Args:
        got: the call's return value, parsed from the sandbox's JSON.
        expected: the reference's expected value.
        accept_wrapped: TACO convention: an expected `[x]` also accepts `x`.

    Example:
        >>> call_result_matches([1, 2], [1, 2]), call_result_matches(0.30000000000000004, 0.3)
        (True, True)
    """
    if json_values_match(got, expected):
        return True
    return (
        accept_wrapped
        and isinstance(expected, list)
        and len(expected) == 1
        and json_values_match(got, expected[0])
    )
