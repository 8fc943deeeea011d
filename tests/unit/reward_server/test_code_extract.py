"""Program extraction: last Python fence, bare fences, whole completion, no code at all."""

from __future__ import annotations

import re
import textwrap
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reward_server.code_grading import extract_code
from reward_server.code_grading.extract import PYTHON_TAGS

CASES = [
    # (completion, program or None)
    ("```python\nprint(1)\n```", "print(1)\n"),
    ("```py\nprint(1)\n```", "print(1)\n"),
    ("```Python3\nprint(1)\n```", "print(1)\n"),
    ("```PYTHON\nprint(1)\n```", "print(1)\n"),
    ("``` python\nprint(1)\n```", "print(1)\n"),
    ("```{.python}\nprint(1)\n```", "print(1)\n"),
    ("~~~python\nprint(1)\n~~~", "print(1)\n"),
    ("````python\nx = '```'\nprint(x)\n````", "x = '```'\nprint(x)\n"),
    ("```\nprint(1)\n```", "print(1)\n"),
    # The last Python block wins.
    ("First try:\n```python\nprint(0)\n```\nBetter:\n```python\nprint(1)\n```\nDone.", "print(1)\n"),
    # A bare block of sample output after the code does not replace the tagged code.
    ("```python\nprint(input())\n```\nExample:\n```\n3\n```", "print(input())\n"),
    # Only bare blocks: the last one.
    ("```\nprint(0)\n```\ntext\n```\nprint(1)\n```", "print(1)\n"),
    # An empty last block is skipped.
    ("```python\nprint(1)\n```\n```python\n\n```", "print(1)\n"),
    # No fence at all: the whole completion is the program.
    ("import sys\nprint(sys.stdin.read())\n", "import sys\nprint(sys.stdin.read())\n"),
    ("\n\nprint(2)", "print(2)\n"),
    # A fence left open (completion cut at the token limit) runs to the end.
    ("Here:\n```python\nprint(1)\nprint(2)", "print(1)\nprint(2)\n"),
    # Fences inside a list item: the common indentation goes.
    (
        "1. Code:\n    ```python\n    def f():\n        return 1\n    print(f())\n    ```",
        "def f():\n    return 1\nprint(f())\n",
    ),
    # Windows line endings.
    ("```python\r\nprint(1)\r\nprint(2)\r\n```\r\n", "print(1)\nprint(2)\n"),
    # A form feed or U+2028 inside a line is code, not a line break.
    ("```python\ns = 'a\u2028b'\n```", "s = 'a\u2028b'\n"),
    # A fence line inside a string literal closes the block, as in CommonMark: the program is cut there
    # (and fails to compile: the completion's own runtime_error); a longer fence keeps it whole (above).
    ('```python\ns = """\n```\n"""\nprint(s)\n```', 's = """\n'),
    # A block in another language after the Python one, or a bare block of sample output: not the program.
    ("```python\nprint(1)\n```\n```cpp\nint main() {}\n```\n```\n1\n```", "print(1)\n"),
    # A "solution" that is a harness printing every answer it can guess is extracted as it is: it runs,
    # and fails on the token count (tests/unit/reward_server/test_code_compare.py).
    (
        "```python\nfor guess in ('YES', 'NO'):\n    print(guess)\n```",
        "for guess in ('YES', 'NO'):\n    print(guess)\n",
    ),
]

NO_CODE = [
    "",
    "   \n\t\n",
    "```cpp\nint main() {}\n```",
    "```python\n   \n```",
    "Use C++:\n```c++\nint main() {}\n```\nor Java:\n```java\nclass A {}\n```",
]


@pytest.mark.parametrize(("completion", "program"), CASES)
def test_extracts_the_program(completion: str, program: str) -> None:
    assert extract_code(completion) == program


@pytest.mark.parametrize("completion", NO_CODE)
def test_no_python_code(completion: str) -> None:
    assert extract_code(completion) is None


def test_python_block_wins_over_other_languages() -> None:
    text = "```python\nprint(1)\n```\nIn C++:\n```cpp\nint main() {}\n```"
    assert extract_code(text) == "print(1)\n"


def test_is_linear_on_many_fences() -> None:
    text = "```python\nx = 1\n```\n" * 20_000 + "```\n" * 20_000
    start = time.perf_counter()
    extract_code(text)
    assert time.perf_counter() - start < 2.0


def test_a_forty_megabyte_completion_is_extracted_quickly_and_in_little_memory() -> None:
    # 20 million lines: cut into line objects, they took 340 MB (and seconds) in the server.
    text = "x\n" * (20 * 1024 * 1024) + "```python\nprint(1)\n```\n"
    tracemalloc.start()
    try:
        start = time.perf_counter()
        assert extract_code(text) == "print(1)\n"
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"
    assert elapsed < 10.0
    block = "```python\n" + "    x = 1\n" * (4 * 1024 * 1024) + "```"
    assert extract_code(block) == "x = 1\n" * (4 * 1024 * 1024)


@pytest.mark.parametrize(
    "completion",
    [
        # A fence line of blanks that ends in a backtick was cubic: 2 KB took 20 s (in the server's thread).
        "```" + " \t" * 50_000 + "`",
        " " * 50_000 + "~~~" + " " * 50_000 + "`\nprint(1)",
        ("```" + " " * 40 + "`\n") * 20_000,
    ],
)
def test_blank_fence_lines_are_read_quickly(completion: str) -> None:
    start = time.perf_counter()
    extract_code(completion)
    assert time.perf_counter() - start < 5.0


def _line_by_line(completion: str) -> str | None:
    """The rule as first written, one line at a time: the oracle of the fast implementation."""
    opening_re = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
    blocks: list[tuple[str, str]] = []
    lines = [line.removesuffix("\r") for line in completion.split("\n")]
    index = 0
    while index < len(lines):
        opening = opening_re.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        while index < len(lines) and not closing.match(lines[index]):
            body.append(lines[index])
            index += 1
        index += 1
        info = opening["info"].split()
        tag = info[0].lower().strip(".{}") if info else ""
        blocks.append((tag, textwrap.dedent("\n".join(body)).strip("\n")))
    if not blocks:
        code = completion.strip("\n")
        return code + "\n" if code.strip() else None
    for wanted in (PYTHON_TAGS, {""}):
        for tag, text in reversed(blocks):
            if tag in wanted and text.strip():
                return text + "\n"
    return None


PIECES = [
    "```",
    "````",
    "~~~",
    "python",
    "py",
    " ",
    "  ",
    "\t",
    "\r",
    "\n",
    "x",
    "{.py}",
    "\u2028",
    "\f",
    "`",
]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_same_program_as_the_line_by_line_rule(completion: str) -> None:
    assert extract_code(completion) == _line_by_line(completion)
