"""Final-answer extraction from a completion (docs/math-conventions.md §1-§4).

Order: the last complete `\\boxed{...}` (or `\\fbox{...}`, `\\boxed 9`), joined with the boxes right
before it when they sit in the same sentence separated by "and"/"or"/commas; without any box, the
value after the last "final answer is" / "Answer:" / "answer is" marker (or a "Final Answer" heading);
failing that, the value stated in the last sentence, read conservatively: what follows its last cue word
outside math ("The value of $k$ is 2." gives 2), with closing courtesies ("I hope this helps!") skipped.
An unterminated or empty last box, a truncated text and a refusal give None. Boxes that assign
different variables ("x = \\boxed{2} and y = \\boxed{3}") keep their names, so that the pair can be
read as a point.

Linear time: boxes are found with one literal regex, braces are matched with one stack pass over the
brace tokens (no recursion, so 3,000-deep nesting is fine), markers with one regex scan, and every
other regex runs on a bounded window.
"""

from __future__ import annotations

import re

from reward_server.math_grading.normalize import strip_math_delimiters
from reward_server.math_grading.qualifiers import (
    ALTERNATIVE_AFTER,
    bounded,
    conditioned,
    opens_with_bound,
    second_answer,
)

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BRACE = re.compile(r"\\\\|\\[{}]|[{}]")
_BARE_BOX_ARG = re.compile(r"[ \t]+([^\s${}]+)")
# What may sit between two boxes of one list answer: spaces, math delimiters, "and"/"or"/commas and a
# variable being assigned ("x = \boxed{-2} or x = \boxed{5}").
_BOX_GAP = re.compile(
    r"(?:\s|\$|\\[()\[\]]|\\q?quad|\\[,;]|[,;]|\band\b|\bor\b|\\text\{\s*,?\s*(?:and|or)?\s*,?\s*\}"
    r"|[A-Za-z](?:_\{?\w{1,3}\}?)?\s*=)*",
    re.ASCII,
)
_JOINER = re.compile(r",|\band\b|\bor\b", re.ASCII)
# A multiple-choice letter offered as an alternative after a box ("\boxed{C}, or possibly (D)").
_CHOICE_LETTER = re.compile(r"\(?[A-E]\)?(?![A-Za-z0-9])", re.ASCII)
_BARE_GAP = re.compile(r"(?:\s|\$|\\[()\[\]]|\\q?quad|\\[,;])*", re.ASCII)
# A later box in a sentence that opens with a hedge ("\boxed{7}. Or maybe it is \boxed{8}."): an alternative
# to the box before it, not a revision ("Actually, it is \boxed{8}." revises).
_HEDGE_GAP = re.compile(
    r"(?:\s|\$|\\[()\[\]])*(?:[.;,!]\s*)?(?:or|alternatively|maybe|perhaps|possibly)\b[^.!?\n]*",
    re.IGNORECASE,
)
_MAX_GAP = 80
_QUALIFIER_WINDOW = 400  # how far around a stated value the qualifiers look (see qualifiers.py)
# A "Final Answer" heading on its own line ("**Final Answer**\n\n12", "### Final Answer\n12") marks one too.
# GSM8K's answer lines mark one too, when a value follows (a Markdown heading or a prose "A:" does not): the
# reference's "#### 42" and the sample's "A: 1250" on a line of its own; so does "Answer" opening a line
# or sentence directly before math ("Answer $ 12 $").
_MARKER = re.compile(
    r"final answer is|answer\s*\**\s*:|answer is|final answer[ \t*#]*(?=\n)"
    r"|####(?=[ \t]*[-$\d.])|^[ \t]*A:(?=[ \t]*[-$\d.\\])"
    r"|(?:^|(?<=[.!?] ))[ \t*#]*(?:final[ \t]+)?answer[ \t*]*[ \t](?=\$|\\\(|\\\[)",
    re.IGNORECASE | re.MULTILINE,
)
# "<value> is the answer." / "... is our final solution": the value before the phrase is the answer.
# ((?<=\S): a run of spaces is tried once, not once per space)
_IS_THE_ANSWER = (
    r"(?<=\S)\s+(?:is|are|would be|must be|should be)\s+(?:the|our|my)\s+(?:final\s+|correct\s+)?"
    r"(?:answer|solution|result)s?\b"
)
_ANSWER_AFTER = re.compile(_IS_THE_ANSWER + r"\s*\**[.!]?\s*\**$", re.IGNORECASE)  # ending a sentence
_ANSWER_AFTER_IN_TEXT = re.compile(  # anywhere, before a sentence's end
    _IS_THE_ANSWER + r"(?=[\s*]*(?:[.!][\s*]*)?(?:$|\n|\s+[A-Z]))", re.IGNORECASE
)
_WORK_STEP = re.compile(
    r"[\s*]*(?:we|let|let's|i|first|next|now|then|to|consider|note|suppose|assume|divide|multiply|add|subtract"
    r"|compute|calculate|substitute|solve|check)\b",
    re.IGNORECASE,
)
# A sentence that announces work still to do states no result ("Let's compute $y$ from $x = 5$.", "We need
# to find $n$ with $n < 12$."): its math is the data of the problem.
_PLAN = re.compile(
    r"[\s*]*(?:let's|let\s+us|let\s+me|we\s+(?:need|want|have|must)\s+to|we\s+(?:will|shall)|we'll"
    r"|i\s+(?:need|want|have)\s+to|i\s+will|i'll)\b",
    re.IGNORECASE,
)
# Fenced code is not read (docs/math-conventions.md, "Not read, on purpose"): a box or value in a code
# block or tool call is not the stated answer; the text after the block still is.
_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_CURRENCY = re.compile(r"\$(-?\d+(?:,\d{3})*(?:\.\d+)?)(?![\d$])")
# The pieces of the words before "is the answer": math spans, numbers, words and punctuation.
_VALUE_TOKEN = re.compile(
    r"\$\$.+?\$\$|\$(?:\\\$|[^$])+?\$|\\\(.+?\\\)|\\\[.+?\\\]|\$?-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?%?"
    r"|[A-Za-z]+|[^\s\w]",
    re.DOTALL,
)
_HEDGE_JOINERS = {",", "or", "and", "maybe", "perhaps", "possibly", "either"}
# The end of the model's turn: what follows a chat template's end-of-turn or start-of-turn token is not part
# of its answer (a new "user" turn the model wrote itself, padding).
_TURN_END = re.compile(
    r"<\|(?:im_end|im_start|eot_id|end_of_text|endoftext|end|user|assistant|system|start_header_id|EOT)\|>"
    r"|</s>|<end_of_turn>|<start_of_turn>|<｜end▁of▁sentence｜>|<\|end_of_sentence\|>"
)
# A role header a completion may start with ("<|im_start|>assistant\n", "<|start_header_id|>assistant
# <|end_header_id|>"): not a turn's end.
_ROLE_HEADER = re.compile(
    r"\s*(?:<\|im_start\|>\s*assistant|<\|start_header_id\|>\s*assistant\s*<\|end_header_id\|>|<\|assistant\|>"
    r"|<start_of_turn>\s*model)\s*"
)
# A marker followed by a sentence of prose ("Answer: The area is $12$."), not by the value itself.
_PROSE = re.compile(r"[A-Za-z][a-z]+\s+[a-z]", re.ASCII)
_MARKER_LEAD = re.compile(r"[\s*:_#]*")
_MATH_SPANS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n", re.ASCII)
_TAIL_WINDOW = 600
_MATH_SEGMENT = re.compile(
    r"\$\$(.+?)\$\$|(?<!\\)\$((?:\\\$|[^$])+?)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", re.DOTALL
)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?", re.ASCII)
_REFUSAL = re.compile(r"\b(?:sorry|cannot|can't|can not|unable|not able)\b", re.IGNORECASE)
_ANSWER_CUE = re.compile(
    r"=|\b(?:is|are|equals?|gives?|get|got|total|thus|therefore|hence|so)\b", re.IGNORECASE
)
_ASSIGNED_NAME = re.compile(r"(?<![A-Za-z\\])([A-Za-z](?:_\{?\w{1,3}\}?)?)\s*=\s*\$?\s*$", re.ASCII)
# What may end an expression right before an assigned name: in "x + y = \boxed{3}", "2y = ..." or
# "x - y = ..." the box holds the value of the expression, not of y.
_EXPRESSION_BEFORE_NAME = re.compile(r"(?:[-+*/^_=<>\d]|\\(?:cdot|times|pm|mp|div))\s*$", re.ASCII)
# Where a plain-text answer stops: a parenthetical remark ("5 (because ...)", but not "(or 13)", which
# is a hedge) or a clause that explains it (", since ...", ", not 7").
_REMARK = re.compile(
    r"\s*\((?=[A-Za-z]{2,}\b)(?!or\b|and\b)|,?\s+(?:since|because|as|which|where|given|using|from|but)\b"
    r"|,\s*(?:not|so|i\.e\.|e\.g\.|that is)\b",
    re.ASCII | re.IGNORECASE,
)
# Words after which the last sentence states its value ("The value of $k$ is 2", "so we get $x=5$").
_PREDICATE_CUE = re.compile(
    r"=|\b(?:is|are|was|were|equals?|gives?|get|got|thus|therefore|hence|so)\b", re.IGNORECASE
)
# A closing sentence without digits, math or an answer cue states no value ("Let me know if ..."), nor does
# one that only comments on the answer ("I hope it is correct.", "This should be right.").
_COURTESY = re.compile(r"[^\d$\\]*", re.ASCII)
_CLOSING_REMARK = re.compile(
    r"[\s*]*(?:(?:I|we)\s+(?:hope|think|believe|am\s+confident|double-?checked)|hope\b|let\s+me\s+know|feel\s+free"
    r"|please\b|thanks?\b|good\s+luck|(?:this|that|it)\s+(?:is|should\s+be|seems)\s+(?:correct|right))",
    re.IGNORECASE,
)
_MAX_SKIPPED_COURTESIES = 2
# A word answer stated in prose: at most three words, or a choice label ("Evelyn", "even", "**(C)**").
_FEW_WORDS = re.compile(r"[\s*]*\(?[A-Za-z][A-Za-z'-]*\)?(?:\s+[A-Za-z][A-Za-z'-]*){0,2}[\s*]*", re.ASCII)
# "$6$ or $7$", "$12$, or possibly $13$": a hedge word between the values does not end the list.
_LIST_GAP = re.compile(
    r"\s*(?:,\s*(?=or\b|and\b))?(?:,|and|or|\\text\{\s*(?:and|or)\s*\})\s*"
    r"(?:(?:maybe|perhaps|possibly|probably|even|also|alternatively)\s+)?(?:[A-Za-z]\s*=\s*)?",
    re.ASCII,
)


