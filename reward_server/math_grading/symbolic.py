"""The symbolic stage: expression trees -> sympy, then equality by cheap tests first, `simplify` last.

Only pairs that the string and exact-rational stages could not decide get here (radicals, pi,
polynomials, complex exponentials). The order, cheapest first:

1. structural equality of the sympy objects (sympy already folds `\\sqrt{117}` into `3\\sqrt{13}`);
2. a numeric *rejection* test: the difference is evaluated at fixed rational points to 30 digits and a
   clearly non-zero value proves the answers differ. A small value never proves equality: acceptance
   always needs step 3, so there is no float tolerance (conventions §5, §6);
3. exact proofs that the difference is zero: `expand`, `cancel`, `expand_complex`, then `simplify` for
   small expressions only.

`size_guard` runs on every tree before sympy sees it, so sympy never builds a huge integer.
"""

from __future__ import annotations

import cmath
import math
from functools import lru_cache
from typing import Any

import sympy

# `sympy.simplify` imports `sympy.physics.units` (and with it combinatorics) on its first call, which
# costs about 0.6 s. Importing it here moves that cost into the module import, which the worker pool's
# forkserver pays once, instead of into the first graded pair of every fresh worker.
import sympy.physics.units  # noqa: F401  (imported for its side effect only)
import sympy.sets.setexpr  # noqa: F401

from reward_server.math_grading.arithmetic import MAX_NODES, expand_big_operator, size_guard
from reward_server.math_grading.parse import Node

_MAX_SIMPLIFY_OPS = 60
_MAX_TRANSCENDENTAL_DEPTH = 1
_MAX_TRANSCENDENTAL_COUNT = 4
_MAX_ROOT_INDEX = 4
# Rough cost of `expand`/`cancel` (terms of the multinomial expansion times the exponent, a proxy for
# coefficient size). `(x^2+2x+1)^{100}` vs `(x+1)^{200}` costs ~5e5 and takes seconds, and
# `(\\pi+2+\\ln 10)^{30}` (~15000) or `(1.5+e^2)^{40}` (~1600, through `cancel`) over a second. MATH
# answers (`(x+1)^{12}` costs 156) stay far below. Above the bound a pair is "not proven equal", which is
# the safe verdict.
_MAX_EXPANSION_COST = 2_000
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
    if kind in ("sum", "prod"):
        return _big_operator(node)
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


def _big_operator(node: Node) -> Any:
    """A sum or product with integer limits, term by term; each term passes the size guard on its own.

    Symbolic limits (`\\sum_{k=1}^{n}`) are not summed: sympy's `Sum.doit` has no time bound, so such
    sums are only compared as trees (`equivalence.values_equal`).
    """
    terms = expand_big_operator(node, MAX_NODES)
    if terms is None:
        raise Unsupported(node.kind)
    parts = [to_sympy(term) for term in terms]
    return sympy.Add(*parts) if node.kind == "sum" else sympy.Mul(*parts)


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


class _Wild(ArithmeticError):
    """A double-precision estimate overflows: 30-digit evaluation would need huge working precision."""


_FLOAT_FUNCTIONS: dict[Any, Any] = {
    sympy.sin: cmath.sin,
    sympy.cos: cmath.cos,
    sympy.tan: cmath.tan,
    sympy.sinh: cmath.sinh,
    sympy.cosh: cmath.cosh,
    sympy.tanh: cmath.tanh,
    sympy.asin: cmath.asin,
    sympy.acos: cmath.acos,
    sympy.atan: cmath.atan,
    sympy.exp: cmath.exp,
    sympy.log: cmath.log,
}
_FLOAT_CONSTANTS: dict[Any, complex] = {sympy.pi: complex(math.pi), sympy.E: complex(math.e), sympy.I: 1j}
# Past these, exp/trig of the value (and mpmath's 30-digit evaluation of it) blow up or need thousands
# of digits of working precision: `\cos(7^{7^{(1/2)^i}})` took 40 s in `sympy.N`.
_MAX_EXPONENT = 700.0
_MAX_TRIG_ARGUMENT = 1e8


