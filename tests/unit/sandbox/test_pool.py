"""The slot pool's lifecycle on in-memory slots: reuse, replacement, back-off, counting, closing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandbox.errors import SandboxCrashed, SandboxUnavailable
from sandbox.runners.pool import START_ATTEMPTS, SlotPool
from sandbox.schemas import Limits, Program, TestInput

PROGRAM = Program(code="print(input())")


class FakeSlot:
    """A slot whose runner is a few lines of Python: it echoes stdin, and can be made to crash."""

    def __init__(self, index: int, serial: int, factory: FakeFactory) -> None:
        self.index = index
        self.serial = serial  # the how-manieth slot the factory made: tells a replacement apart
        self.ready: dict[str, Any] = {}
        self.broken = False
        self.started = False
        self.disposed = False
        self.crash_on_run = False
        self._factory = factory

    @property
    def label(self) -> str:
        return f"fake {self.index}"

    async def start(self) -> None:
        if self._factory.failing_starts > 0:
            self._factory.failing_starts -= 1
            self._factory.failed_starts += 1
            raise SandboxUnavailable(f"fake {self.index} did not start")
        self.started = True
        self.ready = {"op": "ready", "summary": "fake isolation"}

    async def prepare(self, limits: Limits) -> None:
        pass

    async def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        if self.broken or self.disposed:
            raise SandboxCrashed(f"{self.label} is not usable")
        op = message["op"]
        if op == "run" and self.crash_on_run:
            self.broken = True
            raise SandboxCrashed(f"{self.label} died")
        if op == "run":
            return {
                "op": "result",
                "outcome": "ok",
                "stdout": message["stdin"],
                "stderr_tail": "",
                "result_json": None,
                "exit_code": 0,
                "signal": None,
                "wall_time_s": 0.0,
            }
        return {"op": {"open": "opened", "close": "closed"}[op]}

    async def discard(self) -> None:
        self.broken = True
        self.disposed = True

    async def stop(self) -> None:
        await self.discard()


class FakeFactory:
    """Makes FakeSlots; `failing_starts` of the next starts fail."""

    slot_noun = "fake"

    def __init__(self) -> None:
        self.made: list[FakeSlot] = []
        self.failing_starts = 0
        self.failed_starts = 0
        self.host_open = False
        self.isolation: dict[str, Any] = {}

    async def open_host(self) -> None:
        self.host_open = True

    def new_slot(self, index: int) -> FakeSlot:
        slot = FakeSlot(index, len(self.made), self)
        self.made.append(slot)
        return slot

    def note_isolation(self, ready: dict[str, Any]) -> None:
        self.isolation = ready

    async def close_host(self) -> None:
        self.host_open = False


def make_pool(size: int = 2, **options: Any) -> tuple[SlotPool[FakeSlot], FakeFactory]:
    factory = FakeFactory()
    options.setdefault("first_backoff_s", 0.001)
    return SlotPool(factory, size, acquire_timeout_s=5.0, protocol_margin_s=1.0, **options), factory


async def until(condition: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.001)


async def echo(pool: SlotPool[FakeSlot], text: str) -> tuple[str, FakeSlot]:
    async with pool.session(PROGRAM, Limits()) as session:
        run = await session.run(TestInput(stdin=text))
        return run.stdout, session.channel  # type: ignore[return-value]


async def test_start_opens_the_host_and_every_slot() -> None:
    pool, factory = make_pool(3)
    assert not pool.ready
    await pool.start()
    assert pool.ready and factory.host_open
    assert [slot.index for slot in pool.slots] == [0, 1, 2] and all(s.started for s in pool.slots)
    assert factory.isolation["summary"] == "fake isolation"
    await pool.start()  # only once
    assert len(factory.made) == 3
    await pool.close()


async def test_release_returns_a_healthy_slot_for_the_next_session() -> None:
    pool, factory = make_pool(1)
    first = await echo(pool, "a")
    second = await echo(pool, "b")
    assert (first[0], second[0]) == ("a", "b")
    assert first[1] is second[1]  # the same slot, not a new one
    assert len(factory.made) == 1 and pool.replacements == 0
    await pool.close()


async def test_a_broken_slot_is_replaced_and_never_reused() -> None:
    pool, factory = make_pool(1)
    await pool.start()
    (victim,) = pool.slots
    victim.crash_on_run = True
    with pytest.raises(SandboxCrashed):
        await echo(pool, "a")
    await until(lambda: pool.replacements == 1)
    (fresh,) = pool.slots
    assert fresh is not victim and victim.disposed and fresh.index == victim.index
    for _ in range(3):
        stdout, slot = await echo(pool, "b")
        assert stdout == "b" and slot is fresh
    await pool.close()


async def test_a_slot_that_died_while_idle_is_skipped_and_replaced() -> None:
    pool, factory = make_pool(2, open_attempts=3)
    await pool.start()
    dead = pool.slots[0]
    dead.broken = True  # its runner ended between two sessions
    for _ in range(3):
        stdout, slot = await echo(pool, "c")
        assert stdout == "c" and slot is not dead
    await until(lambda: pool.replacements == 1)
    assert dead.disposed and dead not in pool.slots and len(pool.slots) == 2
    await pool.close()


async def test_failed_starts_back_off_and_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, factory = make_pool(1)
    pauses: list[float] = []
    pause = pool._pause

    async def recorded_pause(seconds: float) -> None:
        pauses.append(seconds)
        await pause(seconds)

    monkeypatch.setattr(pool, "_pause", recorded_pause)
    await pool.start()
    pool.slots[0].crash_on_run = True
    factory.failing_starts = START_ATTEMPTS - 1  # every attempt but the last fails
    with pytest.raises(SandboxCrashed):
        await echo(pool, "a")
    await until(lambda: pool.replacements == 1)
    assert factory.failed_starts == START_ATTEMPTS - 1
    assert pauses == pytest.approx([0.001 * 2**i for i in range(START_ATTEMPTS - 1)])  # doubling
    assert (await echo(pool, "d"))[0] == "d"
    await pool.close()


async def test_a_slot_that_never_restarts_is_lost_and_the_pool_says_so() -> None:
    pool, factory = make_pool(1)
    await pool.start()
    pool.slots[0].crash_on_run = True
    factory.failing_starts = START_ATTEMPTS
    with pytest.raises(SandboxCrashed):
        await echo(pool, "a")
    await until(lambda: factory.failed_starts == START_ATTEMPTS and not pool._tasks)
    assert not pool.ready and pool.replacements == 0
    with pytest.raises(SandboxUnavailable, match="no fake is left"):
        await echo(pool, "e")
    await pool.close()


async def test_close_cuts_a_back_off_short() -> None:
    # (a grace longer than the wait below: the replacement must end on its own, not be cancelled)
    pool, factory = make_pool(1, first_backoff_s=60.0, close_grace_s=30.0)
    await pool.start()
    pool.slots[0].crash_on_run = True
    factory.failing_starts = 1
    with pytest.raises(SandboxCrashed):
        await echo(pool, "a")
    await until(lambda: factory.failed_starts == 1)  # now pausing 60 s before the next attempt
    async with asyncio.timeout(10):
        await pool.close()
    assert pool.replacements == 0 and len(factory.made) == 2  # no start after the close


async def test_a_failed_start_of_the_pool_releases_everything() -> None:
    pool, factory = make_pool(3)
    factory.failing_starts = 1
    with pytest.raises(SandboxUnavailable, match="1 of 3 fakes failed"):
        await pool.start()
    assert not pool.ready and not factory.host_open
    assert all(slot.disposed for slot in factory.made)


async def test_close_disposes_of_every_slot_and_refuses_sessions() -> None:
    pool, factory = make_pool(2)
    await pool.start()
    await pool.close()
    assert all(slot.disposed for slot in factory.made) and not factory.host_open
    assert not pool.ready
    with pytest.raises(SandboxUnavailable, match="closed"):
        await echo(pool, "f")


async def test_a_session_waits_for_a_free_slot_up_to_the_acquire_timeout() -> None:
    factory = FakeFactory()
    pool = SlotPool(factory, 1, acquire_timeout_s=0.05, protocol_margin_s=1.0)
    async with pool.session(PROGRAM, Limits()):
        with pytest.raises(SandboxUnavailable, match="no free fake within"):
            await echo(pool, "g")
    assert (await echo(pool, "h"))[0] == "h"  # free again once the first session ended
    await pool.close()