# Numbers written as words ("Five boxes are left.", "There are twelve ways."), up to ninety-nine.
_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUES = {word: value for value, word in enumerate(_UNITS)}
_WORD_VALUES |= {word: 20 + 10 * index for index, word in enumerate(_TENS)}
_NUMBER_WORD = re.compile(
    rf"\b(?:({'|'.join(_TENS)})(?:[- ]({'|'.join(_UNITS[1:10])}))?|({'|'.join(_UNITS)}))\b", re.IGNORECASE
)
# A sentence that opens with its value ("30% of the marbles are red.", "In the end, 12 cars were left."): a
# number after at most a connective and a short phrase with a comma.
_LEADING_NUMBER = re.compile(
    r"[\s*]*(?:(?:so|thus|therefore|hence|overall|altogether|now|finally)\b,?\s+)?(?:[A-Za-z]+(?:\s+[A-Za-z]+){0,3},\s+)?"
    r"(\$?-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?%?)(?=\s+[a-z])",
    re.IGNORECASE,
)
# A completion that is nothing but a value ("-12", "\frac{3}{4}", "40 percent", "1,250,000", "9.", "(C)"):
# short, one line, opening like a value, with at most two words (a unit) outside LaTeX commands.
_BARE_VALUE_START = re.compile(r"[-+(\[{$\\\d.]|[A-Za-z]\s*=|\(?[A-Ea-e]\)?\.?$")
_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{2,}\b", re.ASCII)
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+(?:\{[^{}]*\})?")
_MAX_BARE_VALUE = 100
_ONE_WORD = re.compile(r"[\s*]*[A-Za-z][A-Za-z'-]*[\s*]*", re.ASCII)
# "Result: $x = 5$": a label of a few words, a colon, and one math span that ends the sentence.
_LABEL = re.compile(r"[\s*#]*[A-Za-z][A-Za-z ]{0,30}[*]*:[*]*\s*")


