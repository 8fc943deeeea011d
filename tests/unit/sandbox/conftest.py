"""A real process sandbox (two warm runners) for the sandbox's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox.runners.process import ProcessSandbox
from sandbox.schemas import Limits, Program, TestInput, TestRun
from sandbox.settings import SandboxSettings


@pytest.fixture
async def sandbox() -> AsyncIterator[ProcessSandbox]:
    box = ProcessSandbox(SandboxSettings(slots=2))
    await box.start()
    yield box
    await box.close()


async def run_tests(
    box: ProcessSandbox,
    code: str,
    tests: list[TestInput],
    *,
    mode: str = "stdin",
    fn_name: str | None = None,
    **limits: float,
) -> list[TestRun]:
    program = Program(code=code, mode=mode, fn_name=fn_name)  # type: ignore[arg-type]
    async with box.session(program, Limits(**limits)) as session:  # type: ignore[arg-type]
        return [await session.run(test) for test in tests]


async def run_one(box: ProcessSandbox, code: str, stdin: str = "", **kwargs: object) -> TestRun:
    (run,) = await run_tests(box, code, [TestInput(stdin=stdin)], **kwargs)  # type: ignore[arg-type]
    return run
