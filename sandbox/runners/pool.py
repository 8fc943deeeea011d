"""The pool of warm slots that both backends share: one runner per slot, one session per slot at a time.

    pool = SlotPool(factory, size=4, acquire_timeout_s=None, protocol_margin_s=5.0)
    await pool.start()                     # factory.open_host(), then every slot's runner, in parallel
    async with pool.session(program, limits) as session:   # waits for a free slot
        run = await session.run(test)
    await pool.close()                     # every slot, then factory.close_host()

What differs between the backends is the slot (`Slot`: how its runner starts, is fitted to a session's
limits, is spoken to and is disposed of) and what its slots share on the host (`SlotFactory`): the process
backend's slot is a runner subprocess under a uid block and cgroups of its own (sandbox.runners.process),
the Docker backend's a container behind an attached socket (sandbox.runners.docker). The pool owns the rest
of the lifecycle:

- a healthy slot goes back to the pool after its session: its runner sweeps what the session left (and
  keeps the next session's process ready ahead of time, the `spare_session` setting);
- a slot that broke (its runner died, hung past a deadline, answered nonsense, or could not be fitted to
  the session's limits) is disposed of, never reused, and a fresh one starts in its place in the
  background; a failed start is retried with exponential back-off (tenacity), cut short by `close()`;
  `replacements` counts the slots replaced;
- a broken slot found in the queue (one that died while idle) is replaced the same way and skipped, and a
  session whose runner crashed before it ran anything is opened again on another slot, up to
  `open_attempts` slots in all;
- `ready` is False once the pool is closed or every slot is broken with none being replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from sandbox.errors import SandboxCrashed, SandboxError, SandboxUnavailable
from sandbox.runners.session import RunnerChannel, RunnerSession
from sandbox.schemas import Limits, Program

logger = logging.getLogger(__name__)

START_ATTEMPTS = 5  # starts of a replacement before its slot is given up
FIRST_BACKOFF_S = 0.5  # the pause after its first failed start; it doubles after each


class Slot(RunnerChannel, Protocol):
    """One slot of a pool: a runner, and how to talk to it (`request`, from RunnerChannel)."""

    index: int
    ready: dict[str, Any]  # the runner's reply to "hello" (its account of the isolation in force)

    async def start(self) -> None:
        """Start the runner and greet it; SandboxError, with nothing left behind, if it cannot start."""
        ...

    async def prepare(self, limits: Limits) -> None:
        """Fit the slot to a session's limits (its memory); SandboxCrashed, and broken, if it cannot."""
        ...

    async def discard(self) -> None:
        """Kill the runner at once; it is gone when this returns."""
        ...

    async def stop(self) -> None:
        """End the runner when the pool closes (gently where it can), then as `discard`."""
        ...


S = TypeVar("S", bound=Slot)
S_co = TypeVar("S_co", bound=Slot, covariant=True)


class SlotFactory(Protocol[S_co]):
    """A backend's side of the pool: its slots, and what they share on the host."""

    @property
    def slot_noun(self) -> str:
        """What a slot is called in messages: "runner", "container"."""
        ...

    async def open_host(self) -> None:
        """Take what the slots share (uids and cgroups, a Docker client) before the first starts; on
        failure it raises SandboxError, having released what it took."""
        ...

    def new_slot(self, index: int) -> S_co:
        """A fresh slot, not started yet, for position `index` of the pool."""
        ...

    def note_isolation(self, ready: dict[str, Any]) -> None:
        """The pool is up: `ready` is its first runner's account of the isolation (logged by the backend)."""
        ...

    async def close_host(self) -> None:
        """Release what `open_host` took, after the slots are gone (also when the pool never started)."""
        ...