def _clean(answer: str) -> str | None:
    """Strip delimiters, trailing period and emphasis; None when nothing is left."""
    text = strip_math_delimiters(answer.strip())
    text = text.strip().strip("*").strip()
    while text.endswith((".", ",", ";")) and not text[:-1].rstrip().endswith("\\"):
        text = text[:-1].rstrip()
    text = strip_math_delimiters(text)
    return text if text.strip("$ ") else None


def _matching_braces(text: str, start: int, wanted: set[int]) -> dict[int, int]:
    """Close positions of the `{` at the `wanted` positions, in one pass from `start` with a stack."""
    stack: list[int] = []
    found: dict[int, int] = {}
    for match in _BRACE.finditer(text, start):
        token = match.group()
        if token == "{":
            stack.append(match.start())
        elif token == "}" and stack:
            opened = stack.pop()
            if opened in wanted:
                found[opened] = match.start()
    return found


def _boxes(text: str, starts: list[re.Match[str]]) -> list[tuple[int, int, str | None]]:
    """(start, end, content) of every box; content None when unterminated or empty."""
    opens: dict[int, int] = {}
    for match in starts:
        index = match.end()
        while index < len(text) and text[index] in " \t":
            index += 1
        if index < len(text) and text[index] == "{":
            opens[match.start()] = index
    closes = _matching_braces(text, starts[0].start(), set(opens.values()))
    boxes: list[tuple[int, int, str | None]] = []
    for match in starts:
        brace = opens.get(match.start())
        if brace is None:
            bare = _BARE_BOX_ARG.match(text, match.end())
            if bare is None:
                boxes.append((match.start(), match.end(), None))
            else:
                boxes.append((match.start(), bare.end(), _clean(bare.group(1))))
            continue
        close = closes.get(brace)
        if close is None:
            boxes.append((match.start(), match.end(), None))
        else:
            content = text[brace + 1 : close].strip()
            boxes.append((match.start(), close + 1, content or None))
    return boxes


