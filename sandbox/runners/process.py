"""The process backend (the embedded default): a pool of warm runners on this machine, no Docker needed.

    sandbox = ProcessSandbox(SandboxSettings(slots=4))
    await sandbox.start()                 # logs the isolation in force; `sandbox.isolation` says it too
    async with sandbox.session(Program(code="print(input())"), Limits(wall_time_s=2)) as session:
        run = await session.run(TestInput(stdin="hi\\n"))      # TestRun(outcome="ok", stdout="hi\\n", ...)
    await sandbox.close()

Each slot is one `sandbox/runner` process (see its docstrings for the protocol and the process tree),
under a uid block this sandbox holds alone and, where the server may make them, a cgroup per slot. The
slots' lifecycle is the shared pool's (sandbox.runners.pool): a session holds a slot for all of its tests;
a runner that dies, hangs past a test's deadline plus `protocol_margin_s`, or answers nonsense is killed
and replaced, and the session raises SandboxCrashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from sandbox.cgroups import CgroupsUnavailable, SlotCgroups
from sandbox.errors import SandboxCrashed, SandboxError, SandboxUnavailable
from sandbox.runner import cgroup, protocol
from sandbox.runners.pool import PooledSandbox, SlotPool
from sandbox.runners.session import exchange
from sandbox.schemas import Limits
from sandbox.settings import SandboxSettings

logger = logging.getLogger(__name__)

RUNNER_PATH = Path(protocol.__file__).resolve().parent  # the runner package, run as `python <folder>`
RUNNER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}  # nothing of the server's own
# The OOM killer's order: every test process raises its own score to 1000 (first choice); the process that
# hosts a sandbox (the server, a worker) lowers its own, where it may, so that it is the last. Its runners
# inherit it.
HOST_OOM_SCORE_ADJ = -800


def lower_own_oom_score() -> bool:
    """Make this process (and what it starts from now on) the OOM killer's last choice; False if refused."""
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write(str(HOST_OOM_SCORE_ADJ))
    except OSError as exc:  # lowering needs CAP_SYS_RESOURCE (a container gets it from its own settings)
        logger.info("sandbox host keeps its OOM score: %s", exc)
        return False
    return True


class _UidBlock:
    """A block of host uids held by this sandbox alone (an advisory lock file per block).

    Two sandboxes on one host (two servers, or uvicorn workers) must not share the uids of their tests:
    without a user namespace RLIMIT_NPROC and kill(-1) would reach across them.
    """

    def __init__(self, first: int, slots: int) -> None:
        size = max(1024, 2 * slots)
        lock_dir = Path(tempfile.gettempdir())
        for block in range(256):
            base = first + block * size
            path = lock_dir / f"sandbox-uids-{base}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.base, self._fd = base, fd
            return
        raise SandboxUnavailable(f"no free block of {size} uids from {first} (256 sandboxes on this host?)")

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # (the lock goes with it)
            self._fd = -1


class _Runner:
    """One slot: a runner process and the frames to and from it. Not for concurrent use."""

    @property
    def label(self) -> str:
        return f"runner {self.index}"

    def __init__(self, index: int, sandbox: ProcessSandbox) -> None:
        assert sandbox.uid_base is not None
        self.index = index
        self.settings = sandbox.settings
        self.uid_base = sandbox.uid_base
        # The "cgroup" of its hello (see sandbox.runner.cgroup.TestCgroup).
        self.cgroup = sandbox.cgroup_config(index)
        self._sandbox = sandbox
        self.process: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}
        self.broken = False
        self._stderr_task: asyncio.Task[None] | None = None

    def _config(self) -> dict[str, Any]:
        base = self.uid_base + 2 * self.index
        return {
            "namespaces": self.settings.use_namespaces,
            "runner_uid": base,
            "test_uid": base + 1,
            "workdir_mb": self.settings.workdir_mb,
            "expose": self.settings.expose_paths,
            "work_root": str(self.settings.work_root) if self.settings.work_root else None,
            "spare_session": self.settings.spare_session,
            "mount_proc": self.settings.mount_proc,
            "cgroup": self.cgroup,
        }

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self.settings.python or sys.executable,
            "-I",  # isolated: no PYTHON* variables, no user site, no script dir on sys.path
            "-S",  # no site: the runner adds site-packages itself, without running .pth files
            "-B",
            str(RUNNER_PATH),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=RUNNER_ENV,
            cwd="/",
            start_new_session=True,  # its own process group: killed as a whole
        )
        self._stderr_task = asyncio.create_task(self._log_stderr())
        hello = {"op": "hello", "version": protocol.PROTOCOL_VERSION, "config": self._config()}
        try:
            reply = await self.request(hello, self.settings.start_timeout_s)
        except SandboxCrashed as exc:
            await self.kill()
            raise SandboxUnavailable(f"runner {self.index} did not start: {exc}") from exc
        if reply.get("op") != "ready":
            await self.kill()
            raise SandboxUnavailable(f"runner {self.index} did not start: {reply.get('message', reply)}")
        self.ready = reply

    async def _log_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while line := await self.process.stderr.readline():
            logger.warning("sandbox runner %d: %s", self.index, line.decode(errors="replace").rstrip())

    async def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one frame and read the reply; any failure leaves the runner broken (SandboxCrashed)."""
        if self.broken or self.process is None:
            raise SandboxCrashed(f"runner {self.index} is not usable")
        assert self.process.stdin is not None and self.process.stdout is not None
        return await exchange(self, self.process.stdin, self.process.stdout, message, timeout_s)

    async def prepare(self, limits: Limits) -> None:
        """Size the slot's cgroup for this session (where the sandbox has cgroups of its own)."""
        cgroups = self._sandbox.cgroups
        if cgroups is None:
            return
        try:
            cgroups.set_memory_limit(self.index, limits.memory_mb, self.settings.workdir_mb)
        except OSError as exc:
            self.broken = True  # replaced, and its slot's cgroup emptied
            raise SandboxCrashed(f"slot {self.index}: cannot set its memory limit: {exc}") from exc

    async def discard(self) -> None:
        """Kill the runner, and whatever it left in its slot's cgroup (a runner that broke may leave tests
        behind without a pid namespace: they would count against the next session's memory)."""
        await self.kill()
        cgroups = self._sandbox.cgroups  # (None once the sandbox released them)
        if cgroups is not None:
            cgroups.empty(self.index)

    async def kill(self) -> None:
        """Kill the runner's process group (its namespaces die with it) and reap it."""
        self.broken = True
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._stderr_task, 2.0)
        if process.stdin is not None:
            process.stdin.close()
            with contextlib.suppress(OSError):
                await process.stdin.wait_closed()

    async def stop(self) -> None:
        """Close stdin (the runner exits), then kill whatever is left."""
        process = self.process
        if process is not None and process.returncode is None and process.stdin is not None:
            process.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 2.0)
        await self.kill()


