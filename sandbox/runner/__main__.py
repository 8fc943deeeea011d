"""The runner's entry point: `python3 -I -S -B path/to/runner` (this folder) or `-m sandbox.runner`."""

from __future__ import annotations

import importlib
import os
import sys

# Every module of the package, imported before the runner enters its namespaces or drops its privileges:
# after that the folder is no longer there (the new root holds only the Python installation and the exposed
# paths) or readable (tests run under another uid), so a module imported later would fail in the sandbox.
MODULES = ("protocol", "linux", "cgroup", "isolation", "outcome", "harness", "session", "zygote")


def _package() -> str:
    """This package's import name; run as a folder, it is made importable first."""
    if __package__:
        return __package__  # -m sandbox.runner
    # `python path/to/runner` runs this file as a script, with the folder itself as sys.path[0]: put its
    # parent there instead (as it was for the single-file runner), so that the folder imports as a package
    # and its modules import one another relatively.
    folder = os.path.dirname(os.path.abspath(__file__))
    sys.path[0] = os.path.dirname(folder)
    return os.path.basename(folder)


def main() -> None:
    package = _package()
    modules = {name: importlib.import_module(f"{package}.{name}") for name in MODULES}
    modules["zygote"].runner_main()


if __name__ == "__main__":
    main()