def _from_boxes(text: str, starts: list[re.Match[str]]) -> tuple[str | None, int]:
    """The boxed answer (conventions §1) and where its last box ends."""
    top: list[tuple[int, int, str | None]] = []
    for box in _boxes(text, starts):
        # A box nested in a complete box belongs to it (`\boxed{\boxed{3}}`).
        if top and top[-1][2] is not None and box[0] < top[-1][1]:
            continue
        top.append(box)
    last = top[-1]
    if last[2] is None:
        return None, last[1]
    contents = [last[2]]
    index = len(top) - 1
    while index > 0:
        previous = top[index - 1]
        gap = text[previous[1] : top[index][0]]
        # Joined by "and"/"or"/commas, by nothing but space ("\boxed{5} \boxed{6}"), or by a hedge.
        joined = len(gap) <= _MAX_GAP and (
            (_BOX_GAP.fullmatch(gap) is not None and _JOINER.search(gap) is not None)
            or _BARE_GAP.fullmatch(gap) is not None
            or _HEDGE_GAP.fullmatch(gap) is not None
        )
        if previous[2] is None or not joined:
            break
        contents.append(previous[2])
        index -= 1
    contents.reverse()
    first_start = top[index][0]
    after = text[last[1] : last[1] + _QUALIFIER_WINDOW]
    if (
        bounded(text[max(0, first_start - _QUALIFIER_WINDOW) : first_start])
        or conditioned(after)
        or second_answer(after)
    ):
        return None, last[1]  # "at least \boxed{7}", "\boxed{8} otherwise": not a value stated as the answer
    if len(contents) > 1:
        # "x = \boxed{2} and y = \boxed{3}": boxes that name different variables keep their names, so
        # that the pair can be read as the point (2, 3); "x = \boxed{-2} or x = \boxed{5}" is a plain list.
        names = [_assigned_name(text, box[0]) for box in top[index:]]
        if all(names) and len(set(names)) == len(names):
            contents = [f"{name} = {content}" for name, content in zip(names, contents, strict=True)]
    alternative = _alternative(text, last[1])
    if alternative is not None:
        contents.append(alternative)
    unique = list(dict.fromkeys(contents))
    # Boxes joined in the final sentence form one list answer; different values there are a hedge,
    # and returning them as a list makes them fail against a single-valued gold.
    return _clean(", ".join(unique)), last[1]


