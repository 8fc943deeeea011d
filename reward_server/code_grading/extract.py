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
import textwrap
from dataclasses import dataclass

PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})
_OPENING = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")


@dataclass(frozen=True)
class _Block:
    tag: str  # first word of the info string, lowercased; "" for a bare fence
    body: str


def _fenced_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    lines = [line.removesuffix("\r") for line in text.split("\n")]  # not splitlines(): \f, \u2028 are code
    index = 0
    while index < len(lines):
        opening = _OPENING.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        while index < len(lines) and not closing.match(lines[index]):
            body.append(lines[index])
            index += 1
        index += 1  # skip the closing fence (or step past the end)
        info = opening["info"].split()
        tag = info[0].lower().strip(".{}") if info else ""
        blocks.append(_Block(tag, textwrap.dedent("\n".join(body)).strip("\n")))
    return blocks


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
