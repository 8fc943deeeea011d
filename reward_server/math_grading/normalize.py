"""String-level normalization of a MATH answer, before any parsing.

This is the cheap first stage of grading: it turns notation-only differences (conventions §4, §7-§9)
into identical strings, so most equivalent pairs are decided by plain string equality. It removes
math delimiters, `\\left`/`\\right`, style wrappers (`\\mathbf`, `\\displaystyle`, `\\boxed`), maps
`\\dfrac`/`\\tfrac` to `\\frac` and `>=`/`<=`/`!=` to `\\ge`/`\\le`/`\\ne`, strips percent signs, degree
marks, currency and trailing unit words, joins thousands separators (`2,220`, `12{,}345`, `12\\,345`,
`10,\\!080`) and squeezes spaces.

Every regex here is linear: no nested quantifiers over overlapping classes.
"""

from __future__ import annotations

import re

# Unicode look-alikes that models emit instead of LaTeX commands.
_UNICODE_TABLE = str.maketrans(
    {
        "\u2212": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u00d7": r" \times ",
        "\u22c5": r" \cdot ",
        "\u00b7": r" \cdot ",
        "\u00f7": r" \div ",
        "\u2264": r" \le ",
        "\u2265": r" \ge ",
        "\u2260": r" \ne ",
        "\u03c0": r" \pi ",
        "\u221e": r" \infty ",
        "\u221a": r"\sqrt ",
        "\u00b0": r"^\circ ",
        "\u222a": r" \cup ",
        "\u00b1": r" \pm ",
        "\u2213": r" \mp ",
        "\u211d": r"\mathbb{R}",
        "\u2208": r" \in ",
        "\u2205": r"\emptyset ",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\u200b": "",
        "\uff0c": ",",
        "\u00b2": "^2",
        "\u00b3": "^3",
        # vulgar fractions: "3½" becomes the mixed number 3\\frac{1}{2} (§14)
        "\u00bd": r"\frac{1}{2}",
        "\u2153": r"\frac{1}{3}",
        "\u2154": r"\frac{2}{3}",
        "\u00bc": r"\frac{1}{4}",
        "\u00be": r"\frac{3}{4}",
        "\u2155": r"\frac{1}{5}",
        "\u2156": r"\frac{2}{5}",
        "\u2157": r"\frac{3}{5}",
        "\u2158": r"\frac{4}{5}",
        "\u2159": r"\frac{1}{6}",
        "\u215a": r"\frac{5}{6}",
        "\u215b": r"\frac{1}{8}",
        "\u215c": r"\frac{3}{8}",
        "\u215d": r"\frac{5}{8}",
        "\u215e": r"\frac{7}{8}",
        "\u27e8": "(",
        "\u27e9": ")",
        "\u2248": r" \approx ",
        "\u20ac": " ",
        "\u00a3": " ",
        "`": " ",
    }
)

_DELIMITERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))

# Thousands separators. Only well-formed groups of exactly three digits are joined, because commas
# also separate list elements and tuple components (conventions §9).
EXPLICIT_THOUSANDS = re.compile(r"(?<=\d)(?:,\\!\s*|\{\s*,\s*\}|\\[,;:]|,\\,)(?=\d{3}(?!\d))", re.ASCII)
_PLAIN_THOUSANDS = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?:,\d{3})+(?!\d|,\d)", re.ASCII)