class ProcessSandbox(PooledSandbox[_Runner]):
    """Sandbox backend of warm local runners (see the module docstring): the slots of a SlotPool, and the
    uid block and cgroups they share."""

    name = "process"
    slot_noun = "runner"

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or SandboxSettings()
        self.cgroups: SlotCgroups | None = None  # one per slot, where the server may make them
        self._uids: _UidBlock | None = None
        self._observed_cgroup: dict[str, Any] | None = None  # without cgroups of our own: the host's
        self.pool = SlotPool(
            self,
            self.settings.slots,
            acquire_timeout_s=self.settings.acquire_timeout_s,
            protocol_margin_s=self.settings.protocol_margin_s,
        )

    @property
    def uid_base(self) -> int | None:
        """Host uids in use (when running as root): slot i's runner uid_base+2i, its tests uid_base+2i+1."""
        return self._uids.base if self._uids is not None else None

    @property
    def runners(self) -> list[_Runner]:
        """The pool's current runners, one per slot (a replaced one is swapped for its successor)."""
        return self.pool.slots

    # The pool's SlotFactory: what the runners share on this host, and the runners themselves.

    async def open_host(self) -> None:
        lower_own_oom_score()
        self._uids = _UidBlock(self.settings.uid_base, self.settings.slots)
        try:
            self.cgroups = self._make_cgroups(self._uids.base)
        except SandboxError:
            self._uids.release()
            raise

    def _make_cgroups(self, uid_base: int) -> SlotCgroups | None:
        """The slots' cgroups (sandbox.cgroups); without them, the host's own cgroup is only observed."""
        mode = self.settings.cgroups
        if mode == "off":
            return None
        try:
            return SlotCgroups.create(str(uid_base), self.settings.slots, self.settings.cgroup_parent)
        except CgroupsUnavailable as exc:
            if mode == "require":
                raise SandboxUnavailable(f"SANDBOX_CGROUPS=require: {exc}") from exc
            logger.warning(
                "process sandbox without cgroups of its own (%s): a program's memory is bounded per "
                "process only (RLIMIT_AS x max_processes), and an OOM kill in this host's cgroup cannot "
                "be told apart from a neighbour's doing (such verdicts are not cached)",
                exc,
            )
            own = cgroup.own_cgroup_files()
            self._observed_cgroup = {**own, "shared": True} if own else None
            return None

    def cgroup_config(self, index: int) -> dict[str, Any] | None:
        """The cgroup that slot `index`'s tests join (or, without cgroups of our own, observe)."""
        return self.cgroups.runner_config(index) if self.cgroups is not None else self._observed_cgroup

    def new_slot(self, index: int) -> _Runner:
        return _Runner(index, self)

    async def close_host(self) -> None:
        if self.cgroups is not None:
            self.cgroups.remove()
            self.cgroups = None
        if self._uids is not None:
            self._uids.release()

    def note_isolation(self, ready: dict[str, Any]) -> None:
        self._info = dict(ready.get("isolation") or {})
        self._summary = str(ready.get("summary", "unknown"))
        if self.cgroups is not None:
            self._summary += f"; {self.cgroups.describe()}"
        slots = self.settings.slots
        if self._info.get("namespaces"):
            logger.info("process sandbox: %d slots; isolation: %s", slots, self._summary)
        else:
            logger.warning(
                "PROCESS SANDBOX WITHOUT NAMESPACES (%d slots): %s. The solutions can see the host's "
                "filesystem (what their uid may read) and network. Reasons: %s",
                slots,
                self._summary,
                "; ".join(self._info.get("warnings", [])) or "namespaces turned off",
            )
        for warning in self._info.get("warnings", []):
            logger.info("process sandbox: %s", warning)