def _float_value(expr: Any, env: dict[Any, complex]) -> complex | None:
    """A double-precision value of a sympy expression, symbols taken from `env`; None for unknown nodes.

    Pure Python floats on purpose: even `xreplace` of a numeric point into such an expression makes
    sympy's assumption system call `evalf`, which is what must be avoided here.

    Raises:
        _Wild: on overflow, or on an exp/trig argument far outside the range where evaluation is cheap.
    """
    if expr.is_Symbol:
        return env.get(expr)
    if expr.is_Number:
        try:
            # p / q of Python ints is exact-to-double and fast; `complex(expr)` would go through evalf.
            value = complex(expr.p / expr.q) if expr.is_Rational else complex(expr)
        except (OverflowError, TypeError, ValueError) as error:
            raise _Wild from error
    elif expr in _FLOAT_CONSTANTS:
        value = _FLOAT_CONSTANTS[expr]
    elif expr.is_Add or expr.is_Mul:
        parts: list[complex] = []
        for arg in expr.args:
            part = _float_value(arg, env)
            if part is None:
                return None
            parts.append(part)
        value = sum(parts, 0j) if expr.is_Add else math.prod(parts, start=1 + 0j)
    elif expr.is_Pow:
        base, exponent = (_float_value(arg, env) for arg in expr.args)
        if base is None or exponent is None:
            return None
        if base == 0:
            return 0j
        power = exponent * cmath.log(base)
        if abs(power.real) > _MAX_EXPONENT or abs(power.imag) > _MAX_TRIG_ARGUMENT:
            raise _Wild
        value = cmath.exp(power)
    elif expr.func in _FLOAT_FUNCTIONS and len(expr.args) == 1:
        argument = _float_value(expr.args[0], env)
        if argument is None:
            return None
        if max(abs(argument.real), abs(argument.imag)) > _MAX_TRIG_ARGUMENT or (
            expr.func is not sympy.log
            and abs(argument.imag if expr.func in _TRIG else argument.real) > _MAX_EXPONENT
        ):
            raise _Wild
        try:
            value = _FLOAT_FUNCTIONS[expr.func](argument)
        except (ValueError, ZeroDivisionError, OverflowError) as error:
            raise _Wild from error
    else:
        return None
    if not (cmath.isfinite(value)):
        raise _Wild
    return value


_TRIG = frozenset({sympy.sin, sympy.cos, sympy.tan, sympy.asin, sympy.acos, sympy.atan})


@lru_cache(maxsize=4096)
def _wild(expr: Any) -> bool:
    """Whether evaluating `expr` at one of the fixed points overflows double precision (see `_Wild`).

    Such a pair is "not proven equal" without trying: identical answers were accepted before this check.
    """
    symbols = sorted(expr.free_symbols, key=str)
    for point in _POINTS:
        env = {symbol: complex(point[i % len(point)] + i) for i, symbol in enumerate(symbols)}
        try:
            _float_value(expr, env)
        except _Wild:
            return True
        except (ArithmeticError, TypeError, ValueError):
            continue
    return False


def _expansion_cost(expr: Any) -> int:
    """An upper estimate of the work `expand` does on `expr`, capped just above `_MAX_EXPANSION_COST`."""
    cap = _MAX_EXPANSION_COST + 1
    if not expr.args:
        return 1
    costs = [_expansion_cost(arg) for arg in expr.args]
    if expr.is_Add:
        return min(cap, sum(costs))
    if expr.is_Mul:
        product = 1
        for cost in costs:
            product = min(cap, product * cost)
        return product
    exponent = expr.args[1] if expr.is_Pow else None
    if exponent is not None and exponent.is_Integer and abs(int(exponent)) > 1 and costs[0] > 1:
        power, terms = abs(int(exponent)), costs[0]
        # Multinomial expansion of a k-term base to the n-th power: C(n + k - 1, k - 1) terms.
        count = 1
        for index in range(1, min(terms - 1, power) + 1):
            count = count * (power + terms - 1 - index + 1) // index
            if count * power > cap:
                return cap
        return min(cap, count * power)
    return max(costs)


def _transcendental_nesting(expr: Any) -> tuple[int, int]:
    """(deepest nesting, count) of transcendental nodes: functions, non-rational powers, high roots."""
    if not expr.args:
        return 0, 0
    inner = [_transcendental_nesting(arg) for arg in expr.args]
    depth = max(level for level, _ in inner)
    count = sum(number for _, number in inner)
    # A root of high order (`\\sin(1024)^{3585/128}`) makes trigsimp factor a degree-3585 polynomial.
    exponent = expr.args[1] if expr.is_Pow else None
    transcendental = isinstance(expr, sympy.Function) or (
        exponent is not None and (not exponent.is_Rational or exponent.q > _MAX_ROOT_INDEX)
    )
    return (depth + 1, count + 1) if transcendental else (depth, count)