def _alternative(text: str, position: int) -> str | None:
    """The value offered as an alternative right after a box ("\\boxed{7}, or possibly $8$" gives 8), or None.

    It joins the box's list: a hedge then fails against a single-valued gold (conventions §3), and an
    equivalent restatement ("\\boxed{\\frac12} (or $0.5$)") still passes."""
    window = text[position : position + _TAIL_WINDOW]
    gap = ALTERNATIVE_AFTER.match(window)
    if gap is None:
        return None
    span = _math_span(window[gap.end() :])
    if span is not None:
        return _clean(span[0])
    number = _NUMBER.match(window, gap.end()) or _CHOICE_LETTER.match(window, gap.end())
    return _clean(number.group()) if number is not None else None


def _assigned_name(text: str, box_start: int) -> str | None:
    """The variable assigned right before a box ("y = \\boxed{3}" gives "y"), or None."""
    window = text[max(0, box_start - 40) : box_start]
    match = _ASSIGNED_NAME.search(window)
    if match is None or _EXPRESSION_BEFORE_NAME.search(window[: match.start(1)]):
        return None
    return match.group(1)


def _math_span(text: str) -> tuple[str, int] | None:
    """The math at the start of `text` ($...$, $$...$$, \\[...\\], \\(...\\)) and where it ends."""
    for left, right in _MATH_SPANS:
        if text.startswith(left):
            close = text.find(right, len(left))
            # `\$` inside math is a dollar sign, not the closing delimiter.
            while close > 0 and right == "$" and text[close - 1] == "\\":
                close = text.find(right, close + 1)
            if close < 0:
                return None
            return text[len(left) : close], close + len(right)
    return None


def _sentence(text: str) -> str:
    end = _SENTENCE_END.search(text)
    return text if end is None else text[: end.start()]


def _plain_value(text: str) -> str:
    """A plain-text answer up to its end of sentence, without an explanatory remark after it."""
    sentence = _sentence(text)
    remark = _REMARK.search(sentence)
    return sentence[: remark.start()] if remark is not None and remark.start() > 0 else sentence


def _after_marker(text: str) -> str | None:
    lead = _MARKER_LEAD.match(text)
    rest = text[lead.end() :] if lead is not None else text
    if opens_with_bound(rest):
        return None  # "The answer is at least 7.": a bound, not a value
    amount = _amount(rest)
    if amount is not None:
        return amount
    if _starts_math(rest):
        return _math_values(rest)
    plain = _plain_value(rest[:_TAIL_WINDOW])
    if _PROSE.match(plain):
        # "Answer: There are 12 ways." states its value like a last sentence does; "Final Answer: Janet
        # makes 18 dollars." (no cue word) by its one number.
        plain = _digits_for_words(plain)
        value = _sentence_value(plain)
        if value is None:
            numbers = _NUMBER.findall(plain)
            value = _clean(numbers[0]) if len(numbers) == 1 else None
        if value is not None:
            return value
    return _clean(plain)


def _digits_for_words(sentence: str) -> str:
    """ "Five boxes are left." as "5 boxes are left.", in a sentence without digits or math."""
    if any(char.isdigit() for char in sentence) or "$" in sentence or "\\" in sentence:
        return sentence
    return _NUMBER_WORD.sub(_word_value, sentence)


