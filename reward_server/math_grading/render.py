"""Plain-text rendering of expression trees and exact values, for `Judgement.display`.

The rendering is unambiguous under the usual precedence rules (parentheses are added wherever a reader
could group differently), so two trees with the same rendering have the same value. That is what makes
the display safe as a class key: equal displays mean equivalent answers.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction

from reward_server.math_grading.arithmetic import Complex
from reward_server.math_grading.parse import Node

# Integers longer than this are shown by size and hash: str() of a >4300-digit int raises ValueError.
_MAX_SHOWN_BITS = 13_000

_ADD, _MUL, _POW, _ATOM = 1, 2, 3, 4
_CONSTS = {"pi": "pi", "e": "e", "i": "i", "oo": "oo"}


def _format_int(value: int) -> str:
    if value.bit_length() <= _MAX_SHOWN_BITS:
        return str(value)
    digest = hashlib.sha256(format(value, "x").encode()).hexdigest()[:16]
    return f"<{value.bit_length()}-bit integer #{digest}>"


def _terminating_digits(denominator: int) -> int | None:
    """k such that the denominator divides 10**k, or None when the decimal expansion repeats."""
    twos = (denominator & -denominator).bit_length() - 1
    rest = denominator >> twos
    fives = 0
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    return max(twos, fives) if rest == 1 else None


def format_fraction(value: Fraction) -> str:
    """Render a rational as "n", "p/q", or a decimal when it terminates and q > 8 ("1.414", "1/2").

    The form depends on the value only, so equal values always render alike (and vice versa).

    Args:
        value: a rational.

    Returns:
        Its canonical text.

    Example:
        >>> format_fraction(Fraction(14, 3))
        '14/3'
    """
    if value.denominator == 1:
        return _format_int(value.numerator)
    places = _terminating_digits(value.denominator) if value.denominator > 8 else None
    if places is not None and places <= 60 and value.numerator.bit_length() < _MAX_SHOWN_BITS - 200:
        # Human-friendly decimals for 1.414 or 0.0000672 instead of 707/500 or 21/312500.
        scaled = abs(value.numerator) * 10**places // value.denominator
        digits = str(scaled).rjust(places + 1, "0")
        sign = "-" if value < 0 else ""
        return f"{sign}{digits[:-places]}.{digits[-places:]}"
    return f"{_format_int(value.numerator)}/{_format_int(value.denominator)}"


def format_complex(value: Complex) -> str:
    """Render a Gaussian rational as "a", "bi" or "a+bi" ("6-5i", "1/2+(3/2)i").

    Args:
        value: (real, imaginary).

    Returns:
        Its canonical text.

    Example:
        >>> format_complex((Fraction(6), Fraction(-5)))
        '6-5i'
    """
    real, imag = value
    if imag == 0:
        return format_fraction(real)
    if abs(imag) == 1:
        imag_text = "i"
    elif imag.denominator == 1:
        imag_text = f"{_format_int(abs(imag.numerator))}i"
    else:
        imag_text = f"({format_fraction(abs(imag))})i"
    sign = "-" if imag < 0 else "+"
    if real == 0:
        return imag_text if sign == "+" else f"-{imag_text}"
    return f"{format_fraction(real)}{sign}{imag_text}"


def _wrap(node: Node, level: int) -> str:
    text, precedence = _render(node)
    return f"({text})" if precedence < level else text


def _render(node: Node) -> tuple[str, int]:
    kind, args = node.kind, node.args
    if kind == "num":
        assert isinstance(node.value, Fraction)
        text = format_fraction(node.value)
        if node.value < 0:
            return text, _ADD
        return text, _ATOM if node.value.denominator == 1 else _MUL
    if kind == "sym":
        return str(node.value), _ATOM
    if kind == "const":
        return _CONSTS[str(node.value)], _ATOM
    if kind == "add":
        parts = [_wrap(args[0], _ADD)]
        for term in args[1:]:
            if term.kind == "neg":
                parts.append("-" + _wrap(term.args[0], _MUL))
            else:
                text = _wrap(term, _ADD)
                parts.append(text if text.startswith("-") else "+" + text)
        return "".join(parts), _ADD
    if kind == "neg":
        return "-" + _wrap(args[0], _MUL), _ADD
    if kind == "mul":
        # A leading sign needs no parentheses: -2*x reads as (-2)*x and -(2*x) alike, same value.
        lead = args[0]
        negative_literal = lead.kind == "num" and isinstance(lead.value, Fraction) and lead.value < 0
        signed = lead.kind == "neg" or negative_literal
        first = _render(lead)[0] if signed else _wrap(lead, _MUL)
        rest = [_wrap(factor, _POW) if factor.kind != "div" else _wrap(factor, _ATOM) for factor in args[1:]]
        return "*".join([first, *rest]), _MUL
    if kind == "div":
        return f"{_wrap(args[0], _MUL)}/{_wrap(args[1], _POW)}", _MUL
    if kind == "pow":
        return f"{_wrap(args[0], _ATOM)}^{_wrap(args[1], _ATOM)}", _POW
    if kind == "fact":
        return f"{_wrap(args[0], _ATOM)}!", _ATOM
    if kind == "pm":
        if len(args) == 1:
            return "±" + _wrap(args[0], _MUL), _ADD
        return f"{_wrap(args[0], _ADD)}±{_wrap(args[1], _MUL)}", _ADD
    if kind == "abs":
        return f"|{_render(args[0])[0]}|", _ATOM
    if kind == "func":
        inner = ", ".join(_render(arg)[0] for arg in args)
        return f"{node.value}({inner})", _ATOM
    inner = ", ".join(_render(arg)[0] for arg in (args if kind != "root" else args[::-1]))
    return f"{kind}({inner})", _ATOM


def render(node: Node) -> str:
    """Render an expression tree as plain text ("3*sqrt(13)", "x^2+2*x+1", "pi/2").

    Args:
        node: an expression tree.

    Returns:
        Unambiguous plain text.

    Example:
        >>> render(parse_expression("\\\\frac{\\\\pi}{2}"))
        'pi/2'
    """
    return _render(node)[0]
