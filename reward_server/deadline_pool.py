"""A pool of worker processes that runs CPU-bound jobs under a hard deadline.

Why not `concurrent.futures.ProcessPoolExecutor`: it cannot cancel a running job, so one sympy call that
never returns holds a worker forever. Why not `signal.alarm`: it only works in the main thread and cannot
interrupt C-level big-integer arithmetic. Here each worker is a plain process on a pipe; a job that
misses its deadline gets its worker SIGKILLed and replaced, and the caller gets `JobTimeout`.

The deadline clock starts when a worker receives the job, not while the job waits for a free worker, so a
timeout is the job's own doing and not the server's load.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import resource
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from reward_server.metrics import COMPONENTS

T = TypeVar("T")
log = logging.getLogger(__name__)


_PRELOAD: set[str] = set()  # the modules the forkserver imports once, for every pool
READY = "ready"  # a new worker's first message, once it has imported its modules
START_TIMEOUT_S = 120.0


class JobTimeout(Exception):
    """The job did not finish before its deadline; its worker was killed."""


class WorkerCrashed(Exception):
    """The worker died or raised while running the job (an infrastructure failure)."""


class JobFailed(WorkerCrashed):
    """The job raised in the worker, which lives on: a bug, or the input's doing (e.g. a MemoryError under
    the worker's address-space limit). Any other WorkerCrashed is the infrastructure's (a dead worker, a
    closed pool)."""


def _worker_main(conn: Connection, memory_limit_mb: int, preload: Sequence[str]) -> None:
    # The pool's modules are imported before the first job (the forkserver preloaded them only if it started
    # after this pool was made): an import must never run on a job's deadline.
    for module in preload:
        importlib.import_module(module)
    if memory_limit_mb > 0:
        # A runaway expansion should fail with MemoryError in the worker, not swap the machine.
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    conn.send(READY)
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send((True, fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller as data
            conn.send((False, f"{type(exc).__name__}: {exc}"[:500]))


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.conn.close()
        self.process.join(timeout=5)


def _exchange(conn: Connection, job: tuple[Callable[..., Any], tuple[Any, ...]], timeout_s: float) -> Any:
    """Send a job and wait for its reply, in a thread of the pool's own executor.

    Blocking pipe I/O in a thread, not `loop.add_reader`: uvloop makes a watched fd non-blocking, and a
    large job then fails to send with EAGAIN.
    """
    conn.send(job)
    if not conn.poll(timeout_s):
        raise TimeoutError
    return conn.recv()


class DeadlinePool:
    """`size` worker processes; `await pool.run(fn, *args, timeout_s=5)` runs one job in one of them.

    Args:
        size: number of worker processes.
        preload: modules the forkserver imports once, so that a replacement worker starts in milliseconds.
        memory_limit_mb: address-space limit of each worker (0 for none).

    Example:
        pool = DeadlinePool(2, preload=["reward_server.math_grading"])
        await pool.start()
        answer = await pool.run(extract_answer, text, timeout_s=5)
    """

    def __init__(self, size: int, preload: Sequence[str] = (), memory_limit_mb: int = 4096) -> None:
        self.size = size
        self.memory_limit_mb = memory_limit_mb
        self._ctx = multiprocessing.get_context("forkserver")
        self._preload = tuple(preload)
        # The preload list is one per process (the forkserver's, fixed when it first starts): every pool adds
        # its modules to it, never replaces another pool's.
        _PRELOAD.update(preload)
        self._ctx.set_forkserver_preload(sorted(_PRELOAD))
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self.timeouts = 0
        self.crashes = 0
        self._closed = False
        # One thread per worker waits on its pipe; two spare threads spawn replacements.
        self._threads = ThreadPoolExecutor(max_workers=size + 2, thread_name_prefix="deadline-pool")

    async def start(self) -> None:
        workers = await asyncio.gather(*(asyncio.to_thread(self._spawn) for _ in range(self.size)))
        for worker in workers:
            self._idle.put_nowait(worker)

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main, args=(child, self.memory_limit_mb, self._preload), daemon=True
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        try:
            ready = parent.poll(START_TIMEOUT_S) and parent.recv() == READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            worker.kill()
            raise WorkerCrashed(f"a worker did not start within {START_TIMEOUT_S:g} s")
        self._all.add(worker)
        return worker

    async def _replace(self, worker: _Worker, reason: str) -> None:
        COMPONENTS.math_worker_restarts.labels(reason).inc()
        self._all.discard(worker)
        await asyncio.to_thread(worker.kill)
        if not self._closed:
            self._idle.put_nowait(await asyncio.to_thread(self._spawn))

    @property
    def alive(self) -> bool:
        return not self._closed and len(self._all) == self.size

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
        """Run `fn(*args)` in a worker; raise JobTimeout, JobFailed or WorkerCrashed. `fn` must be
        importable."""
        if self._closed:
            raise WorkerCrashed("worker pool is closed")
        worker = await self._idle.get()
        loop = asyncio.get_running_loop()
        try:
            job = (fn, args)
            ok, value = await loop.run_in_executor(self._threads, _exchange, worker.conn, job, timeout_s)
        except TimeoutError:
            self.timeouts += 1
            await self._replace(worker, "timeout")
            raise JobTimeout(f"no result within {timeout_s:g} s") from None
        except (EOFError, OSError) as exc:
            self.crashes += 1
            await self._replace(worker, "crash")
            raise WorkerCrashed(f"worker died: {exc!r}") from exc
        except BaseException:
            # Cancelled (the client went away) or worse: the worker may still be busy, so it cannot go
            # back to the idle queue. A fresh one replaces it.
            await asyncio.shield(self._replace(worker, "cancelled"))
            raise
        self._idle.put_nowait(worker)
        if not ok:
            raise JobFailed(str(value))
        return value  # type: ignore[no-any-return]

    async def close(self) -> None:
        self._closed = True
        workers = list(self._all)
        self._all.clear()
        await asyncio.gather(*(asyncio.to_thread(w.kill) for w in workers))
        self._threads.shutdown(wait=False, cancel_futures=True)