class SlotPool(Generic[S]):
    """Warm slots of one kind, lent to one session at a time (see the module docstring).

    Args:
        factory: makes the slots and holds what they share on the host.
        size: slots kept warm (sessions at once).
        acquire_timeout_s: longest wait for a free slot (SandboxUnavailable after it); None: wait.
        protocol_margin_s: time a runner gets beyond a test's wall limit before it counts as hung.
        open_attempts: slots a session may try when its runner crashes before anything ran.
        close_grace_s: how long `close()` lets replacements in flight finish before cancelling them (a
            start that cannot be cancelled cleanly, such as a container's, wants some).
        first_backoff_s: the pause after a replacement's first failed start (then doubled each time).
    """

    def __init__(
        self,
        factory: SlotFactory[S],
        size: int,
        *,
        acquire_timeout_s: float | None,
        protocol_margin_s: float,
        open_attempts: int = 1,
        close_grace_s: float = 0.0,
        first_backoff_s: float = FIRST_BACKOFF_S,
    ) -> None:
        self.factory = factory
        self.size = size
        self.replacements = 0  # slots replaced since start (a broken slot is never reused)
        self._acquire_timeout_s = acquire_timeout_s
        self._margin_s = protocol_margin_s
        self._open_attempts = open_attempts
        self._close_grace_s = close_grace_s
        self._first_backoff_s = first_backoff_s
        self._slots: list[S] = []
        self._free: asyncio.Queue[S] | None = None
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._closing = asyncio.Event()  # cuts a replacement's back-off short
        self._tasks: set[asyncio.Task[None]] = set()  # replacements in flight

    @property
    def slots(self) -> list[S]:
        """The current slot of each position (a replaced one is swapped for its successor)."""
        return list(self._slots)

    @property
    def ready(self) -> bool:
        return self._started and not self._closed and any(not slot.broken for slot in self._slots)

    async def start(self) -> None:
        """Start every slot (once; later calls return at once). SandboxUnavailable if any fails."""
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise SandboxUnavailable("the sandbox is closed")
            await self.factory.open_host()
            slots = [self.factory.new_slot(i) for i in range(self.size)]
            try:
                results = await asyncio.gather(*(s.start() for s in slots), return_exceptions=True)
            except BaseException:  # cancelled: none of them may outlive this
                await self._discard_all(slots)
                raise
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                await self._discard_all(slots)
                noun = self.factory.slot_noun
                raise SandboxUnavailable(f"{len(failures)} of {len(slots)} {noun}s failed: {failures[0]}")
            self._slots = slots
            self._free = asyncio.Queue()
            for slot in slots:
                self._free.put_nowait(slot)
            self.factory.note_isolation(slots[0].ready)
            self._started = True

    async def _discard_all(self, slots: list[S]) -> None:
        await asyncio.gather(*(s.discard() for s in slots), return_exceptions=True)
        await self.factory.close_host()

    async def close(self) -> None:
        """Stop every slot and release the host's share; the pool refuses sessions from now on."""
        self._closed = True
        self._closing.set()
        # Replacements in flight see `_closed` and stop on their own (disposing of what they made); those
        # still running after the grace are cancelled.
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self._close_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in self._slots), return_exceptions=True)
        await self.factory.close_host()
        self._started = False

    def session(self, program: Program, limits: Limits) -> AbstractAsyncContextManager[RunnerSession]:
        """A session of `program` under `limits` in a free slot (waits for one; starts the pool if needed)."""
        return self._session(program, limits)

    @contextlib.asynccontextmanager
    async def _session(self, program: Program, limits: Limits) -> AsyncIterator[RunnerSession]:
        await self.start()
        for attempt in range(self._open_attempts):
            slot = await self._acquire()
            session = RunnerSession(slot, program, limits, self._margin_s)
            try:
                await slot.prepare(limits)
                await session.open()
                break
            except SandboxCrashed:
                # Nothing ran yet: a runner that died while idle (its end not seen yet) costs a retry.
                self._release(slot)
                if attempt + 1 == self._open_attempts:
                    raise
            except BaseException:
                self._release(slot)
                raise
        try:
            yield session
        finally:
            try:
                await session.close()
            finally:
                self._release(slot)

    async def _acquire(self) -> S:
        assert self._free is not None
        noun = self.factory.slot_noun
        while True:
            if self._closed:
                raise SandboxUnavailable("the sandbox is closed")
            if all(slot.broken for slot in self._slots) and not self._tasks:
                raise SandboxUnavailable(f"no {noun} is left")
            try:
                async with asyncio.timeout(self._acquire_timeout_s):
                    slot = await self._free.get()
            except TimeoutError as exc:
                raise SandboxUnavailable(f"no free {noun} within {self._acquire_timeout_s} s") from exc
            if not slot.broken:
                return slot
            self._background(self._replace(slot))  # it died while idle

    def _release(self, slot: S) -> None:
        """After a session: a healthy slot is free again at once; a broken one is replaced."""
        if not slot.broken and not self._closed:
            assert self._free is not None
            self._free.put_nowait(slot)
            return
        self._background(self._replace(slot))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self, slot: S) -> None:
        """Dispose of a broken slot and start a fresh one in its place (with back-off between tries)."""
        await slot.discard()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(START_ATTEMPTS),
            wait=wait_exponential(multiplier=self._first_backoff_s),  # 0.5 s, 1 s, 2 s, 4 s
            retry=retry_if_exception_type(SandboxError),
            sleep=self._pause,
            before_sleep=self._log_failed_start,
            reraise=True,
        )
        try:
            fresh: S | None = await retrying(self._start_slot, slot.index)
        except SandboxError as exc:
            logger.error("sandbox %s is lost after %d attempts: %s", slot.label, START_ATTEMPTS, exc)
            return
        if fresh is None:  # closed meanwhile
            return
        self._slots[self._slots.index(slot)] = fresh
        if self._closed:
            await fresh.stop()
            return
        assert self._free is not None
        self._free.put_nowait(fresh)
        self.replacements += 1
        logger.warning("sandbox %s replaced", fresh.label)

    async def _start_slot(self, index: int) -> S | None:
        """A started slot for position `index`, or None once the pool is closed."""
        if self._closed:
            return None
        fresh = self.factory.new_slot(index)
        try:
            await fresh.start()
        except asyncio.CancelledError:
            await asyncio.shield(fresh.discard())
            raise
        return fresh

    async def _pause(self, seconds: float) -> None:
        """The back-off between two starts, cut short by `close()`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    @staticmethod
    def _log_failed_start(state: RetryCallState) -> None:
        index = state.args[0] if state.args else "?"
        exc = state.outcome.exception() if state.outcome is not None else None
        logger.error("sandbox slot %s could not restart (attempt %d): %s", index, state.attempt_number, exc)


class PooledSandbox(Generic[S]):
    """The `Sandbox` protocol (sandbox.runners.base) over a SlotPool. A backend sets `pool` (with itself
    as the SlotFactory) and reports its isolation in `_summary` and `_info` from `note_isolation`."""

    pool: SlotPool[S]

    def __init__(self) -> None:
        self._summary = "not started"
        self._info: dict[str, Any] = {}

    @property
    def isolation(self) -> str:
        """Human-readable description of the isolation in force."""
        return self._summary

    @property
    def isolation_info(self) -> dict[str, Any]:
        """The runner's own account of its isolation (level, namespaces, uid switch, warnings)."""
        return dict(self._info)

    @property
    def ready(self) -> bool:
        return self.pool.ready

    async def start(self) -> None:
        """Start the pool (a session starts it too); SandboxUnavailable, with nothing left, if it cannot."""
        await self.pool.start()

    async def close(self) -> None:
        """Stop every slot; the sandbox refuses sessions from now on."""
        await self.pool.close()

    def session(self, program: Program, limits: Limits) -> AbstractAsyncContextManager[RunnerSession]:
        """A session of `program` under `limits` in a free slot (waits for one)."""
        return self.pool.session(program, limits)
