"""Every repository path that docs/architecture.md cites (in backticks) exists.

A path is a backticked word whose first part is a top-level entry of the repository (`reward_server/...`,
`docs/...`, `pyproject.toml`); `*` in it is a glob that must match something. Redis keys, routes and
function names are not paths and are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "docs" / "architecture.md"]
TOP_LEVEL = {entry.name for entry in REPO.iterdir() if not entry.name.startswith(".")} | {".ci"}
TICKED = re.compile(r"`([^`\s]+)`")


def cited_paths(text: str) -> list[str]:
    paths = []
    for word in TICKED.findall(text):
        first = word.split("/", 1)[0]
        if first in TOP_LEVEL and re.fullmatch(r"[\w.*/-]+", word):
            paths.append(word)
    return paths


def test_the_parser_finds_paths_and_skips_the_rest() -> None:
    text = "`reward_server/grading.py`, `iarl:jobs`, `/v1/grade`, `judge()`, `pyproject.toml`, `a b`"
    assert cited_paths(text) == ["reward_server/grading.py", "pyproject.toml"]


def exists(path: str) -> bool:
    return any(REPO.glob(path)) if "*" in path else (REPO / path).exists()


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_cited_path_exists(doc: Path) -> None:
    paths = cited_paths(doc.read_text())
    assert len(paths) > 20, "the parser found too few paths: has the document's style changed?"
    missing = [path for path in paths if not exists(path)]
    assert not missing, f"{doc.name} cites paths that do not exist: {missing}"
