"""The symbolic stage: expression trees -> sympy, then equality by cheap tests first, `simplify` last.

Only pairs that the string and exact-rational stages could not decide get here (radicals, pi,
polynomials, complex exponentials). The order, cheapest first:

1. structural equality of the sympy objects (sympy already folds `\\sqrt{117}` into `3\\sqrt{13}`);
2. a numeric *rejection* test: the difference is evaluated at fixed rational points to 30 digits and a
   clearly non-zero value proves the answers differ. A small value never proves equality: acceptance
   always needs step 3, so there is no float tolerance (CONVENTIONS §5, §6);
3. exact proofs that the difference is zero: `expand`, `cancel`, `expand_complex`, then `simplify` for
   small expressions only.

`size_guard` runs on every tree before sympy sees it, so sympy never builds a huge integer.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import sympy

from reward_server.math_grading.arithmetic import size_guard
from reward_server.math_grading.parse import Node

_MAX_SIMPLIFY_OPS = 60
_REJECT_THRESHOLD = sympy.Float("1e-20", 30)
# Fixed, "generic" rational points: deterministic, and unlikely to be roots of a non-zero difference.
_POINTS = (
    (sympy.Rational(7, 3), sympy.Rational(11, 5), sympy.Rational(-13, 7), sympy.Rational(17, 11)),
    (sympy.Rational(-5, 13), sympy.Rational(19, 6), sympy.Rational(23, 9), sympy.Rational(-29, 4)),
)
_FUNCTIONS: dict[str, Any] = {
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "cot": sympy.cot,
    "sec": sympy.sec,
    "csc": sympy.csc,
    "arcsin": sympy.asin,
    "arccos": sympy.acos,
    "arctan": sympy.atan,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "tanh": sympy.tanh,
    "ln": sympy.log,
    "exp": sympy.exp,
}
_CONSTANTS: dict[str, Any] = {"pi": sympy.pi, "e": sympy.E, "i": sympy.I, "oo": sympy.oo}


class Unsupported(ValueError):
    """The tree has a node the sympy conversion does not handle."""


def _convert(node: Node) -> Any:
    kind, args = node.kind, node.args
    if kind == "num":
        value = node.value
        assert value is not None and not isinstance(value, str)
        return sympy.Rational(value.numerator, value.denominator)
    if kind == "sym":
        return sympy.Symbol(str(node.value))
    if kind == "const":
        return _CONSTANTS[str(node.value)]
    converted = [_convert(arg) for arg in args]
    if kind == "add":
        return sympy.Add(*converted)
    if kind == "mul":
        return sympy.Mul(*converted)
    if kind == "neg":
        return -converted[0]
    if kind == "div":
        return converted[0] / converted[1]
    if kind == "pow":
        return sympy.Pow(converted[0], converted[1])
    if kind == "fact":
        return sympy.factorial(converted[0])
    if kind == "sqrt":
        return sympy.sqrt(converted[0])
    if kind == "root":
        index, radicand = converted
        # An odd root of a negative number is the real root here (\sqrt[3]{-8} = -2), as in MATH.
        if radicand.is_negative and index.is_odd:
            return -sympy.root(-radicand, index)
        return sympy.root(radicand, index)
    if kind == "binom":
        return sympy.binomial(converted[0], converted[1])
    if kind == "abs":
        return sympy.Abs(converted[0])
    if kind == "floor":
        return sympy.floor(converted[0])
    if kind == "ceil":
        return sympy.ceiling(converted[0])
    if kind == "func":
        name = str(node.value)
        if name == "log":
            return sympy.log(*converted)
        return _FUNCTIONS[name](converted[0])
    raise Unsupported(kind)


@lru_cache(maxsize=4096)
def to_sympy(node: Node) -> Any:
    """Convert a tree to a sympy expression after the size guard (cached: golds repeat across samples).

    Args:
        node: an expression tree.

    Returns:
        The sympy expression.

    Raises:
        TooLarge: the tree is unsafe for sympy.
        Undefined: the tree divides by zero.
        Unsupported: a node kind without a sympy counterpart.

    Example:
        >>> to_sympy(parse_expression("\\\\sqrt{117}"))
        3*sqrt(13)
    """
    size_guard(node)
    return _convert(node)


def _undefined(expr: Any) -> bool:
    return bool(expr.has(sympy.zoo, sympy.nan))


def _clearly_nonzero(value: Any, scale: Any) -> bool:
    """Whether a numeric sympy value is certainly not zero (30-digit evaluation, relative test)."""
    if value.is_Rational:
        return bool(value != 0)
    number = sympy.N(value, 30)
    real, imag = number.as_real_imag()
    if not (real.is_Number and imag.is_Number):
        return False
    magnitude = max(abs(real), abs(imag))
    bound = _REJECT_THRESHOLD * max(sympy.Float(1), abs(sympy.N(scale, 30)))
    return bool(magnitude > bound)


def _may_be_zero(difference: Any, reference: Any) -> bool:
    """False when evaluation at a rational point proves the difference non-zero."""
    symbols = sorted(difference.free_symbols, key=str)
    if not symbols:
        return not _clearly_nonzero(difference, reference)
    for point in _POINTS:
        values = {symbol: point[index % len(point)] + index for index, symbol in enumerate(symbols)}
        at_point = difference.xreplace(values)
        if _undefined(at_point) or at_point.free_symbols:
            continue
        scale = reference.xreplace(values)
        if _undefined(scale):
            continue
        if _clearly_nonzero(at_point, scale):
            return False
    return True


def _proved_zero(difference: Any) -> bool:
    for transform in (sympy.expand, sympy.cancel, lambda e: sympy.expand(sympy.expand_complex(e))):
        if transform(difference) == 0:
            return True
    if sympy.count_ops(difference) <= _MAX_SIMPLIFY_OPS:
        return bool(sympy.simplify(difference) == 0)
    return False


def expressions_equal(gold: Node, answer: Node) -> bool:
    """Whether two trees denote the same value (same function of the same symbols).

    Args:
        gold: the gold tree.
        answer: the answer tree.

    Returns:
        True only when sympy proves the difference is zero; any sympy failure counts as not equal.

    Example:
        >>> expressions_equal(parse_expression("(x+1)^2"), parse_expression("x^2+2x+1"))
        True
    """
    try:
        gold_expr, answer_expr = to_sympy(gold), to_sympy(answer)
        if _undefined(gold_expr) or _undefined(answer_expr):
            return False
        if gold_expr == answer_expr:
            return True
        difference = gold_expr - answer_expr
        if difference == 0:
            return True
        if _undefined(difference) or not _may_be_zero(difference, gold_expr):
            return False
        return _proved_zero(difference)
    except RecursionError:
        return False
    except Exception:  # noqa: BLE001 - sympy raises many unrelated types; any failure means "not proven".
        return False


def _constant_ratio(ratio: Any) -> bool:
    return bool(not ratio.free_symbols and ratio != 0 and ratio.is_finite and not _undefined(ratio))


def _ratio_varies(ratio: Any) -> bool:
    """True when the ratio takes two different values at the fixed rational points (cheap rejection)."""
    symbols = sorted(ratio.free_symbols, key=str)
    values = []
    for point in _POINTS:
        at_point = ratio.xreplace({symbol: point[i % len(point)] + i for i, symbol in enumerate(symbols)})
        if at_point.is_Rational:
            values.append(at_point)
    return len(values) == 2 and values[0] != values[1]


def equations_equal(gold: tuple[Node, Node], answer: tuple[Node, Node]) -> bool:
    """Whether two equations describe the same curve: lhs - rhs differ by a non-zero constant factor.

    Args:
        gold: (lhs, rhs) of the gold equation.
        answer: (lhs, rhs) of the answer equation.

    Returns:
        True when (a_lhs - a_rhs) / (g_lhs - g_rhs) is a non-zero constant.

    Example:
        >>> equations_equal((parse_expression("y"), parse_expression("2x+3")),
        ...                 (parse_expression("2x-y+3"), parse_expression("0")))
        True
    """
    try:
        gold_diff = to_sympy(gold[0]) - to_sympy(gold[1])
        answer_diff = to_sympy(answer[0]) - to_sympy(answer[1])
        if _undefined(gold_diff) or _undefined(answer_diff) or gold_diff == 0 or answer_diff == 0:
            return False
        if gold_diff == answer_diff or gold_diff == -answer_diff:
            return True
        if gold_diff.free_symbols != answer_diff.free_symbols:
            return False
        ratio = answer_diff / gold_diff
        if _ratio_varies(ratio):
            return False
        if _constant_ratio(sympy.cancel(ratio)):
            return True
        if sympy.count_ops(ratio) <= _MAX_SIMPLIFY_OPS:
            return _constant_ratio(sympy.simplify(ratio))
        return False
    except RecursionError:
        return False
    except Exception:  # noqa: BLE001 - see expressions_equal.
        return False