def _word_value(match: re.Match[str]) -> str:
    tens, unit, alone = match.groups()
    if alone is not None:
        return str(_WORD_VALUES[alone.lower()])
    return str(_WORD_VALUES[tens.lower()] + (_WORD_VALUES[unit.lower()] if unit else 0))


def _stated_value(rest: str) -> str | None:
    """What a final-answer marker states when it is math or a bare number, else None ("The final answer is
    $6$." states 6; "the answer is correct" states nothing)."""
    lead = _MARKER_LEAD.match(rest)
    rest = rest[lead.end() :] if lead is not None else rest
    if opens_with_bound(rest):
        return None
    amount = _amount(rest)
    if amount is not None:
        return amount
    if _starts_math(rest):
        return _math_values(rest)
    value = _clean(_plain_value(rest))
    return value if value is not None and _NUMBER.fullmatch(value.lstrip("$")) else None


def _amount(rest: str) -> str | None:
    """A dollar amount that opens `rest` ("$18.", "$1,250,000 in all"): a `$` with no other `$` after it on
    its line is currency, not the start of math."""
    amount = _CURRENCY.match(rest)
    if amount is None or "$" in rest[amount.end() :].split("\n", 1)[0]:
        return None
    return _clean(amount.group(1))


def _value_ending(prefix: str) -> str | None:
    """The value at the end of `prefix` ("Thus, $x=4$" gives x=4, "So 12" gives 12), or None. Values joined
    by "or"/"and"/commas there are returned together ("3 or 4 is the answer" gives "3, 4"): a hedge or a
    list, never its last element alone."""
    values: list[str] = []
    joined = True
    for token in reversed(_VALUE_TOKEN.findall(prefix[-_TAIL_WINDOW:])):
        if token.startswith(("$", "\\(", "\\[")) or token[-1:].isdigit() or token.endswith("%"):
            if not joined:
                break
            span = _math_span(token)
            values.append(span[0] if span is not None else token)
            joined = False
        elif token.lower() in _HEDGE_JOINERS and values:
            joined = True
        elif token != "*":  # (emphasis around the value is skipped)
            break
    cleaned = [value for value in (_clean(v) for v in reversed(values)) if value]
    return ", ".join(dict.fromkeys(cleaned)) or None


def _labelled_math(sentence: str) -> str | None:
    """ "Result: $x = 5$" (a short label, a colon, and one math span that ends the sentence) gives x = 5."""
    label = _LABEL.match(sentence)
    if label is None or not _starts_math(sentence[label.end() :]):
        return None
    rest = sentence[label.end() :]
    span = next((_math_span(rest) for left, _ in _MATH_SPANS if rest.startswith(left)), None)
    if span is None or rest[span[1] :].strip(" .*"):
        return None
    return _clean(span[0])


def _bare_value(text: str) -> str | None:
    """A completion that is nothing but a value (see `_BARE_VALUE_START`) or one word ("Evelyn"; a few words,
    "no idea", state nothing), or None."""
    value = text.strip()
    if len(value) > _MAX_BARE_VALUE or "\n" in value:
        return None
    if _REFUSAL.search(value):
        return None
    if _BARE_VALUE_START.match(value) is None:
        return _clean(value) if _ONE_WORD.fullmatch(value.rstrip(".!")) else None
    words = _WORD.findall(_LATEX_COMMAND.sub(" ", value))
    if len(words) > 2 or _PREDICATE_CUE.search(" ".join(words)):
        return None
    return _clean(value)


def _starts_math(text: str) -> bool:
    return text.startswith(("$", "\\[", "\\("))


