"""The runner's entry point: `python3 -I -S -B path/to/runner` (this folder), or `-m sandbox.runner`."""

from __future__ import annotations

import importlib
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

# Every module of the package, imported before the runner enters its namespaces or drops its privileges:
# after that the folder is no longer there (the new root holds only the Python installation and the exposed
# paths) or readable (tests run under another uid), so a module imported later would fail in the sandbox.
MODULES = ("protocol", "linux", "cgroup", "isolation", "outcome", "harness", "session", "zygote")


def import_all() -> dict[str, ModuleType]:
    """Every module of MODULES, by name."""
    if __package__:  # -m sandbox.runner
        return {name: importlib.import_module(f"{__package__}.{name}") for name in MODULES}
    # `python path/to/runner` runs this file as a script, with the folder itself first on sys.path. The
    # folder is imported as a package from its parent instead (so that its modules import one another
    # relatively); then neither stays on sys.path, as for any script run with -I: a solution imports
    # nothing from beside the runner.
    folder = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [os.path.dirname(folder), *(path for path in sys.path if path != folder)]
    try:
        package = os.path.basename(folder)
        return {name: importlib.import_module(f"{package}.{name}") for name in MODULES}
    finally:
        del sys.path[0]


def main() -> None:
    import_all()["zygote"].runner_main()


if __name__ == "__main__":
    main()