_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.ASCII), replacement)
    for pattern, replacement in (
        (r"\\\$", " "),
        # Programmers' relations. `5!=120` is a factorial and an equation, so `!=` right after a digit or
        # a closing bracket stays; `<=>` (iff) is not a relation of one value.
        (r"<=(?!>)", r" \\le "),
        (r"(?<!<)>=", r" \\ge "),
        (r"(?<![\d)}\]!])!=", r" \\ne "),
        # Bold text around words, or a number and words, is a unit label or a word answer, as `\text{}`
        # is ("5 \textbf{ cm}", "\textbf{5 cm}"); bold around a number, a letter or math (`\textbf{10}`,
        # `\textbf{x}`) is only notation, and its wrapper goes below.
        (
            r"\\textbf\s*\{((?=[^{}\d\\]*?[A-Za-z]{2})[^{}\d\\]*|\s*\d[\d.,]*\s+[A-Za-z]{2}[^{}\\]*)\}",
            r"\\text{\1}",
        ),
        (r"\$", " "),
        (r"\\(?:left|right|[bB]igg?[lr]?)(?![A-Za-z])\s*\.?", ""),
        (
            r"\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits|mathbf|textbf|boldsymbol|bm|mathit"
            r"|mathsf|mathnormal|emph|boxed|fbox|textup|mathbfit)(?![A-Za-z])",
            "",
        ),
        (r"\\operatorname\s*\{\s*([A-Za-z]+)\s*\}", r"\\\1"),
        # Upright constants: \mathrm{i} is the imaginary unit and \mathrm{e} Euler's number, not units.
        (r"\\(?:mathrm|text|textrm)\s*\{\s*([ie])\s*\}", r" \1 "),
        (r"\\(?:mathrm|textrm|mbox|textnormal|textit|texttt|textsf|hbox)(?![A-Za-z])", r"\\text"),
        # Size and colour switches are layout only ("\large 42", "\color{red} 5").
        (r"\\(?:tiny|scriptsize|footnotesize|small|normalsize|large|Large|LARGE|huge|Huge)(?![A-Za-z])", ""),
        (r"\\(?:textcolor|color)\s*\{[^{}]*\}", ""),
        (r"\\text\s*\{\s*(?:infinity|infty|inf)\s*\}", r"\\infty "),
        # "1.5 x 10^3": a letter x between a number and a power of ten is a times sign.
        (r"(?<=\d)\s*[xX]\s*(?=10\s*\^)", r"\\times "),
        (r"\\(?:simeq|thickapprox)(?![A-Za-z])", r"\\approx "),
        (r"\\[dtc]frac(?![A-Za-z])", r"\\frac"),
        (r"\\[dt]binom(?![A-Za-z])", r"\\binom"),
        (r"\\(?:le|leq|leqslant)(?![A-Za-z])", r"\\le "),
        (r"\\(?:ge|geq|geqslant)(?![A-Za-z])", r"\\ge "),
        (r"\\(?:neq)(?![A-Za-z])", r"\\ne "),
        (r"\\(?:mathbb|Bbb|mathbf)\s*\{?\s*R\s*\}?|\\R(?![A-Za-z])", r"\\mathbb{R}"),
        # TeX's infix forms: `{10 \choose 3}` is \binom{10}{3} and `{1 \over 3}` is \frac{1}{3}.
        (r"\{([^{}]*)\\choose(?![A-Za-z])([^{}]*)\}", r"\\binom{\1}{\2}"),
        (r"\{([^{}]*)\\over(?![A-Za-z])([^{}]*)\}", r"\\frac{\1}{\2}"),
        (r"\\(?:varnothing)(?![A-Za-z])", r"\\emptyset "),
        (r"\\lbrace(?![A-Za-z])", r"\\{"),
        (r"\\rbrace(?![A-Za-z])", r"\\}"),
        (r"\\langle(?![A-Za-z])", "("),
        (r"\\rangle(?![A-Za-z])", ")"),
        (r"^\s*(?:\\text\s*\{\s*)?(?i:all real(?: numbers|s)?)\s*\}?\s*$", r"\\mathbb{R}"),
        # Percent is a unit label, stripped without any factor of 100 (conventions §7).
        (r"\\?%", " "),
        # Degree marks are unit labels too (conventions §8); no conversion to radians.
        # "30^o" is a common plain-text degree mark; only after a number or a closing brace.
        (
            r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\degree(?![A-Za-z])"
            r"|(?<=[\d}])\s*\^\s*(?:\{\s*o\s*\}|o(?![A-Za-z]))",
            " ",
        ),
        (r"\\text\s*\{[\s~]*,?[\s~]*(or|and)[\s~]*,?[\s~]*\}", r" \1 "),
        # Spacing commands; `\,` inside numbers was handled by EXPLICIT_THOUSANDS already.
        (r"(?<!\\)\\[,;:!> ]|\\q?quad(?![A-Za-z])|\\hspace\s*\{[^{}]*\}|~", " "),
    )
)