def _math_values(rest: str) -> str | None:
    """The math at the start of `rest`; "$6$ or $7$" (math joined by and/or/commas) is one list answer."""
    values: list[str] = []
    position = 0
    while True:
        span = _math_span(rest[position:])
        if span is None:
            break
        values.append(span[0])
        position += span[1]
        # "$6$ or $7$": math joined by and/or/commas in the same sentence is one list answer.
        gap = _LIST_GAP.match(rest, position)
        if gap is None or gap.end() == position or not rest.startswith(("$", "\\[", "\\("), gap.end()):
            break
        position = gap.end()
    if not values or conditioned(rest[position:]):
        return None  # "$7$ if $n$ is even": a conditional value is not stated as the answer
    cleaned = [value for value in (_clean(v) for v in values) if value]
    return ", ".join(dict.fromkeys(cleaned)) or None


def _predicate(sentence: str) -> str | None:
    """What follows the last cue word outside math ("The value of $k$ is 2." gives "2.")."""
    spans = [(match.start(), match.end()) for match in _MATH_SEGMENT.finditer(sentence)]
    last = None
    for cue in _PREDICATE_CUE.finditer(sentence):
        if not any(start <= cue.start() < end for start, end in spans):
            last = cue
    return None if last is None else sentence[last.end() :].strip()


def _predicate_value(predicate: str) -> str | None:
    """The value a last-sentence predicate states: leading math, one number, or a few words ("Evelyn")."""
    if _starts_math(predicate):
        return _math_values(predicate)
    if "$" in predicate or "\\(" in predicate or "\\[" in predicate:
        return None  # "about $12$": the caller takes the last math segment
    plain = _plain_value(predicate)
    numbers = _NUMBER.findall(plain)
    if len(numbers) == 1:
        return _clean(numbers[0])
    if not numbers and _FEW_WORDS.fullmatch(plain.rstrip(".!")):
        return _clean(plain)
    return None


def _last_math(sentence: str) -> str | None:
    segments = [
        next(group for group in match.groups() if group is not None)
        for match in _MATH_SEGMENT.finditer(sentence)
    ]
    return _clean(segments[-1]) if segments else None


def _from_last_sentence(text: str) -> str | None:
    tail = text.rstrip()[-_TAIL_WINDOW:]
    if not tail.endswith((".", "!", "$", "\\]", "\\)", ")", "**")):
        return None  # truncated mid-sentence: no answer was stated
    display = _trailing_display(tail)
    if display is not None:
        return display
    # The last sentence that states something: a closing courtesy without digits or math ("I hope this
    # helps!", "Let me know if you have questions.") states no value and is skipped (at most twice).
    units = [
        piece
        for line in tail.split("\n")
        for piece in re.split(r"(?<=[.!?])\s+(?=[A-Z\\$(])", line.strip())
        if piece.strip()
    ]
    for skipped, sentence in enumerate(reversed(units)):
        wordy = _COURTESY.fullmatch(sentence) is not None and _NUMBER_WORD.search(sentence) is None
        courtesy = wordy and (not _ANSWER_CUE.search(sentence) or _CLOSING_REMARK.match(sentence) is not None)
        if skipped < _MAX_SKIPPED_COURTESIES and courtesy and not _REFUSAL.search(sentence):
            continue
        return _sentence_value(sentence.strip())
    return None


def _trailing_display(tail: str) -> str | None:
    """A completion that ends with display math on its own lines ("\\[\\n x = 5 \\n\\]") states it."""
    line = tail.rsplit("\n", 1)[-1].strip()
    whole = _math_span(line)
    if whole is not None and whole[1] == len(line):
        # A last line that is only math ("$$\\frac34$$", "\\[ x = 5 \\]") states the answer.
        return _clean(whole[0])
    for left, right in (("\\[", "\\]"), ("$$", "$$")):
        if line == right:
            opening = tail.rfind(left, 0, len(tail) - len(right))
            if opening >= 0 and "\n" in tail[opening:]:
                inner = tail[opening + len(left) : len(tail) - len(right)]
                if right not in inner:
                    return _clean(inner)
    return None


