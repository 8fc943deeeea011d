"""The runner package as it is shipped: standard library only, every module imported up front, one hash."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.runner import __main__ as entry
from sandbox.runner import protocol
from sandbox.runners import docker

RUNNER_DIR = Path(protocol.__file__).parent
MODULE_FILES = sorted(RUNNER_DIR.glob("*.py"))
REPO = Path(__file__).resolve().parents[3]


def imported_names(path: Path) -> list[str]:
    """The top-level names of the absolute imports of a module (relative ones stay inside the package)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append((node.module or "").split(".")[0])
    return names


@pytest.mark.parametrize("path", MODULE_FILES, ids=lambda path: path.name)
def test_each_module_imports_the_standard_library_only(path: Path) -> None:
    # It runs inside the sandbox, where nothing but the interpreter's own library is installed.
    foreign = [name for name in imported_names(path) if name not in sys.stdlib_module_names]
    assert foreign == [], f"{path.name} imports {foreign}"


def test_the_entry_point_imports_every_module() -> None:
    # Inside the sandbox the folder is gone once isolation starts: a module left out would fail to import.
    modules = {path.stem for path in MODULE_FILES} - {"__init__", "__main__"}
    assert sorted(entry.MODULES) == sorted(modules)


def test_a_copy_of_the_folder_runs_alone(tmp_path: Path) -> None:
    # As shipped: a copy anywhere, run with -I -S (no site-packages, no project): no hello, so it exits 0.
    copy = tmp_path / "runner"
    copy.mkdir()
    for path in MODULE_FILES:
        (copy / path.name).write_bytes(path.read_bytes())
    command = [sys.executable, "-I", "-S", "-B", str(copy)]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, b"")


def test_the_image_label_hashes_what_the_backend_hashes() -> None:
    # services/build_sandbox_image.sh labels the image with this hash; the Docker backend compares it.
    script = (REPO / "services" / "build_sandbox_image.sh").read_text()
    match = re.search(r"^runner_sha256=\$\((.*)\)$", script, re.MULTILINE)
    assert match is not None, "build_sandbox_image.sh no longer sets runner_sha256"
    done = subprocess.run(
        ["bash", "-c", match.group(1)], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == docker._runner_sha256()
