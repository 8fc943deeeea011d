"""Final-answer extraction from a completion (CONVENTIONS §1-§3).

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
_MAX_GAP = 80
# A "Final Answer" heading on its own line ("**Final Answer**\n\n12", "### Final Answer\n12") marks one too.
_MARKER = re.compile(r"final answer is|answer\s*\**\s*:|answer is|final answer[ \t*#]*(?=\n)", re.IGNORECASE)
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
# A closing sentence without digits, math or an answer cue states no value ("I hope this helps!").
_COURTESY = re.compile(r"[^\d$\\]*", re.ASCII)
_MAX_SKIPPED_COURTESIES = 2
# A word answer stated in prose: at most three words, or a choice label ("Evelyn", "even", "**(C)**").
_FEW_WORDS = re.compile(r"[\s*]*\(?[A-Za-z][A-Za-z'-]*\)?(?:\s+[A-Za-z][A-Za-z'-]*){0,2}[\s*]*", re.ASCII)
# "$6$ or $7$", "$12$, or possibly $13$": a hedge word between the values does not end the list.
_LIST_GAP = re.compile(
    r"\s*(?:,\s*(?=or\b|and\b))?(?:,|and|or|\\text\{\s*(?:and|or)\s*\})\s*"
    r"(?:(?:maybe|perhaps|possibly|probably|even|also|alternatively)\s+)?(?:[A-Za-z]\s*=\s*)?",
    re.ASCII,
)


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


def _from_boxes(text: str, starts: list[re.Match[str]]) -> str | None:
    top: list[tuple[int, int, str | None]] = []
    for box in _boxes(text, starts):
        # A box nested in a complete box belongs to it (`\boxed{\boxed{3}}`).
        if top and top[-1][2] is not None and box[0] < top[-1][1]:
            continue
        top.append(box)
    last = top[-1]
    if last[2] is None:
        return None
    contents = [last[2]]
    index = len(top) - 1
    while index > 0:
        previous = top[index - 1]
        gap = text[previous[1] : top[index][0]]
        joined = len(gap) <= _MAX_GAP and _BOX_GAP.fullmatch(gap) is not None
        if previous[2] is None or not joined or _JOINER.search(gap) is None:
            break
        contents.append(previous[2])
        index -= 1
    contents.reverse()
    if len(contents) > 1:
        # "x = \boxed{2} and y = \boxed{3}": boxes that name different variables keep their names, so
        # that the pair can be read as the point (2, 3); "x = \boxed{-2} or x = \boxed{5}" is a plain list.
        names = [_assigned_name(text, box[0]) for box in top[index:]]
        if all(names) and len(set(names)) == len(names):
            contents = [f"{name} = {content}" for name, content in zip(names, contents, strict=True)]
    unique = list(dict.fromkeys(contents))
    # Boxes joined in the final sentence form one list answer; different values there are a hedge,
    # and returning them as a list makes them fail against a single-valued gold.
    return _clean(", ".join(unique))


def _assigned_name(text: str, box_start: int) -> str | None:
    """The variable assigned right before a box ("y = \\boxed{3}" gives "y"), or None."""
    match = _ASSIGNED_NAME.search(text[max(0, box_start - 40) : box_start])
    return match.group(1) if match is not None else None


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
    if _starts_math(rest):
        return _math_values(rest)
    plain = _plain_value(rest[:_TAIL_WINDOW])
    if _PROSE.match(plain):
        # "Answer: There are 12 ways." states its value like a last sentence does.
        predicate = _predicate(plain)
        value = _predicate_value(predicate) if predicate is not None else None
        if value is None:
            value = _last_math(plain)
        if value is not None:
            return value
    return _clean(plain)


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
    if not values:
        return None
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
        courtesy = _COURTESY.fullmatch(sentence) is not None and not _ANSWER_CUE.search(sentence)
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
    if _REFUSAL.search(sentence) or not _ANSWER_CUE.search(sentence):
        return None
    predicate = _predicate(sentence)
    if predicate is not None:
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
    if not completion or not completion.strip():
        return None
    starts = list(_BOX.finditer(completion))
    if starts:
        return _from_boxes(completion, starts)
    last_marker = None
    for match in _MARKER.finditer(completion):
        last_marker = match
    if last_marker is not None:
        return _after_marker(completion[last_marker.end() : last_marker.end() + _TAIL_WINDOW])
    return _from_last_sentence(completion)
