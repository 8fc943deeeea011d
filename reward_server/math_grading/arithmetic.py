"""Exact arithmetic on expression trees: values in Q(i) as pairs of Fractions, with size guards.

This is the numeric fast path of grading (conventions §5, §6, §9): `0.75` and `\\frac34` are the same
rational, `0.6667` and `\\frac23` are not, `2^{64}` is an exact integer, `6-5i` is a Gaussian rational.
There is no float anywhere, so there is no tolerance to abuse.

Guards: a result is never allowed past `MAX_BITS` bits (about 12,000 decimal digits). `9^{9^{9^9}}`,
`10000!` or `2^{10^{9}}` raise `TooLarge` before any big multiplication starts, and the caller falls back
to structural comparison. `size_guard` applies the same limits to a tree that is about to go to sympy.
`\\sum`/`\\prod` with integer limits are expanded term by term up to `MAX_SUM_TERMS` terms; longer ones
raise `TooLarge` too.
"""

from __future__ import annotations

import math
from fractions import Fraction

from reward_server.math_grading.parse import Node, replace_leaf

Complex = tuple[Fraction, Fraction]

MAX_BITS = 40_000
MAX_FACTORIAL = 3_000
MAX_SYMBOLIC_EXPONENT = 1_000
MAX_NODES = 300
# `\sum`/`\prod` with integer limits are expanded term by term, up to this many terms and this much work
# (terms times the nodes of the body, nested sums multiplying). Past that, `TooLarge`: compared as trees.
MAX_SUM_TERMS = 2_000
MAX_SUM_WORK = 20_000
_ZERO = Fraction(0)
_ONE = Fraction(1)


class TooLarge(ArithmeticError):
    """Evaluating the tree would build a number too large to handle quickly."""


class Undefined(ArithmeticError):
    """The tree divides by zero (`\\frac{1}{0}`, `0^{-1}`): never equivalent to anything."""


def _bits(value: Complex) -> int:
    re, im = value
    return max(
        re.numerator.bit_length(),
        re.denominator.bit_length(),
        im.numerator.bit_length(),
        im.denominator.bit_length(),
    )


def _checked(value: Complex) -> Complex:
    if _bits(value) > MAX_BITS:
        raise TooLarge("intermediate value too large")
    return value


def _mul(a: Complex, b: Complex) -> Complex:
    return (a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0])


def _div(a: Complex, b: Complex) -> Complex:
    norm = b[0] * b[0] + b[1] * b[1]
    if norm == 0:
        raise Undefined("division by zero")
    return ((a[0] * b[0] + a[1] * b[1]) / norm, (a[1] * b[0] - a[0] * b[1]) / norm)


def _int_pow(base: Complex, exponent: int) -> Complex:
    if base == (_ZERO, _ZERO):
        if exponent < 0:
            raise Undefined("zero to a negative power")
        return (_ONE if exponent == 0 else _ZERO, _ZERO)
    if base[1] == 0 and abs(base[0]) == 1:
        return (base[0] ** (exponent % 2), _ZERO)
    if base[0] == 0 and abs(base[1]) == 1:
        # Powers of +-i cycle with period 4.
        result: Complex = (_ONE, _ZERO)
        for _ in range(exponent % 4):
            result = _mul(result, base)
        return result
    if _bits(base) * abs(exponent) > MAX_BITS:
        raise TooLarge("power too large")
    if base[1] == 0:
        return (base[0] ** exponent, _ZERO)
    result = (_ONE, _ZERO)
    square, n = base, abs(exponent)
    while n:
        if n & 1:
            result = _mul(result, square)
        square = _mul(square, square)
        n >>= 1
    return _div((_ONE, _ZERO), result) if exponent < 0 else result


