"""The shape of an answer: scalar, text, tuple, interval union, solution list, equation, matrix...

`read_answer` turns a normalized answer string into one typed value, splitting at top level only
(commas, "or"/"and", `\\cup`, relations, brackets), and parses each piece with `parse.py`:

| written                                  | typed as                                   |
|------------------------------------------|--------------------------------------------|
| `\\frac{14}{3}`, `3\\sqrt{13}`, `6-5i`     | Scalar                                     |
| `\\text{Evelyn}`, `Tuesday`               | Text (case-insensitive, conventions §15)   |
| `1011_2`, `4210_{5}`                      | BaseNumber (digits compared exactly, §16)  |
| `(1,2)`, `(3, \\frac{5\\pi}{4}, 0)`         | Bracketed (ordered, §11; a pair may be an open interval) |
| `[2,5)`, `x \\in [2,5)`, `-1 \\le x \\le 4`, `x > 1`, `A \\cup B`, `\\mathbb{R}` | Intervals (§10) |
| `-2x \\le 6` (solved for x), `0 < f(x) < 1` (the interval of f(x)) | Intervals (§10)             |
| `a, b`, `\\{a,b\\}`, `{a, b}`, `a \\text{ or } b`, `\\pm 2` | Solutions (unordered, complete, §12) |
| `y = 2x + 3`, `x = 3`                     | Equation (§13)                             |
| `\\begin{pmatrix}...`, `\\frac{8}{49}\\begin{pmatrix}...`, `A + B`, `A B` | Matrix (evaluated by cell) |
| anything else                            | Unparsed (only exact string equality)      |

`a \\approx b` is read as `a` (the approximation is a comment), or as `a = b` when `a` only names the
quantity; `f(x) = ...` keeps `f(x)` as the name of the left side.

`display` renders any of them as short canonical plain text; equal displays mean equivalent answers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from fractions import Fraction

from reward_server.math_grading.arithmetic import TooLarge, Undefined, exact_value
from reward_server.math_grading.normalize import text_key
from reward_server.math_grading.parse import (
    BOUND_PREFIX,
    MAX_DEPTH,
    Node,
    ParseError,
    Token,
    nesting_depth,
    parse_tokens,
    tokenize,
    walk,
)
from reward_server.math_grading.render import format_complex, render


@dataclass(frozen=True, slots=True)
class Scalar:
    """One value (number, expression, complex number)."""

    node: Node


@dataclass(frozen=True, slots=True)
class Text:
    """A word answer, stored as its lowercase key."""

    text: str


@dataclass(frozen=True, slots=True)
class BaseNumber:
    """A numeral with a base subscript; digits are compared as written."""

    digits: str
    base: int


@dataclass(frozen=True, slots=True)
class Bracketed:
    """An ordered tuple `(a, b, ...)`; a pair in parentheses may also be read as an open interval."""

    items: tuple[Answer, ...]
    left: str
    right: str


@dataclass(frozen=True, slots=True)
class Interval:
    """One interval; infinite ends are `const oo` nodes (negated for -oo)."""

    low: Node
    high: Node
    low_closed: bool
    high_closed: bool


@dataclass(frozen=True, slots=True)
class Intervals:
    """A union of intervals, compared as an unordered collection."""

    parts: tuple[Interval, ...]


@dataclass(frozen=True, slots=True)
class Solutions:
    """An unordered list of values (all solutions), duplicates allowed."""

    items: tuple[Answer, ...]


@dataclass(frozen=True, slots=True)
class Equation:
    """`a = b (= c ...)`; an unreadable side is kept as an opaque symbol."""

    sides: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Matrix:
    """A matrix or vector environment, row by row."""

    rows: tuple[tuple[Answer, ...], ...]


@dataclass(frozen=True, slots=True)
class Unparsed:
    """Anything the grammar does not cover; only equal strings match it."""

    text: str


Answer = Scalar | Text | BaseNumber | Bracketed | Intervals | Solutions | Equation | Matrix | Unparsed

MAX_ITEMS = 64
_MAX_DISPLAY = 120
_INFINITY = Node("const", (), "oo")
_NEG_INFINITY = Node("neg", (_INFINITY,))
_OPEN = ("(", "[", "{", r"\{")
_CLOSE = (")", "]", "}", r"\}")
_SEPARATORS = frozenset({",", ";", "or", "and"})
_LIST_SEPARATORS = frozenset({",", ";"})
_RELATIONS = {
    "=": "=",
    "<": "<",
    ">": ">",
    r"\le": "<=",
    r"\ge": ">=",
    r"\lt": "<",
    r"\gt": ">",
    r"\ne": "!=",
}
_RELATION_TOKENS = frozenset(_RELATIONS)
_MUL_TOKENS = frozenset({r"\cdot", r"\times", "*"})
_FUNCTION_LETTERS = frozenset("fghpqFGHPQ")
_SUCH_THAT = frozenset({"|", ":", r"\mid"})
_TEXT_ANSWER = re.compile(r"\\text\{([^{}]*[A-Za-z][^{}]*)\}", re.ASCII)
_WORDS = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*", re.ASCII)
_BASE_NUMBER = re.compile(r"\(?([0-9A-Z]*\d[0-9A-Z]*)\)?_\{?\(?(\d{1,2})\)?\}?", re.ASCII)
_NOT_TEXT_WORDS = frozenset(
    {"sqrt", "pi", "inf", "infty", "infinity", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp"}
)


def _text(tokens: list[Token]) -> str:
    return "".join(text for _, text in tokens)


def _split_found(tokens: list[Token], separators: frozenset[str]) -> tuple[list[list[Token]], list[str]]:
    """Split at depth-0 tokens whose text is in `separators`; also return the separators met, in order."""
    parts: list[list[Token]] = [[]]
    found: list[str] = []
    depth = 0
    for token in tokens:
        text = token[1]
        if text in _OPEN:
            depth += 1
        elif text in _CLOSE:
            depth -= 1
        if depth == 0 and text in separators:
            parts.append([])
            found.append(text)
        else:
            parts[-1].append(token)
    return parts, found


def _split(tokens: list[Token], separators: frozenset[str]) -> list[list[Token]]:
    """Split at depth-0 tokens whose text is in `separators`; brackets of any kind nest."""
    return _split_found(tokens, separators)[0]


def _closing_index(tokens: list[Token], start: int) -> int:
    """Index of the bracket closing tokens[start] (any bracket kind closes any), or -1."""
    depth = 0
    for index in range(start, len(tokens)):
        text = tokens[index][1]
        if text in _OPEN:
            depth += 1
        elif text in _CLOSE:
            depth -= 1
            if depth == 0:
                return index
    return -1


def _expand_pm(node: Node, budget: int = 3) -> list[Node]:
    """Expand the first `\\pm` into two trees, recursively (at most 2**budget results)."""
    if budget == 0:
        return [node]
    if node.kind == "pm":
        if len(node.args) == 1:
            options = [node.args[0], Node("neg", (node.args[0],))]
        else:
            head, tail = node.args
            options = [Node("add", (head, tail)), Node("add", (head, Node("neg", (tail,))))]
        return [leaf for option in options for leaf in _expand_pm(option, budget - 1)]
    for index, arg in enumerate(node.args):
        expanded = _expand_pm(arg, budget)
        if len(expanded) > 1:
            rebuilt = [
                Node(node.kind, node.args[:index] + (leaf,) + node.args[index + 1 :], node.value)
                for leaf in expanded
            ]
            return [leaf for tree in rebuilt for leaf in _expand_pm(tree, budget - 1)]
    return [node]


def _scalar(tokens: list[Token]) -> Answer:
    node = parse_tokens(tokens)
    leaves = _expand_pm(node)
    if len(leaves) == 1:
        if any(n.kind == "pm" for n in walk(leaves[0])):
            raise ParseError("too many plus-minus signs")
        return Scalar(leaves[0])
    return Solutions(tuple(Scalar(leaf) for leaf in leaves))


def intervals_of(answer: Answer) -> tuple[Interval, ...] | None:
    """Read an answer as a union of intervals, if it is one (a pair `(a,b)` is an open interval).

    Args:
        answer: a typed answer.

    Returns:
        Its intervals, or None when it is not a union of intervals.

    Example:
        >>> intervals_of(read_answer("(1,2)"))[0].low_closed
        False
    """
    if isinstance(answer, Intervals):
        return answer.parts
    if (
        isinstance(answer, Bracketed)
        and len(answer.items) == 2
        and answer.left == "("
        and answer.right == ")"
        and all(isinstance(item, Scalar) for item in answer.items)
    ):
        low, high = answer.items
        assert isinstance(low, Scalar) and isinstance(high, Scalar)
        return (Interval(low.node, high.node, False, False),)
    if isinstance(answer, Solutions) and answer.items:
        parts: list[Interval] = []
        for item in answer.items:
            sub = intervals_of(item)
            if sub is None:
                return None
            parts.extend(sub)
        return tuple(parts)
    return None


def _is_function_name(tokens: list[Token]) -> bool:
    """`f(x)`, `g(2)`, `P(A)`: a function letter applied to an argument, on the left of an equation."""
    return (
        len(tokens) >= 4
        and tokens[0][0] == "word"
        and tokens[0][1] in _FUNCTION_LETTERS
        and tokens[1][1] == "("
        and _closing_index(tokens, 1) == len(tokens) - 1
    )


def _equation(parts: list[list[Token]]) -> Answer:
    last = _item(parts[-1])
    if not isinstance(last, Scalar | Solutions):
        # "(x, y) = (1, 2)", "v = \begin{pmatrix}...": the left side names the quantity; keep the value.
        return last
    sides: list[Node] = []
    for part in parts[:-1]:
        if not part:
            raise ParseError("empty side")
        if _is_function_name(part):
            # "f(x) = 2x + 3": the left side names a function value; kept whole, not read as f times x.
            sides.append(Node("sym", (), _text(part)))
            continue
        try:
            sides.append(parse_tokens(part))
        except ParseError:
            # Left-hand sides may be unreadable ("\text{area} = 5"): they only name the asked quantity.
            sides.append(Node("sym", (), _text(part)))
    if isinstance(last, Scalar):
        return Equation((*sides, last.node))
    # "x = \pm 2" is the list x = 2, x = -2.
    if not all(isinstance(item, Scalar) for item in last.items):
        raise ParseError("equation with a list on the right")
    return Solutions(tuple(Equation((*sides, item.node)) for item in last.items if isinstance(item, Scalar)))


# One side of an inequality as `coefficient * variable + constant`: (variable name or None for a constant,
# the exact rational coefficient, the constant part or None for zero).
_Linear = tuple[str | None, Fraction, Node | None]
_FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "!=": "!="}


def _relation(parts: list[list[Token]], ops: list[str]) -> Answer:
    if all(op == "=" for op in ops):
        return _equation(parts)
    if "=" in ops:
        raise ParseError("mixed relation")
    nodes = [_relation_side(part) for part in parts]
    if len(nodes) == 2:
        return _one_sided(nodes[0], ops[0], nodes[1])
    if len(nodes) == 3:
        return _chained(nodes, ops)
    raise ParseError("unsupported relation")


def _relation_side(tokens: list[Token]) -> Node:
    # "0 < f(x) < 1": a function value names a quantity, as on the left of an equation.
    if _is_function_name(tokens):
        return Node("sym", (), _text(tokens))
    return parse_tokens(tokens)


def _ray(op: str, endpoint: Node) -> Intervals:
    if op == "!=":
        below = Interval(_NEG_INFINITY, endpoint, False, False)
        return Intervals((below, Interval(endpoint, _INFINITY, False, False)))
    if op in ("<", "<="):
        return Intervals((Interval(_NEG_INFINITY, endpoint, False, op == "<="),))
    return Intervals((Interval(endpoint, _INFINITY, op == ">=", False),))


def _one_sided(left: Node, op: str, right: Node) -> Answer:
    """`x > 1`, `2 < x`, `-y > -4`, `-2x \\le 6`, `f(x) \\ge 0`: the set of the one variable (§10).

    Sides linear in one variable, `a x + b` against `c x + d` with `a != c` rational, are solved: the
    inequality describes the same set as `x` against `(d - b) / (a - c)`, the relation flipped when
    `a - c` is negative.
    """
    first, second = _linear(left), _linear(right)
    if first is not None and second is not None:
        relation = op
        if first[0] is None:
            # "2 < x", "-4 < -y": read with the variable on the left.
            first, second, relation = second, first, _FLIPPED[op]
        (name, coefficient, constant), (other, other_coefficient, bound) = first, second
        coefficient -= other_coefficient
        if name is not None and other in (None, name) and coefficient != 0:
            solved = _bound(bound or Node("num", (), Fraction(0)), constant, coefficient)
            return _ray(relation if coefficient > 0 else _FLIPPED[relation], solved)
    if right.kind == "sym" and left.kind != "sym":
        left, right = right, left
        op = _FLIPPED[op]
    if left.kind != "sym":
        raise ParseError("no variable in inequality")
    return _ray(op, right)


def _bound(bound: Node, constant: Node | None, coefficient: Fraction) -> Node:
    """`(bound - constant) / coefficient`, folded to a number when it is rational."""
    if constant is None:
        numerator = bound
    elif bound.kind == "num" and bound.value == 0:
        numerator = _negate(constant)
    else:
        numerator = Node("add", (bound, _negate(constant)))
    if coefficient == 1:
        solved = numerator
    elif coefficient == -1:
        solved = _negate(numerator)
    else:
        solved = Node("div", (numerator, Node("num", (), coefficient)))
    if solved is bound:
        return bound
    value = _rational(solved)
    return solved if value is None else Node("num", (), value)


def _negate(node: Node) -> Node:
    return node.args[0] if node.kind == "neg" else Node("neg", (node,))


def _rational(node: Node) -> Fraction | None:
    try:
        value = exact_value(node)
    except (TooLarge, Undefined):
        return None
    return value[0] if value is not None and value[1] == 0 else None


def _linear(node: Node) -> _Linear | None:
    """`node` as `coefficient * variable + constant` in at most one variable; None when it is not that."""
    kind = node.kind
    if kind == "sym":
        return str(node.value), Fraction(1), None
    if kind in ("neg", "add", "mul", "div"):
        terms: list[_Linear] = []
        for arg in node.args:
            term = _linear(arg)
            if term is None:
                return None
            terms.append(term)
        if all(term[0] is None for term in terms):
            return None, Fraction(0), node
        return _LINEAR_COMBINATIONS[kind](node, terms)
    if any(inner.kind == "sym" and not str(inner.value).startswith(BOUND_PREFIX) for inner in walk(node)):
        return None
    return None, Fraction(0), node


def _linear_negation(node: Node, terms: list[_Linear]) -> _Linear | None:
    name, coefficient, constant = terms[0]
    return name, -coefficient, None if constant is None else _negate(constant)


def _linear_sum(node: Node, terms: list[_Linear]) -> _Linear | None:
    names = {term[0] for term in terms if term[0] is not None}
    if len(names) > 1:
        return None
    constants = tuple(term[2] for term in terms if term[2] is not None)
    constant = None if not constants else constants[0] if len(constants) == 1 else Node("add", constants)
    return names.pop(), sum((term[1] for term in terms), Fraction(0)), constant


def _linear_product(node: Node, terms: list[_Linear]) -> _Linear | None:
    # One factor holds the variable; every other factor must be a rational number (`\\sqrt2 x` is refused:
    # the sign of an irrational coefficient is not worth proving here).
    variable = [index for index, term in enumerate(terms) if term[0] is not None]
    if len(variable) > 1:
        return None
    scale = Fraction(1)
    for index, factor in enumerate(node.args):
        if index != variable[0]:
            value = _rational(factor)
            if value is None:
                return None
            scale *= value
    name, coefficient, constant = terms[variable[0]]
    scaled = None if constant is None else Node("mul", (Node("num", (), scale), constant))
    return name, coefficient * scale, scaled


def _linear_quotient(node: Node, terms: list[_Linear]) -> _Linear | None:
    divisor = _rational(node.args[1]) if terms[1][0] is None else None
    if not divisor:
        return None
    name, coefficient, constant = terms[0]
    return name, coefficient / divisor, None if constant is None else Node("div", (constant, node.args[1]))


_LINEAR_COMBINATIONS = {
    "neg": _linear_negation,
    "add": _linear_sum,
    "mul": _linear_product,
    "div": _linear_quotient,
}


def _chained(nodes: list[Node], ops: list[str]) -> Answer:
    """`-1 \\le x \\le 4`, `4 \\ge x > 3`, `-4 < -y < 2`, `0 < f(x) < 1`: one interval.

    The middle is a name (a variable, a function value `f(x)`), whose values the interval states, or a
    linear expression of one variable (solved, as in `_one_sided`).
    """
    if all(op in (">", ">=") for op in ops):
        nodes, ops = nodes[::-1], [_FLIPPED[op] for op in ops[::-1]]
    if not all(op in ("<", "<=") for op in ops):
        raise ParseError("unsupported relation")
    low, middle, high = nodes
    closed = (ops[0] == "<=", ops[1] == "<=")
    if middle.kind == "sym":
        return Intervals((Interval(low, high, *closed),))
    ends = _linear(low), _linear(high)
    if ends[0] is None or ends[1] is None or ends[0][0] is not None or ends[1][0] is not None:
        raise ParseError("variable bounds around an expression")
    solved = _linear(middle)
    if solved is None:
        # "0 < x^2 < 1" is not the interval (0, 1) of x (it is (-1, 0) and (0, 1)): refused, where a named
        # value ("0 < f(x) < 1", a "sym" above) states its own interval.
        raise ParseError("a nonlinear expression between bounds")
    name, coefficient, constant = solved
    if name is None or coefficient == 0:
        raise ParseError("no variable in inequality")
    low, high = _bound(low, constant, coefficient), _bound(high, constant, coefficient)
    if coefficient < 0:
        return Intervals((Interval(high, low, closed[1], closed[0]),))
    return Intervals((Interval(low, high, *closed),))


# A matrix expression is read as a list of pieces: the tokens between literals, and each literal read.
_Piece = Token | Matrix
_PLUS_MINUS = frozenset({"+", "-"})
_DELIMITER_PAIRS = {"(": ")", "[": "]"}
# Products of literal matrices build at most this many cell products (a 64-cell result of 64-term sums).
_MAX_MATRIX_PRODUCTS = 4096


def _matrix(tokens: list[Token]) -> Answer | None:
    """A matrix literal, or literals combined by sums, scalar factors and matrix products.

    `\\frac{8}{49}\\begin{pmatrix} 2 \\\\ 6 \\\\ 3 \\end{pmatrix}` is the vector (16/49, 48/49, 24/49), `-M`
    negates, `A + B` and `A - B` add cell by cell and `A B` (or `A \\cdot B`) is the matrix product of
    conforming literals. Anything else around the literals (`v =`, a relation, `^T`, a cross product of
    two column vectors) gives None: the caller reads it otherwise.
    """
    if not any(text == r"\begin" for _, text in tokens):
        return None
    if tokens[0][1] == "(" and _closing_index(tokens, 0) == len(tokens) - 1:
        tokens = tokens[1:-1]  # `\\left( A + B \\right)`
    pieces = _matrix_pieces(tokens)
    if pieces is None:
        return None
    total: Matrix | None = None
    for negative, term in _signed_terms(pieces):
        product = _matrix_product(term)
        if product is not None and negative:
            product = _scaled(product, Node("num", (), Fraction(-1)))
        if product is None:
            return None
        total = product if total is None else _added(total, product)
        if total is None:
            return None
    return total


def _matrix_pieces(tokens: list[Token]) -> list[_Piece] | None:
    pieces: list[_Piece] = []
    index = 0
    while index < len(tokens):
        if tokens[index][1] != r"\begin":
            pieces.append(tokens[index])
            index += 1
            continue
        end = _environment_end(tokens, index)
        matrix = _matrix_literal(tokens[index:end]) if end > 0 else None
        if matrix is None:
            return None
        # `\\left[\\begin{array}...\\end{array}\\right]`: brackets around one literal are its delimiters.
        before = pieces[-1] if pieces else None
        if (
            isinstance(before, tuple)
            and end < len(tokens)
            and _DELIMITER_PAIRS.get(before[1]) == tokens[end][1]
        ):
            pieces.pop()
            end += 1
        pieces.append(matrix)
        index = end
    return pieces


def _environment_end(tokens: list[Token], start: int) -> int:
    """Index just past the `\\end{env}` that closes the `\\begin{env}` at `start`; -1 when there is none."""
    env = _text(tokens[start + 1 : start + 4])
    for index in range(start + 4, len(tokens)):
        text = tokens[index][1]
        if text == r"\begin":
            return -1  # nested environments are not matrix literals
        if text == r"\end":
            return index + 4 if _text(tokens[index + 1 : index + 4]) == env else -1
    return -1


def _matrix_literal(tokens: list[Token]) -> Matrix | None:
    env = _text(tokens[1:4])
    if not env.endswith("matrix}") and env != "{array}":
        return None
    body = tokens[4:-4]
    if env == "{array}" and body and body[0][1] == "{":
        close = _closing_index(body, 0)
        body = body[close + 1 :]
    rows: list[tuple[Answer, ...]] = []
    for row in _split(body, frozenset({r"\\"})):
        if not row:
            continue
        rows.append(tuple(_item(cell) for cell in _split(row, frozenset({"&"}))))
    if not rows or len({len(row) for row in rows}) != 1:
        raise ParseError("ragged matrix")
    return Matrix(tuple(rows))


def _signed_terms(pieces: list[_Piece]) -> list[tuple[bool, list[_Piece]]]:
    """Split at top-level `+`/`-`: (negated, pieces) per term; an empty term (`A + + B`) stays empty."""
    terms: list[tuple[bool, list[_Piece]]] = [(False, [])]
    depth = 0
    for piece in pieces:
        text = piece[1] if isinstance(piece, tuple) else ""
        depth += (text in _OPEN) - (text in _CLOSE)
        if depth == 0 and text in _PLUS_MINUS:
            if terms[-1][1] or len(terms) > 1:
                terms.append((text == "-", []))
            else:
                terms[-1] = (text == "-", [])  # a leading sign
        else:
            terms[-1][1].append(piece)
    return terms


def _matrix_product(term: list[_Piece]) -> Matrix | None:
    """Scalar factors and one or two literals, juxtaposed or joined by `\\cdot`/`\\times`/`*`; else None."""
    factors: list[Node | Matrix] = []
    run: list[Token] = []
    depth = 0
    for piece in [*term, ("op", "*")]:
        if isinstance(piece, Matrix) or (depth == 0 and piece[1] in _MUL_TOKENS):
            if run:
                try:
                    factors.append(parse_tokens(run))
                except ParseError:
                    return None
                run = []
            if isinstance(piece, Matrix):
                factors.append(piece)
            continue
        depth += (piece[1] in _OPEN) - (piece[1] in _CLOSE)
        run.append(piece)
    matrices = [factor for factor in factors if isinstance(factor, Matrix)]
    if not 1 <= len(matrices) <= 2:
        # A chain `A B C` would nest products in every cell: its tree grows as a power of the chain length.
        return None
    result = matrices[0] if len(matrices) == 1 else _multiplied(*matrices)
    for factor in factors:
        if isinstance(factor, Node) and result is not None:
            result = _scaled(result, factor)
    return result


def _cells(matrix: Matrix) -> tuple[tuple[Node, ...], ...] | None:
    """The cell trees, or None when a cell is not a value (a tuple or a list inside a matrix)."""
    if not all(isinstance(cell, Scalar) for row in matrix.rows for cell in row):
        return None
    return tuple(tuple(cell.node for cell in row if isinstance(cell, Scalar)) for row in matrix.rows)


def _from_cells(rows: list[list[Node]]) -> Matrix:
    return Matrix(tuple(tuple(Scalar(cell) for cell in row) for row in rows))


def _scaled(matrix: Matrix, factor: Node) -> Matrix | None:
    cells = _cells(matrix)
    if cells is None:
        return None
    return _from_cells([[Node("mul", (factor, cell)) for cell in row] for row in cells])


def _added(left: Matrix, right: Matrix) -> Matrix | None:
    first, second = _cells(left), _cells(right)
    if first is None or second is None or [len(row) for row in first] != [len(row) for row in second]:
        return None
    return _from_cells(
        [
            [Node("add", (a, b)) for a, b in zip(row, other, strict=True)]
            for row, other in zip(first, second, strict=True)
        ]
    )


def _multiplied(left: Matrix, right: Matrix) -> Matrix | None:
    first, second = _cells(left), _cells(right)
    if first is None or second is None or len(first[0]) != len(second):
        return None  # not conforming: `\\times` of two column vectors is a cross product, not read here
    if len(first) * len(second[0]) * len(second) > _MAX_MATRIX_PRODUCTS:
        return None
    columns = list(zip(*second, strict=True))
    return _from_cells([[_dot(row, column) for column in columns] for row in first])


def _dot(row: tuple[Node, ...], column: tuple[Node, ...]) -> Node:
    products = tuple(Node("mul", (a, b)) for a, b in zip(row, column, strict=True))
    return products[0] if len(products) == 1 else Node("add", products)


def _approximation(tokens: list[Token]) -> Answer | None:
    """`a \\approx b`: the stated answer is `a`, the approximation after it is a comment.

    `\\frac{14}{3} \\approx 4.67` is the exact 14/3 (a careful grader reads the exact value first; the
    conventions are silent). When the left side only names the quantity (`x \\approx 4.67`, or nothing,
    `\\approx 6`), the approximation is all that is stated, and it is compared as that value (so a decimal
    still fails against an exact gold, conventions §5).
    """
    parts = _split(tokens, frozenset({r"\approx"}))
    if len(parts) == 1:
        return None  # only nested ones, read with their brackets
    head = parts[0]
    if not head:
        if len(parts) != 2:
            raise ParseError("bad approximation")
        return _item(parts[1])
    try:
        named = parse_tokens(head).kind == "sym"
    except ParseError:
        named = False
    if named:
        return _item([*head, ("op", "="), *parts[1]])
    return _item(head)


def _braced_set(tokens: list[Token]) -> Answer | None:
    """`\\{a, b\\}` and set-builder `\\{x | 2 \\le x < 5\\}`; also `{1, 4, 9}` in bare braces.

    Bare braces are TeX grouping, notation only as in `{4}`; around a list they are the list itself
    (a model that forgets the backslash of `\\{1, 4, 9\\}` still means the set). A bare group without a
    list separator gives None and is read as a grouped expression.
    """
    opening = tokens[0][1]
    if opening not in (r"\{", "{") or _closing_index(tokens, 0) != len(tokens) - 1:
        return None
    inner = tokens[1:-1]
    elements = _split(inner, _LIST_SEPARATORS)
    if opening == "{":
        if len(elements) == 1 or tokens[-1][1] != "}":
            return None
        return Solutions(_flatten([_item(part) for part in elements]))
    builder = _split(inner, _SUCH_THAT)
    if len(builder) == 2:
        # Set-builder notation {x | 2 <= x < 5}: the set is what the condition describes.
        return _item(builder[1])
    return Solutions(_flatten([_item(part) for part in elements]))


def _item(tokens: list[Token]) -> Answer:
    """Read one list element (no top-level commas left, except inside brackets)."""
    if not tokens:
        raise ParseError("empty item")
    texts = [text for _, text in tokens]
    if r"\approx" in texts:
        approximation = _approximation(tokens)
        if approximation is not None:
            return approximation
    if r"\in" in texts:
        index = _split(tokens, frozenset({r"\in"}))
        if len(index) == 2:
            return _item(index[1])
    unions = _split(tokens, frozenset({r"\cup"}))
    if len(unions) > 1:
        parts: list[Interval] = []
        for piece in unions:
            sub = intervals_of(_item(piece))
            if sub is None:
                raise ParseError("union of non-intervals")
            parts.extend(sub)
        return Intervals(tuple(parts))
    if texts in ([r"\mathbb", "{", "R", "}"], [r"\mathbb", "R"]):
        return Intervals((Interval(_NEG_INFINITY, _INFINITY, False, False),))
    if texts == [r"\emptyset"] or texts == [r"\{", r"\}"]:
        return Solutions(())
    matrix = _matrix(tokens)
    if matrix is not None:
        return matrix
    braced = _braced_set(tokens)
    if braced is not None:
        return braced
    relation_parts, relations = _split_found(tokens, _RELATION_TOKENS)
    if relations:
        return _relation(relation_parts, [_RELATIONS[text] for text in relations])
    if texts[0] in ("(", "[") and texts[-1] in (")", "]") and _closing_index(tokens, 0) == len(tokens) - 1:
        components = _split(tokens[1:-1], frozenset({","}))
        if len(components) > 1:
            items = tuple(_item(part) for part in components)
            if len(items) == 2 and (texts[0] != "(" or texts[-1] != ")"):
                low, high = items
                if not isinstance(low, Scalar) or not isinstance(high, Scalar):
                    raise ParseError("interval with non-scalar ends")
                return Intervals((Interval(low.node, high.node, texts[0] == "[", texts[-1] == "]"),))
            return Bracketed(items, texts[0], texts[-1])
    base = _BASE_NUMBER.fullmatch(_text(tokens))
    if base is not None:
        digits, radix = base.group(1), int(base.group(2))
        if 2 <= radix <= 36 and all(int(d, 36) < radix for d in digits):
            return BaseNumber(digits.lstrip("0") or "0", radix)
    return _scalar(tokens)


def _flatten(items: list[Answer]) -> tuple[Answer, ...]:
    flat: list[Answer] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Solutions) else (item,))
    if len(flat) > MAX_ITEMS:
        raise ParseError("too many items")
    return tuple(flat)


def _as_text(normalized: str) -> Text | None:
    match = _TEXT_ANSWER.fullmatch(normalized)
    if match is not None:
        return Text(text_key(normalized))
    if _WORDS.fullmatch(normalized):
        words = normalized.split(" ")
        if (" " in normalized and not {"or", "and"} & set(words)) or (
            len(normalized) > 3 and normalized.lower() not in _NOT_TEXT_WORDS
        ):
            return Text(text_key(normalized))
    return None


def read_answer(normalized: str) -> Answer:
    """Type a normalized answer string (see the module table).

    Args:
        normalized: the output of `normalize.normalize`.

    Returns:
        The typed answer; Unparsed when the grammar does not cover it.

    Example:
        >>> read_answer("x\\\\in[2,5)")
        Intervals(parts=(Interval(low=..., high=..., low_closed=True, high_closed=False),))
    """
    if not normalized:
        return Unparsed("")
    text = _as_text(normalized)
    if text is not None:
        return text
    try:
        tokens = tokenize(normalized)
        if nesting_depth(tokens) > MAX_DEPTH:
            return Unparsed(normalized)
        parts = _split(tokens, _SEPARATORS)
        if len(parts) == 1:
            return _item(tokens)
        items = [_item(part) for part in parts]
        intervals = intervals_of(Solutions(tuple(items)))
        # "x < -2 or x > 3" is a union; "[0,1], [2,3]" too; plain values stay a list.
        if intervals is not None and all(isinstance(item, Intervals) for item in items):
            return Intervals(intervals)
        return Solutions(_flatten(items))
    except (ParseError, RecursionError):
        return Unparsed(normalized)


def _scalar_display(node: Node) -> str:
    try:
        value = exact_value(node)
    except TooLarge:
        value = None
    return format_complex(value) if value is not None else render(node)


def _display(answer: Answer) -> str:
    if isinstance(answer, Scalar):
        return _scalar_display(answer.node)
    if isinstance(answer, Text):
        return answer.text
    if isinstance(answer, BaseNumber):
        return f"{answer.digits}_{answer.base}"
    if isinstance(answer, Bracketed):
        return answer.left + ", ".join(_display(item) for item in answer.items) + answer.right
    if isinstance(answer, Intervals):
        parts = sorted(
            ("[" if part.low_closed else "(")
            + _scalar_display(part.low)
            + ", "
            + _scalar_display(part.high)
            + ("]" if part.high_closed else ")")
            for part in answer.parts
        )
        return " U ".join(parts)
    if isinstance(answer, Solutions):
        if _distinct_names(answer.items):
            # "x = -2, y = 1" is read as an ordered tuple against a tuple gold: keep the written order.
            return ", ".join(_display(item) for item in answer.items)
        unique = sorted({_display(item) for item in answer.items})
        return ", ".join(unique) if unique else "{}"
    if isinstance(answer, Equation):
        return "=".join(_scalar_display(side) for side in answer.sides)
    if isinstance(answer, Matrix):
        return "[" + "; ".join(", ".join(_display(cell) for cell in row) for row in answer.rows) + "]"
    return answer.text


def _distinct_names(items: tuple[Answer, ...]) -> bool:
    names = [
        str(item.sides[0].value)
        for item in items
        if isinstance(item, Equation) and len(item.sides) == 2 and item.sides[0].kind == "sym"
    ]
    return len(items) > 1 and len(names) == len(items) and len(set(names)) == len(names)


def display(answer: Answer) -> str:
    """Short canonical plain text of a typed answer; long ones end in a hash of the full text.

    Args:
        answer: a typed answer.

    Returns:
        The display string.

    Example:
        >>> display(read_answer("\\\\frac{10}{16}"))
        '5/8'
    """
    return shorten(_display(answer))


def shorten(text: str) -> str:
    """Cap a display at about 120 characters; a longer text keeps its head and a hash of the whole.

    Args:
        text: a display string.

    Returns:
        The text itself, or its first 60 characters, "...#" and 16 hex digits of its sha256.

    Example:
        >>> len(shorten("1" * 5000))
        80
    """
    if len(text) <= _MAX_DISPLAY:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[:60]}...#{digest}"


def is_integer_literal(node: Node) -> bool:
    """Whether the node is a non-negative integer literal (used to read base-10 digits of an answer).

    Args:
        node: an expression tree.

    Returns:
        True for `num` nodes holding a non-negative integer.

    Example:
        >>> is_integer_literal(Node("num", (), Fraction(1011)))
        True
    """
    return (
        node.kind == "num"
        and isinstance(node.value, Fraction)
        and node.value.denominator == 1
        and node.value >= 0
    )