def _simplify_allowed(expr: Any) -> bool:
    """`simplify` only for small expressions without nested transcendental functions.

    `simplify` runs trigsimp, exptrigsimp and factor passes whose time is unbounded on input like
    `\\cos((\\cos\\sqrt2 - \\pi^{12})^{\\sin(e - i)})` (seconds). MATH answers that need it
    (`\\sin^2 x + \\cos^2 x`, `\\sqrt{2} e^{i\\pi/4}`, nested radicals) have at most one level of functions
    and a few of them.
    """
    if sympy.count_ops(expr) > _MAX_SIMPLIFY_OPS:
        return False
    depth, count = _transcendental_nesting(expr)
    return depth <= _MAX_TRANSCENDENTAL_DEPTH and count <= _MAX_TRANSCENDENTAL_COUNT


def _proved_zero(difference: Any) -> bool:
    if _expansion_cost(difference) > _MAX_EXPANSION_COST:
        return False
    for transform in (sympy.expand, sympy.cancel, lambda e: sympy.expand(sympy.expand_complex(e))):
        if transform(difference) == 0:
            return True
    if _simplify_allowed(difference):
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
        if _undefined(difference) or _wild(difference) or _wild(gold_expr):
            return False
        if not _may_be_zero(difference, gold_expr):
            return False
        return _proved_zero(difference)
    except RecursionError:
        return False
    except Exception:  # noqa: BLE001 - sympy raises many unrelated types; any failure means "not proven".
        return False


def _constant_ratio(ratio: Any) -> bool:
    return bool(not ratio.free_symbols and ratio != 0 and ratio.is_finite and not _undefined(ratio))


def _ratio_varies(ratio: Any) -> bool:
    """True when the ratio clearly takes two different values at the fixed points (cheap rejection).

    Values are compared exactly when rational, else at 30 digits with the same relative test as
    `_may_be_zero`, so that a non-constant transcendental ratio never reaches `simplify` (which can take
    many seconds on trigonometric input).
    """
    symbols = sorted(ratio.free_symbols, key=str)
    if not symbols:
        return False
    values = []
    for point in _POINTS:
        at_point = ratio.xreplace({symbol: point[i % len(point)] + i for i, symbol in enumerate(symbols)})
        if _undefined(at_point) or at_point.free_symbols:
            return False
        values.append(at_point)
    if all(value.is_Rational for value in values):
        return bool(values[0] != values[1])
    return _values_differ(values[0], values[1])


def _values_differ(first: Any, second: Any) -> bool:
    """Whether two numeric values certainly differ: 30-digit values, gap relative to their size.

    `sympy.N` gives 30 correct significant digits, so a relative gap above 1e-20 is a proof.
    """
    values = []
    for value in (first, second):
        real, imag = sympy.N(value, 30).as_real_imag()
        if not (real.is_Number and imag.is_Number):
            return False
        values.append((real, imag))
    (real_a, imag_a), (real_b, imag_b) = values
    gap = max(abs(real_a - real_b), abs(imag_a - imag_b))
    size = max(abs(real_a), abs(imag_a), abs(real_b), abs(imag_b))
    return bool(gap > _REJECT_THRESHOLD * size)


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
        if gold_diff.free_symbols != answer_diff.free_symbols or _wild(gold_diff) or _wild(answer_diff):
            return False
        # `cancel` expands the numerator and the denominator separately: their costs add up.
        if _expansion_cost(gold_diff) + _expansion_cost(answer_diff) > _MAX_EXPANSION_COST:
            return False
        ratio = answer_diff / gold_diff
        if _ratio_varies(ratio):
            return False
        if _constant_ratio(sympy.cancel(ratio)):
            return True
        if _simplify_allowed(ratio):
            return _constant_ratio(sympy.simplify(ratio))
        return False
    except RecursionError:
        return False
    except Exception:  # noqa: BLE001 - see expressions_equal.
        return False
