"""Take the Python program out of a model completion.

Rule (in this order):

1. Fenced blocks are found line by line (CommonMark style: a line of three or more backticks or tildes opens a
   block, a line of at least as many of the same character closes it; a block left open at the end of the
   completion, as in a completion cut off at the token limit, runs to the end). Any indentation of the
   fence is allowed, and the block's common indentation is removed (fences inside list items).
2. The last non-empty block tagged Python (`python`, `py`, `python3`, `py3`, any case, e.g. ```Python3)
   is the program.
3. Else the last non-empty bare block (no language tag). Tagged blocks win over bare ones because models
   often end with a bare block of sample input or output after the code.
4. Else, if the completion has no fenced block at all, the whole completion is the program.
5. Else (only blocks in other languages, e.g. ```cpp) or when nothing but whitespace is left: no program.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})
# Lines are split on "\n" only (not \f or \u2028: those are code) and lose one trailing "\r". The
# patterns find fence lines in the whole text (MULTILINE `^`/`$` are "\n" boundaries), so a 40 MB
# completion is never cut into millions of line objects (seconds and gigabytes in the server).
# The info string keeps its surrounding blanks (`split()` drops them): trimming them in the pattern, with a
# lazy info between two `[ \t]*`, was cubic on a fence line of blanks that ends in a backtick (a 2 KB
# completion took 20 s, holding the GIL).
_OPENING = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$", re.MULTILINE)
_BLANK_LINE = re.compile(r"^[ \t]+$", re.MULTILINE)
_INDENT = re.compile(r"^([ \t]*)[^ \t\n]", re.MULTILINE)


@dataclass(frozen=True)
class _Block:
    tag: str  # first word of the info string, lowercased; "" for a bare fence
    body: str


def _closing(fence: str) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*\r?$", re.MULTILINE)


def _fenced_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    position = 0
    while (opening := _OPENING.search(text, position)) is not None:
        body_start = opening.end() + 1  # past the opening line's "\n"
        closing = _closing(opening["fence"]).search(text, body_start)
        if closing is None:  # left open: the block runs to the end
            body, position = text[body_start:].removesuffix("\r"), len(text) + 1
        else:
            body, position = text[body_start : closing.start()], closing.end() + 1
        info = opening["info"].split()
        tag = info[0].lower().strip(".{}") if info else ""
        blocks.append(_Block(tag, _dedent(body.replace("\r\n", "\n")).strip("\n")))
    return blocks


def _dedent(text: str) -> str:
    """`textwrap.dedent`, without its list of every line's indentation (a 40 MB block has 20 million)."""
    text = _BLANK_LINE.sub("", text)
    margin: str | None = None
    for match in _INDENT.finditer(text):
        indent = match.group(1)
        if margin is None or not indent.startswith(margin):
            margin = indent if margin is None else _common_prefix(margin, indent)
        if not margin:
            return text  # an unindented line: nothing to remove (usually the first line)
    return re.sub(rf"(?m)^{margin}", "", text) if margin else text


def _common_prefix(first: str, second: str) -> str:
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            return first[:index]
    return first if len(first) <= len(second) else second


def extract_code(completion: str) -> str | None:
    """Return the Python program of `completion`, or None when it holds no Python code.

    Args:
        completion: the model's text.

    Returns:
        The source to run (ending with a newline), or None.

    Example:
        >>> extract_code("Idea...\\n```python\\nprint(1)\\n```\\nSample:\\n```\\n1\\n```")
        'print(1)\\n'
    """
    blocks = _fenced_blocks(completion)
    if not blocks:
        code = completion.strip("\n")
        return code + "\n" if code.strip() else None
    for wanted in (PYTHON_TAGS, {""}):
        for block in reversed(blocks):
            if block.tag in wanted and block.body.strip():
                return block.body + "\n"
    return None
