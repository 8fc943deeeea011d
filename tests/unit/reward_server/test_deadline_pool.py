"""The deadline pool: results come back, a job past its deadline is killed, a dead worker is replaced."""

from __future__ import annotations

import asyncio
import math
import operator
import os
import time

import pytest

from reward_server.deadline_pool import DeadlinePool, JobFailed, JobTimeout, WorkerCrashed


@pytest.fixture
async def pool():
    pool = DeadlinePool(2)
    await pool.start()
    yield pool
    await pool.close()


async def test_returns_the_result(pool: DeadlinePool) -> None:
    assert await pool.run(math.factorial, 10, timeout_s=5) == 3628800


async def test_job_past_deadline_is_killed_and_worker_replaced(pool: DeadlinePool) -> None:
    pids_before = {w.process.pid for w in pool._all}
    started = time.monotonic()
    with pytest.raises(JobTimeout):
        await pool.run(time.sleep, 60, timeout_s=0.5)
    assert time.monotonic() - started < 5
    assert pool.timeouts == 1
    assert pool.alive
    assert len({w.process.pid for w in pool._all} - pids_before) == 1
    assert await pool.run(operator.add, 2, 3, timeout_s=5) == 5


async def test_dead_worker_is_an_infrastructure_failure(pool: DeadlinePool) -> None:
    with pytest.raises(WorkerCrashed) as info:
        await pool.run(os._exit, 3, timeout_s=5)
    assert not isinstance(info.value, JobFailed)
    assert pool.alive
    assert await pool.run(operator.mul, 6, 7, timeout_s=5) == 42


async def test_exception_in_job_is_reported(pool: DeadlinePool) -> None:
    with pytest.raises(JobFailed, match="ZeroDivisionError"):
        await pool.run(operator.truediv, 1, 0, timeout_s=5)


async def test_a_stuck_job_does_not_block_the_other_worker(pool: DeadlinePool) -> None:
    stuck = asyncio.create_task(pool.run(time.sleep, 60, timeout_s=3))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    results = [await pool.run(operator.add, i, 1, timeout_s=5) for i in range(20)]
    assert results == list(range(1, 21))
    assert time.monotonic() - started < 2
    with pytest.raises(JobTimeout):
        await stuck


async def test_memory_limit_stops_a_runaway_job() -> None:
    pool = DeadlinePool(1, memory_limit_mb=512)
    await pool.start()
    try:
        with pytest.raises(WorkerCrashed, match="MemoryError"):
            await pool.run(bytearray, 2 * 1024**3, timeout_s=10)
        assert await pool.run(operator.add, 1, 1, timeout_s=5) == 2
    finally:
        await pool.close()


async def test_cancelled_caller_does_not_leak_a_busy_worker(pool: DeadlinePool) -> None:
    task = asyncio.create_task(pool.run(time.sleep, 60, timeout_s=30))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    results = await asyncio.gather(*(pool.run(operator.add, i, 0, timeout_s=5) for i in range(4)))
    assert results == [0, 1, 2, 3]
    assert pool.alive


def test_large_jobs_under_uvloop() -> None:
    """uvicorn runs on uvloop; a 16 MiB job (a big completion batch) must still go through the pipe."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[int]:
        pool = DeadlinePool(1)
        await pool.start()
        try:
            return [await pool.run(len, "x" * (16 * 2**20), timeout_s=10) for _ in range(3)]
        finally:
            await pool.close()

    assert uvloop.run(main()) == [16 * 2**20] * 3


async def test_replacements_are_counted_by_reason(pool: DeadlinePool) -> None:
    from reward_server.metrics import COMPONENTS

    def restarts(reason: str) -> float:
        return COMPONENTS.math_worker_restarts.labels(reason)._value.get()

    timeouts, crashes = restarts("timeout"), restarts("crash")
    with pytest.raises(JobTimeout):
        await pool.run(time.sleep, 60, timeout_s=0.3)
    with pytest.raises(WorkerCrashed):
        await pool.run(os._exit, 3, timeout_s=5)
    assert (restarts("timeout"), restarts("crash")) == (timeouts + 1, crashes + 1)
