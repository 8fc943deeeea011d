"""Rules versions: editing one byte of a rule changes a backend's version (so its cache keys); the same source
gives the same version wherever it is installed; an unreadable module never stops a server."""

from __future__ import annotations

import logging
import re
import shutil
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sympy

import reward_server.math_grading
from reward_server.backends.code_sandbox import code_rules_version
from reward_server.backends.math_sympy import MathBackend
from reward_server.backends.rules_version import rules_version
from reward_server.cache import MemoryCache, cache_key
from reward_server.code_grading import LimitPolicy, normalize_reference
from reward_server.settings import RewardSettings

MATH_GRADING = Path(reward_server.math_grading.__file__).parent
VERSION = re.compile(r"^0\.1\.0\+rules\.[0-9a-f]{8}$")

CopyPackage = Callable[..., str]


@pytest.fixture
def copy_math_grading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CopyPackage]:
    """Copies of reward_server/math_grading/ as top-level packages of fresh names, importable from tmp_path.

    `edit(source) -> source` changes the bytes of `normalize.py` in the copy; `zipped` puts the copy in a zip
    archive on sys.path (as an installed package may be), instead of a directory.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def copy(edit: Callable[[bytes], bytes] | None = None, zipped: bool = False) -> str:
        name = f"rules_copy_{uuid.uuid4().hex[:12]}"  # fresh: versions are cached per module name
        target = tmp_path / name
        shutil.copytree(MATH_GRADING, target, ignore=shutil.ignore_patterns("__pycache__"))
        if edit is not None:
            rule = target / "normalize.py"
            rule.write_bytes(edit(rule.read_bytes()))
        if zipped:
            archive = tmp_path / f"{name}.zip"
            with zipfile.ZipFile(archive, "w") as zipped_file:
                for path in sorted(target.rglob("*.py")):
                    zipped_file.write(path, path.relative_to(tmp_path).as_posix())
            shutil.rmtree(target)
            monkeypatch.syspath_prepend(str(archive))
        names.append(name)
        return name

    yield copy
    for module in [m for m in sys.modules if m.split(".")[0] in names]:
        del sys.modules[module]


def one_byte_changed(source: bytes) -> bytes:
    """The first digit of the file turned into another digit: one byte, as a constant of a rule may change."""
    index = re.search(rb"[0-9]", source)
    assert index is not None
    at = index.start()
    return source[:at] + (b"1" if source[at : at + 1] != b"1" else b"2") + source[at + 1 :]


def test_the_version_is_the_human_version_plus_a_hash_of_the_rules() -> None:
    version = rules_version("0.1.0", ["reward_server.math_grading", "reward_server.backends.math_sympy"])
    assert VERSION.match(version), version


def test_the_same_source_gives_the_same_version_wherever_it_is_installed(
    copy_math_grading: CopyPackage,
) -> None:
    original = rules_version("0.1.0", [reward_server.math_grading])
    assert rules_version("0.1.0", ["reward_server.math_grading"]) == original  # a module or its name
    assert rules_version("0.1.0", [copy_math_grading()]) == original  # another directory
    assert rules_version("0.1.0", [copy_math_grading(zipped=True)]) == original  # a zip archive


def test_editing_one_byte_of_a_rule_changes_the_version_and_so_the_cache_key(
    copy_math_grading: CopyPackage,
) -> None:
    before = rules_version("0.1.0", [copy_math_grading()])
    after = rules_version("0.1.0", [copy_math_grading(edit=one_byte_changed)])
    assert VERSION.match(after) and after != before
    old_key = cache_key("math", before, "reference hash", "completion hash")
    new_key = cache_key("math", after, "reference hash", "completion hash")
    assert old_key != new_key


async def test_a_verdict_cached_under_old_rules_is_not_found_under_new_ones(
    copy_math_grading: CopyPackage,
) -> None:
    cache = MemoryCache(10)
    old = rules_version("0.1.0", [copy_math_grading()])
    await cache.set_many({cache_key("math", old, "ref", "text"): {"status": "correct"}})
    new = rules_version("0.1.0", [copy_math_grading(edit=lambda source: source + b"\n# a new rule\n")])
    assert await cache.get_many([cache_key("math", new, "ref", "text")]) == [None]
    assert await cache.get_many([cache_key("math", old, "ref", "text")]) == [{"status": "correct"}]


def test_conventions_are_part_of_the_version_in_any_order() -> None:
    modules = ["reward_server.code_grading"]
    first = rules_version("0.1.0", modules, {"a": 1, "b": "x"})
    assert rules_version("0.1.0", modules, {"b": "x", "a": 1}) == first
    assert rules_version("0.1.0", modules, {"a": 2, "b": "x"}) != first
    assert rules_version("0.2.0", modules, {"a": 1, "b": "x"}).removeprefix("0.2.0") == first.removeprefix(
        "0.1.0"
    )


def test_a_module_it_cannot_read_counts_by_name_and_is_logged(
    copy_math_grading: CopyPackage, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="reward_server.backends.rules_version"):
        # `sys` has no source file; the other modules still count.
        before = rules_version("0.1.0", ["sys", "no_such_module_here", copy_math_grading()])
        after = rules_version(
            "0.1.0", ["sys", "no_such_module_here", copy_math_grading(edit=one_byte_changed)]
        )
    assert VERSION.match(before) and before != after
    messages = [record.getMessage() for record in caplog.records]
    assert any("cannot read the source of sys" in message for message in messages), messages
    assert any("no_such_module_here" in message for message in messages), messages


def test_math_version_follows_its_rules_its_timeout_conventions_and_sympy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = MathBackend(RewardSettings(math_workers=1))
    assert VERSION.match(base.version), base.version
    assert MathBackend(RewardSettings(math_workers=2)).version == base.version  # not a rule
    assert MathBackend(RewardSettings(math_workers=1, math_timeout_status="error")).version != base.version
    assert MathBackend(RewardSettings(math_workers=1, math_timeout_s=9.0)).version != base.version
    monkeypatch.setattr(sympy, "__version__", "1.99")
    assert MathBackend(RewardSettings(math_workers=1)).version != base.version


def test_code_version_counts_what_the_cache_key_does_not() -> None:
    base = RewardSettings()
    version = code_rules_version(base)
    assert VERSION.match(version), version
    assert code_rules_version(RewardSettings(code_stop_on_first_failure=False)) != version
    # A limit policy changes the normalized reference, which the cache key holds already: not counted twice.
    slower = RewardSettings(code_time_limit_factor=2.0)
    assert code_rules_version(slower) == version
    reference = {"tests": [{"input": "1\n", "output": "1\n"}], "time_limit_s": 1}
    default, scaled = (
        normalize_reference(reference, LimitPolicy.from_settings(s), {}) for s in (base, slower)
    )
    assert default.model_dump_json() != scaled.model_dump_json()
