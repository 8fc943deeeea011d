"""What a code executor is: the interface between the `code` backend and whatever runs its programs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from reward_server.code_grading import CodeProblem
from reward_server.verdict import Verdict


class ProgramExecutor(Protocol):
    """Runs the programs of one group against a problem's tests: locally or through the job queue."""

    @property
    def description(self) -> str: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool: ...

    async def run_all(self, problem: CodeProblem, codes: Sequence[str]) -> list[Verdict]:
        """One verdict per program, in order; `error` (never `incorrect`) when the infrastructure fails."""
        ...
