"""The reward server's layers import downwards only: the verdict type, then the code executors, then the job
queue, then the backends.

    reward_server.verdict          Verdict: what every layer below the API speaks
    reward_server.code_execution   ProgramExecutor, LocalExecutor (a sandbox in this process)
    reward_server.queue            QueueExecutor (server side) and the worker that hosts a LocalExecutor
    reward_server.backends         the `code` backend picks an executor: local or the queue

Every import counts, the lazy ones inside functions and those under `TYPE_CHECKING` too, as does
`importlib.import_module("...")` with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# Bottom to top; a layer never imports one above it.
LAYERS = (
    "reward_server.verdict",
    "reward_server.code_execution",
    "reward_server.queue",
    "reward_server.backends",
)
ABOVE = {layer: LAYERS[index + 1 :] for index, layer in enumerate(LAYERS[:-1])}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module that `source` (the module `module`) imports, wherever in the file the import is."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def layer_files(layer: str) -> list[Path]:
    path = REPO.joinpath(*layer.split("."))
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(), module_name(path), path.name == "__init__.py")


def within(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def test_the_scan_sees_lazy_relative_and_dynamic_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from reward_server.backends.base import Memo\n"
        "def f():\n    import reward_server.queue.client\n    from ..backends import registry\n"
        "    importlib.import_module('reward_server.backends.math_sympy')\n"
    )
    found = imported_modules(source, "reward_server.queue.worker")
    assert {
        "reward_server.backends.base",
        "reward_server.queue.client",
        "reward_server.backends.registry",
        "reward_server.backends.math_sympy",
    } <= found


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_a_layer_never_imports_the_layers_above_it(layer: str) -> None:
    files = layer_files(layer)
    assert files and all(path.exists() for path in files)
    upward = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in files
        for name in sorted(imports_of(path))
        if any(within(name, above) for above in ABOVE[layer])
    ]
    assert upward == []


def test_the_backends_reach_the_queue_only_to_choose_the_code_executor() -> None:
    """backends -> queue is one lazy import in `code_sandbox.build_executor`; queue -> backends is none
    (the test above), so the two packages no longer import each other."""
    reaching = {
        str(path.relative_to(REPO))
        for path in layer_files("reward_server.backends")
        if any(within(name, "reward_server.queue") for name in imports_of(path))
    }
    assert reaching == {"reward_server/backends/code_sandbox.py"}
