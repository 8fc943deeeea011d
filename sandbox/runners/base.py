"""The interface every sandbox backend implements.

    sandbox = ProcessSandbox(settings)          # or DockerSandbox(settings)
    await sandbox.start()                        # logs which isolation is active
    async with sandbox.session(program, limits) as session:
        for test in tests:
            run = await session.run(test)        # one TestRun; the caller compares and may stop early
    await sandbox.close()

A session holds one program in a fresh, private runner (its own temp dir and memory): nothing of one
session is visible to another, and nothing it started outlives it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sandbox.schemas import Limits, Program, TestInput, TestRun


class Session(Protocol):
    async def run(self, test: TestInput) -> TestRun:
        """Run one test under the session's limits. Raises SandboxError only for infrastructure failures."""
        ...


class Sandbox(Protocol):
    name: str

    @property
    def isolation(self) -> str:
        """Human-readable description of the isolation in force (namespaces, rlimits, container options)."""
        ...

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def session(self, program: Program, limits: Limits) -> AbstractAsyncContextManager[Session]: ...
