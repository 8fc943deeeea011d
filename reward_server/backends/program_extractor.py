"""Take the programs out of a group's completions without holding up the event loop.

`extract_code` is a few regex scans of the completion, and each scan is one C call that holds the GIL from
start to end (about 1 s for a 40 MB completion of short lines), which a thread cannot hide from the event
loop. So a completion over `INLINE_MAX_CHARS` is extracted in a worker process (started on first use),
under a deadline; shorter ones in a thread, where a scan takes milliseconds.

A completion whose extraction fails is graded by that alone: `no_answer` with a detail (it ran past the
deadline, or raised, e.g. MemoryError under the worker's address-space limit). Only a dead worker is an
`error` (the infrastructure's failure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from reward_server.backends.base import Verdict
from reward_server.code_grading import extract_code
from reward_server.deadline_pool import DeadlinePool, JobFailed, JobTimeout, WorkerCrashed
from reward_server.schemas import Status

INLINE_MAX_CHARS = 1024 * 1024
DEADLINE_S = 30.0  # a 64 MB completion takes about 2 s
NO_CODE = Verdict(Status.NO_ANSWER, detail="no Python code found")


class ProgramExtractor:
    def __init__(self) -> None:
        self.pool = DeadlinePool(1, preload=["reward_server.code_grading.extract"], memory_limit_mb=2048)
        self._started = False
        self._starting = asyncio.Lock()

    async def close(self) -> None:
        if self._started:
            self._started = False
            await self.pool.close()

    async def programs(self, completions: Sequence[str]) -> list[str | Verdict]:
        """The program of each completion, or its verdict when it has none (or its extraction failed)."""
        found: list[str | Verdict] = [NO_CODE] * len(completions)
        short = [index for index, text in enumerate(completions) if len(text) <= INLINE_MAX_CHARS]
        codes = await asyncio.to_thread(lambda: [extract_code(completions[index]) for index in short])
        for index, code in zip(short, codes, strict=True):
            found[index] = NO_CODE if code is None else code
        long = [index for index, text in enumerate(completions) if len(text) > INLINE_MAX_CHARS]
        for index, program in zip(
            long, await asyncio.gather(*(self._in_worker(completions[i]) for i in long)), strict=True
        ):
            found[index] = program
        return found

    async def _in_worker(self, completion: str) -> str | Verdict:
        async with self._starting:
            if not self._started:
                await self.pool.start()
                self._started = True
        try:
            code = await self.pool.run(extract_code, completion, timeout_s=DEADLINE_S)
        except JobTimeout as exc:
            return Verdict(Status.NO_ANSWER, detail=f"program extraction deadline: {exc}")
        except JobFailed as exc:  # the completion made it raise (e.g. MemoryError): nothing extractable
            return Verdict(Status.NO_ANSWER, detail=f"program extraction failed: {exc}"[:300])
        except WorkerCrashed as exc:
            return Verdict(Status.ERROR, detail=f"program extraction failed: {exc}")
        return NO_CODE if code is None else code