_UNIT_WORDS = (
    r"cm|mm|km|meters?|metres?|centimeters?|centimetres?|millimeters?|kilometers?|inch(?:es)?|feet|foot|ft"
    r"|yards?|yd|miles?|mph|kph|km/h|m/s|seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?"
    r"|years?|yrs?|grams?|kg|kilograms?|pounds?|lbs?|ounces?|oz|tons?|liters?|litres?|ml|gallons?|cups?"
    r"|dollars?|cents?|euros?|degrees?|radians?|units?|percent|per\s+cent|pct|people|persons?|students?"
    r"|sq\.?\s*units?|square\s+units?|cubic\s+units?"
)
# A trailing `\text{...}` after a value is a unit label ("5 \text{ cm}", "18 \text{ dollars}").
# "6 \text{ or more}", "5 \text{ (or 6)}", "5 \text{ if } n \text{ is even}", "-1 \text{ (rejected)}" are not
# units: a label with a digit, or with a word that offers an alternative, a condition or a rejection, is kept
# (and fails as a hedge).
_TRAILING_TEXT = re.compile(
    r"(?<=\S)\s*\\text\s*\{(?![^{}]*\b(?:or|and|if|unless|when|except|not|otherwise|maybe|possibly|perhaps"
    r"|rejected|extraneous|invalid|incorrect|wrong|impossible|excluded)\b)[^{}\d]*\}\s*(?:\^\s*\{?\s*[23]\s*\}?)?\s*$",
    re.ASCII,
)
# The whole answer in one text box that starts with a number ("\text{12 inches}") is that number with a
# unit label: unwrapped so that the unit rules apply.
_TEXT_NUMBER = re.compile(r"\\text\s*\{\s*([-+]?\d[^{}]*)\}", re.ASCII)
# "10 080": digit groups split by plain spaces, only when that is the whole answer ("12 13" stays a hedge
# because 13 is not a group of three digits).
_SPACED_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?", re.ASCII)
# "2 1/4" in plain text is the mixed number 2 + 1/4 (conventions §14), when that is the whole answer.
_PLAIN_MIXED = re.compile(r"^([-+]?\d+) (\d+)/([1-9]\d*)$", re.ASCII)
# A whole answer written as a number word ("eight") is that number; a careful human grader accepts it.
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_UNIT = rf"(?:(?:square|sq\.?|cubic)\s+)?(?:{_UNIT_WORDS})\.?(?:\s*\^\s*\{{?\s*[23]\s*\}}?)?"
# "7 \pmod{12}", "7 (\mod 12)": a residue with its modulus after it states the residue, like a unit label
# (never reduced: "19 \pmod{12}" stays 19).
_TRAILING_MODULUS = re.compile(
    r"(?<=\S)\s*(?:\\pmod\s*(?:\{\s*\d+\s*\}|\d+)|\(\s*\\?mod\s*\d+\s*\))\s*$", re.ASCII
)
_TRAILING_UNIT = re.compile(
    rf"(?<=[\d}})\s])\s*{_UNIT}(?:\s*(?:per|/)\s*{_UNIT})?\s*$",
    re.ASCII | re.IGNORECASE,
)
# "42 apples": plain words after a lone number are a unit label too; "or"/"and" words are hedges, kept.
_NUMBER_WITH_WORDS = re.compile(
    r"([-+]?\d[\d.,/]*)\s+(?!(?:or|and|not|nor|plus|minus|times|over|divided|sqrt|pi)\b)[A-Za-z]{3,}"
    r"(?:\s+(?!(?:or|and|not|nor|plus|minus|times|over|divided|sqrt|pi)\b)[A-Za-z]{3,}){0,3}",
    re.ASCII | re.IGNORECASE,
)
_PLAIN_TEXT = re.compile(r"\\text\s*\{([^{}A-Za-z]*)\}", re.ASCII)
_SPACES = re.compile(r"\s+")
# A space matters only between two alphanumerics ("\sin x", "12 13"); elsewhere it is layout.
_LAYOUT_SPACE = re.compile(r" (?![A-Za-z0-9])|(?<![A-Za-z0-9]) ", re.ASCII)
_TRAILING_PUNCT = re.compile(r"[\s.;:]+$")
_TEXT_WRAPPER = re.compile(r"\\text\s*\{([^{}]*)\}", re.ASCII)