def _sentence_value(sentence: str) -> str | None:
    if _REFUSAL.search(sentence) or _PLAN.match(sentence):
        return None  # a refusal, or a plan ("Let's compute $y$ from $x = 5$.") that states no result
    sentence = _digits_for_words(sentence)
    answer_after = _ANSWER_AFTER.search(sentence)
    if answer_after is not None:  # "$x=4$ is the solution."
        value = _value_ending(sentence[: answer_after.start()])
        if value is not None:
            return value
    labelled = _labelled_math(sentence)
    if labelled is not None:
        return labelled
    leading = _LEADING_NUMBER.match(sentence)
    if leading is not None and not any(char.isdigit() or char == "$" for char in sentence[leading.end() :]):
        return _clean(leading.group(1))  # "30% of the marbles are red.": the one value opens the sentence
    if not _ANSWER_CUE.search(sentence):
        # "She ends up with 18 dollars.": a statement without a cue word states its one number; a step of
        # the work ("We factor 196 first.", "Next, divide by 4.") does not.
        stated = not _MATH_SEGMENT.search(sentence) and not _WORK_STEP.match(sentence)
        numbers = _NUMBER.findall(sentence) if stated else []
        return _clean(numbers[0]) if len(numbers) == 1 else None
    predicate = _predicate(sentence)
    if predicate is not None:
        if opens_with_bound(predicate):
            return None  # "Therefore $n$ is at least $7$.": a bound, not a value
        value = _predicate_value(predicate)
        if value is not None:
            return value
    last_math = _last_math(sentence)
    if last_math is not None:
        return last_math
    numbers = _NUMBER.findall(re.sub(r"\$[^$]*\$", " ", sentence))
    return _clean(numbers[0]) if len(numbers) == 1 else None


def extract_answer(completion: str) -> str | None:
    """Extract the final answer of a completion as raw LaTeX, or None when there is no valid answer.

    Args:
        completion: the model's full response text.

    Returns:
        The answer without surrounding `$`/`\\[ \\]` and trailing period; a list answer formed by adjacent
        boxes is joined with ", ". None for an unterminated or empty last box, truncated text or a refusal.

    Example:
        >>> extract_answer("So $x = \\\\boxed{-2}$ or $x = \\\\boxed{5}$.")
        '-2, 5'
    """
    text = _own_turn(completion or "")
    if "```" in text:
        text = _CODE_BLOCK.sub("\n", text)
    if not text.strip():
        return None
    last_marker = None
    for match in _MARKER.finditer(text):
        last_marker = match
    starts = list(_BOX.finditer(text))
    if starts:
        boxed, box_end = _from_boxes(text, starts)
        if last_marker is not None and last_marker.start() >= box_end:
            # Boxed intermediate values, then "The final answer is $X$.": the later statement is the answer.
            stated = _stated_value(text[last_marker.end() : last_marker.end() + _TAIL_WINDOW])
            if stated is not None:
                return stated
        return boxed
    answer_after = None
    for match in _ANSWER_AFTER_IN_TEXT.finditer(text):
        answer_after = match
    if last_marker is not None and (answer_after is None or answer_after.start() < last_marker.start()):
        if second_answer(text[last_marker.end() : last_marker.end() + _QUALIFIER_WINDOW]):
            return None  # "The answer is 7. Alternatively, it could be 8.": a hedge
        return _after_marker(text[last_marker.end() : last_marker.end() + _TAIL_WINDOW])
    if answer_after is not None:
        start = max(text.rfind(stop, 0, answer_after.start()) for stop in (". ", "\n", "! ", "? "))
        value = _value_ending(text[start + 1 : answer_after.start()])
        if value is not None:
            return value
    bare = _bare_value(text)
    return bare if bare is not None else _from_last_sentence(text)


def _own_turn(completion: str) -> str:
    """The model's own turn: a leading role header dropped, cut at its first end- or start-of-turn token."""
    header = _ROLE_HEADER.match(completion)
    text = completion[header.end() :] if header is not None else completion
    end = _TURN_END.search(text)
    return text if end is None else text[: end.start()]


def gold_answer(reference: str) -> str:
    """The gold answer of a reference: GSM8K's worked solution ending in "#### 42" gives "42"; anything
    else (MATH's bare LaTeX) is returned as it is."""
    marker = reference.rfind("####")
    if marker < 0:
        return reference
    return reference[marker + 4 :].strip() or reference
