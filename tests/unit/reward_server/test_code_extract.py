"""Program extraction: last Python fence, bare fences, whole completion, no code at all."""

from __future__ import annotations

import time

import pytest

from reward_server.code_grading import extract_code

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
