"""Output comparison: the CodeContests stdout rule and JSON return values."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reward_server.code_grading import call_result_matches, stdout_matches
from reward_server.code_grading.compare import _NUMBER, _first_tokens, stdout_tokens

STDOUT_MATCH = [
    ("3\n", "3\n"),
    ("3", "3\n"),  # trailing newline
    ("1 2 3 \n", "1 2 3\n"),  # trailing space
    ("1\n2\n3\n", "1 2 3"),  # lines vs spaces
    ("1   2\t3\r\n", "1 2 3"),
    ("1\v2", "1 2"),
    ("a b\n\n\n", "a b"),  # extra blank lines
    ("YES\n", "yes\n"),  # case
    ("Yes", "yES"),
    ("1842\n", "                                                            1842\n"),  # CodeContests 1139C
    ("0.3333333\n", "0.333333\n"),  # |diff| < 1e-5
    ("1.5\n", "1.500000\n"),
    ("-0.5\n", "-0.500000\n"),
    ("1e-6\n", "0\n"),  # 1e-6 vs 0: numeric, within 1e-5
    ("0\n", "1e-6\n"),
    ("1E5", "100000"),
    ("+3", "3"),
    ("3.", "3"),
    (".5", "0.5"),
    ("2.0000099", "2"),
    ("nan", "nan"),  # identical tokens always match
    ("NaN", "nan"),
    ("inf", "INF"),
    ("1000000000000000000", "1000000000000000001"),  # compared as doubles, as CodeContests does
    ("", ""),
    ("\n", ""),
]

STDOUT_MISMATCH = [
    ("3\n", "4\n"),
    ("1 2\n", "1 2 3\n"),  # token count
    ("1 2 3 4", "1 2 3"),  # an extra printed token
    ("", "0"),
    ("0.33333\n", "0.333340\n"),  # |diff| = 1e-5 is not < 1e-5
    ("0.3334\n", "0.3333\n"),
    ("1e-4\n", "0\n"),
    ("yes", "no"),
    ("YES.", "yes"),  # punctuation is part of the token
    ("1,2", "1 2"),
    ("nan", "0"),
    ("0x10", "16"),  # hexadecimal is not a number for SimpleAtod
    ("1_000", "1000"),  # nor are Python's underscores
    ("١", "1"),  # nor non-ASCII digits
    ("inf", "1e400 5"),
    ("ÉTÉ", "été"),  # only ASCII letters are lowercased
    # Outputs a policy might try against numeric checks:
    ("nan", "5"),
    ("nan nan", "1 2"),
    ("inf", "1e308"),
    ("-inf", "-1e308"),
    ("1e999", "inf"),  # both infinite: |inf - inf| is nan, not < 1e-5 (as in CodeContests)
    ("infinity", "1e300"),
    # Binary or invalid UTF-8 output (the sandbox decodes it with U+FFFD):
    ("\ufffd5", "5"),
    ("5\x00", "5"),
    # Every answer it can guess, one after another: the token count gives it away.
    ("YES NO", "yes"),
    ("5 " + "1 " * 100_000, "5"),
    ("1 2 3", "1"),
]


@pytest.mark.parametrize(("got", "expected"), STDOUT_MATCH)
def test_stdout_matches(got: str, expected: str) -> None:
    assert stdout_matches(got, expected)


@pytest.mark.parametrize(("got", "expected"), STDOUT_MISMATCH)
def test_stdout_mismatches(got: str, expected: str) -> None:
    assert not stdout_matches(got, expected)


def test_identical_nan_tokens_match_within_a_tolerant_comparison() -> None:
    # CodeContests would fail this pair (|nan - nan| < 1e-5 is false); identical tokens match here.
    assert stdout_matches("nan 1.000001", "nan 1")


def test_tokens_split_only_on_codecontests_whitespace() -> None:
    assert stdout_tokens(" A\tb\r\nC\v\n") == ["a", "b", "c"]
    assert stdout_tokens("a\fb") == ["a\fb"]  # form feed is not a separator in CodeContests
    assert stdout_tokens("a\u00a0b") == ["a\u00a0b"]


def test_large_outputs_compare_quickly() -> None:
    import time

    got = " ".join(str(i) for i in range(200_000))
    expected = "\n".join(f"{i}.000000" for i in range(200_000))
    start = time.perf_counter()
    assert stdout_matches(got, expected)
    assert time.perf_counter() - start < 2.0


def test_a_long_token_that_is_almost_a_number_compares_quickly() -> None:
    import time

    # The number pattern was quadratic on such a token: 50,000 digits and an "x" took about a minute, holding
    # the event loop (a program's output is up to 8 MiB).
    start = time.perf_counter()
    assert not stdout_matches("1" * 50_000 + "x", "5")
    assert not stdout_matches("5", "-" + "9" * 50_000 + "e")
    assert time.perf_counter() - start < 5.0


# The number pattern as it was (quadratic, but right): the rewritten one must accept the same tokens.
OLD_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.e+-xinfa", max_size=12))
def test_the_number_pattern_accepts_what_it_did(token: str) -> None:
    assert (_NUMBER.fullmatch(token) is None) == (OLD_NUMBER.fullmatch(token) is None)


CALL_MATCH = [
    (55, 55),
    ("abc", "abc"),
    ([1, 2, 3], [1, 2, 3]),  # a tuple arrives as a JSON list
    ([[1, 2], [3]], [[1, 2], [3]]),
    ({"a": [1, 2]}, {"a": [1, 2]}),
    (None, None),
    (True, True),
    (True, 1),  # Python's ==, as TACO and the dev labels
    (3, 3.0),
    (0.30000000000000004, 0.3),  # floating-point noise only
    (1e20 + 1e5, 1e20),
    (math.nan, math.nan),
    (math.inf, math.inf),
    ([], []),
]

CALL_MISMATCH = [
    (55, 56),
    ("55", 55),  # a string is not a number
    (55, "55"),
    ([1, 2], [2, 1]),
    ([1, 2], [1, 2, 3]),
    ([1], 1),
    (1, [1]),  # without accept_wrapped
    ({"a": 1}, {"a": 1, "b": 2}),
    ({"a": 1}, {"b": 1}),
    (None, 0),
    (None, False),
    ("", None),
    (0.333333, 1 / 3),  # printed-text tolerance (1e-5) does not apply to return values
    (1.0001, 1.0),
    (math.nan, 0.0),
    (math.inf, -math.inf),
    ([1, [2, [3]]], [1, [2, [4]]]),
]


@pytest.mark.parametrize(("got", "expected"), CALL_MATCH)
def test_call_results_match(got: object, expected: object) -> None:
    assert call_result_matches(got, expected)


@pytest.mark.parametrize(("got", "expected"), CALL_MISMATCH)
def test_call_results_mismatch(got: object, expected: object) -> None:
    assert not call_result_matches(got, expected)


def test_taco_wrapped_outputs() -> None:
    assert call_result_matches(5, [5], accept_wrapped=True)
    assert call_result_matches([5], [5], accept_wrapped=True)
    assert call_result_matches([1, 2], [[1, 2]], accept_wrapped=True)
    assert not call_result_matches(1, [1, 2], accept_wrapped=True)  # TACO would accept x[0]; we do not
    assert not call_result_matches(5, [6], accept_wrapped=True)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        " A\tb\r\nC\v\n",
        "1 2 3",
        "\n\n x  y\n",
        "a\fb c",
        "ÉTÉ Yes é",
        "1 " * 50,
    ],
)
@pytest.mark.parametrize("count", [1, 2, 3, 100])
def test_a_long_output_is_cut_after_the_tokens_compared(text: str, count: int) -> None:
    """stdout_matches splits no more of the program's output than the expected count + 1 (a long wrong
    output is not cut into millions of strings on the server's event loop): the same tokens as in full."""
    assert _first_tokens(text, count) == stdout_tokens(text)[:count]
