"""Errors of the sandbox: infrastructure failures only.

    SandboxError             the sandbox itself failed (never a verdict on the program)
    ├── SandboxUnavailable   no runner could be started or reached
    └── SandboxCrashed       a runner died or answered nonsense mid-run

What a program does (crash, loop, exhaust memory) is a `TestRun.outcome`, never an exception.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class: our infrastructure failed; the caller must report status `error`, not a wrong answer."""


class SandboxUnavailable(SandboxError):
    pass


class SandboxCrashed(SandboxError):
    pass