def strip_math_delimiters(text: str) -> str:
    """Remove one pair of surrounding math delimiters (`$...$`, `$$...$$`, `\\[...\\]`, `\\(...\\)`).

    Args:
        text: an answer string.

    Returns:
        The string without its outer delimiters and surrounding whitespace.

    Example:
        >>> strip_math_delimiters("$\\\\frac12$")
        '\\\\frac12'
    """
    s = text.strip()
    for left, right in _DELIMITERS:
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            return s[len(left) : len(s) - len(right)].strip()
    return s


def _join_plain_thousands(s: str) -> str:
    def join(match: re.Match[str]) -> str:
        before = s[: match.start()].rstrip().rstrip("+-").rstrip()[-1:]
        after = s[match.end() :].lstrip()[:1]
        # "(12,102)" is a pair or an interval, not the number 12102.
        if before and before in "([" and after and after in ")]":
            return match.group(0)
        return match.group(0).replace(",", "")

    return _PLAIN_THOUSANDS.sub(join, s)


def normalize(answer: str) -> str:
    """Normalize an answer string so that notation-only differences disappear.

    Args:
        answer: a raw answer (gold or extracted), bare LaTeX or plain text.

    Returns:
        The normalized string; "" when nothing is left.

    Example:
        >>> normalize("\\\\$1{,}234.50 \\\\text{ dollars}")
        '1234.50'
    """
    s = strip_math_delimiters(answer.translate(_UNICODE_TABLE))
    s = EXPLICIT_THOUSANDS.sub("", s)
    for pattern, replacement in _SUBSTITUTIONS:
        s = pattern.sub(replacement, s)
    s = _SPACES.sub(" ", s).strip()
    s = _TRAILING_PUNCT.sub("", s)
    text_number = _TEXT_NUMBER.fullmatch(s)
    if text_number is not None:
        s = _TRAILING_PUNCT.sub("", text_number.group(1).strip())
    # Units may stack ("5 \text{ cm}^2", "12 square units"): strip a few trailing labels.
    for _ in range(3):
        stripped = _TRAILING_UNIT.sub("", _TRAILING_TEXT.sub("", _TRAILING_MODULUS.sub("", s))).rstrip()
        if stripped == s or not stripped:
            break
        s = _TRAILING_PUNCT.sub("", stripped)
    if _SPACED_THOUSANDS.fullmatch(s):
        s = s.replace(" ", "")
    s = _PLAIN_MIXED.sub(r"\1\\frac{\2}{\3}", s)
    words = _NUMBER_WITH_WORDS.fullmatch(s)
    if words is not None:
        s = words.group(1)
    s = _NUMBER_WORDS.get(_TEXT_WRAPPER.sub(r"\1", s).strip().lower(), s)
    s = _PLAIN_TEXT.sub(r"\1", s)
    s = _join_plain_thousands(s)
    s = _SPACES.sub(" ", s).strip()
    return _LAYOUT_SPACE.sub("", s)


def text_key(normalized: str) -> str:
    """Case-insensitive key of a text answer: `\\text{}` and braces removed (conventions §15).

    A lone multiple-choice letter loses its parentheses, so `\\text{(C)}`, `(C)` and `c` share a key.

    Args:
        normalized: an already normalized answer.

    Returns:
        The lowercase key.

    Example:
        >>> text_key("\\\\text{(C)}")
        'c'
    """
    s = _TEXT_WRAPPER.sub(r"\1", normalized)
    s = s.replace("{", "").replace("}", "").replace(" ", "").lower().rstrip(".")
    if len(s) == 3 and s[0] == "(" and s[2] == ")" and s[1].isalpha():
        s = s[1]
    return s