def integer_root(n: int, k: int) -> int | None:
    """The exact k-th root of a non-negative integer, or None when it is not a perfect power.

    Args:
        n: a non-negative integer.
        k: the root index, at least 1.

    Returns:
        r with r**k == n, or None.

    Example:
        >>> integer_root(117 * 117, 2)
        117
    """
    if n < 2 or k == 1:
        return n
    x = 1 << ((n.bit_length() + k - 1) // k)
    while True:
        y = ((k - 1) * x + n // x ** (k - 1)) // k
        if y >= x:
            break
        x = y
    return x if x**k == n else None


def _real_root(value: Fraction, k: int) -> Fraction | None:
    if k < 1 or k > 64:
        return None
    if value < 0:
        if k % 2 == 0:
            return None
        root = _real_root(-value, k)
        return None if root is None else -root
    top = integer_root(value.numerator, k)
    bottom = integer_root(value.denominator, k)
    return None if top is None or bottom is None else Fraction(top, bottom)


def _as_integer(value: Complex | None) -> int | None:
    if value is None or value[1] != 0 or value[0].denominator != 1:
        return None
    return value[0].numerator


def exact_value(node: Node) -> Complex | None:
    """Evaluate a tree exactly in Q(i), or return None when it is not such a number (pi, sqrt 2, x).

    Args:
        node: an expression tree.

    Returns:
        (real, imaginary) as Fractions, or None.

    Raises:
        TooLarge: a power, factorial or product would exceed MAX_BITS.
        Undefined: the tree divides by zero.

    Example:
        >>> exact_value(parse_expression("\\\\frac{2}{-3}"))
        (Fraction(-2, 3), Fraction(0, 1))
    """
    kind, args = node.kind, node.args
    if kind == "num":
        assert isinstance(node.value, Fraction)
        return (node.value, _ZERO)
    if kind == "const":
        return (_ZERO, _ONE) if node.value == "i" else None
    if kind == "sym":
        return None
    if kind in ("sum", "prod"):
        return _big_operator(node)
    # Children are evaluated even when the result cannot be exact, so that a division by zero or an
    # oversized power anywhere in the tree is always reported ("x + \frac{1}{0}" is undefined too).
    values = [exact_value(arg) for arg in args] if kind != "pow" else []
    if kind == "pow":
        return _pow(args[0], args[1])
    if kind == "div" and values[1] == (_ZERO, _ZERO):
        raise Undefined("division by zero")
    if any(value is None for value in values):
        return None
    return _combine(kind, [value for value in values if value is not None])


def _combine(kind: str, values: list[Complex]) -> Complex | None:
    if kind in ("add", "mul"):
        total: Complex = (_ZERO, _ZERO) if kind == "add" else (_ONE, _ZERO)
        for value in values:
            if kind == "add":
                total = (total[0] + value[0], total[1] + value[1])
            else:
                total = _checked(_mul(total, value))
        return _checked(total)
    if kind == "neg":
        return (-values[0][0], -values[0][1])
    if kind == "div":
        return _checked(_div(values[0], values[1]))
    if kind == "fact":
        n = _as_integer(values[0])
        if n is None:
            return None
        if n < 0:
            raise Undefined("factorial of a negative integer")
        if n > MAX_FACTORIAL:
            raise TooLarge("factorial too large")
        return (Fraction(math.factorial(n)), _ZERO)
    if kind == "binom":
        n, k = _as_integer(values[0]), _as_integer(values[1])
        if n is None or k is None or n < 0:
            return None
        if n > MAX_BITS:
            raise TooLarge("binomial too large")
        return (Fraction(math.comb(n, k) if 0 <= k <= n else 0), _ZERO)
    if kind in ("sqrt", "root"):
        index = 2 if kind == "sqrt" else _as_integer(values[0])
        value = values[-1]
        if index is None or value[1] != 0:
            return None
        if value[0] < 0 and index == 2:
            root = _real_root(-value[0], 2)
            return None if root is None else (_ZERO, root)
        real = _real_root(value[0], index)
        return None if real is None else (real, _ZERO)
    if kind == "abs":
        real = _real_root(values[0][0] ** 2 + values[0][1] ** 2, 2)
        return None if real is None else (real, _ZERO)
    if kind in ("floor", "ceil"):
        if values[0][1] != 0:
            return None
        return (Fraction(math.floor(values[0][0]) if kind == "floor" else math.ceil(values[0][0])), _ZERO)
    return None


def _pow(base_node: Node, exponent_node: Node) -> Complex | None:
    exponent = exact_value(exponent_node)
    base = exact_value(base_node)
    if exponent is None or base is None or exponent[1] != 0:
        return None
    power = exponent[0]
    if power.denominator == 1:
        return _checked(_int_pow(base, power.numerator))
    # Rational exponent: exact only for a perfect power of a positive real base (8^{2/3} = 4).
    if base[1] != 0 or base[0] <= 0:
        return None
    root = _real_root(base[0], power.denominator)
    return None if root is None else _checked(_int_pow((root, _ZERO), power.numerator))


def expand_big_operator(node: Node, max_work: int) -> list[Node] | None:
    """The terms of a `sum`/`prod` node with integer limits: its body at each index value.

    Args:
        node: a `sum` or `prod` node (see `parse.bind`).
        max_work: the most terms times body size (nested sums multiplying) to build.

    Returns:
        One tree per index value, lowest first (empty when the high limit is below the low one), or None
        when a limit is not an integer literal's value (`n`, `2.5`).

    Raises:
        TooLarge: more than `MAX_SUM_TERMS` terms, or more work than `max_work`.
        Undefined: a limit divides by zero.

    Example:
        >>> len(expand_big_operator(parse_expression("\\\\sum_{k=1}^{10} k"), MAX_SUM_WORK))
        10
    """
    body, low_node, high_node = node.args
    low, high = _as_integer(exact_value(low_node)), _as_integer(exact_value(high_node))
    if low is None or high is None:
        return None
    count = max(0, high - low + 1)
    if count > MAX_SUM_TERMS or count * _work(body, max_work) > max_work:
        raise TooLarge("sum too long to expand")
    index = Node("sym", (), node.value)
    return [replace_leaf(body, index, Node("num", (), Fraction(value))) for value in range(low, high + 1)]


def _work(node: Node, cap: int) -> int:
    """Nodes of a tree, a nested sum counting its body once per term (at most `MAX_SUM_TERMS` when its
    limits depend on an outer index); capped just above `cap`."""
    total = 0
    stack = [node]
    while stack and total <= cap:
        current = stack.pop()
        total += 1
        if current.kind in ("sum", "prod"):
            body, low, high = current.args
            try:
                bounds = _as_integer(exact_value(low)), _as_integer(exact_value(high))
            except (TooLarge, Undefined):
                bounds = (None, None)
            first, last = bounds
            terms = MAX_SUM_TERMS if first is None or last is None else max(0, last - first + 1)
            total += terms * _work(body, cap)
            stack.extend((low, high))
        else:
            stack.extend(current.args)
    return total


def _big_operator(node: Node) -> Complex | None:
    terms = expand_big_operator(node, MAX_SUM_WORK)
    if terms is None:
        return None
    total: Complex = (_ZERO, _ZERO) if node.kind == "sum" else (_ONE, _ZERO)
    for term in terms:
        value = exact_value(term)
        if value is None:
            return None
        # Checked at every step: a long sum of distinct denominators grows its own denominator.
        total = _checked(
            (total[0] + value[0], total[1] + value[1]) if node.kind == "sum" else _mul(total, value)
        )
    return total


def size_guard(node: Node) -> None:
    """Raise TooLarge when handing the tree to sympy could build a huge number or a huge expansion.

    Checks the node count, numeric powers (by exact evaluation of base and exponent), integer exponents
    over symbolic bases (`(x+1)^{10^6}` would make `expand` explode) and factorial arguments.

    Args:
        node: an expression tree.

    Raises:
        TooLarge: when the tree is unsafe for sympy.
        Undefined: when a sub-tree divides by zero.

    Example:
        >>> size_guard(parse_expression("9^{9^{9^{9}}}"))
        Traceback (most recent call last):
        ...
        TooLarge: power too large
    """
    stack = [node]
    count = 0
    while stack:
        current = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise TooLarge("expression too large")
        if current.kind == "pow":
            exponent = exact_value(current.args[1])
            if exponent is not None:
                base = exact_value(current.args[0])
                if base is not None:
                    # `7^{12.5^6}`: sympy splits a rational exponent into an integer part and a root, and
                    # would build 7^{3814697} before anything else; an integer exponent is checked by _pow.
                    if abs(exponent[0]) * max(1, _bits(base)) > MAX_BITS:
                        raise TooLarge("power too large")
                    _pow(current.args[0], current.args[1])
                elif abs(exponent[0]) > MAX_SYMBOLIC_EXPONENT or abs(exponent[1]) > MAX_SYMBOLIC_EXPONENT:
                    raise TooLarge("symbolic power too large")
        elif current.kind in ("fact", "binom"):
            exact_value(current)
        stack.extend(current.args)
