"""A memory and CPU cgroup per slot of the process backend, for the processes of the tests it runs.

    cgroups = SlotCgroups.create("990000", slots=4, parent=None)   # raises CgroupsUnavailable(reason)
    hello_config["cgroup"] = cgroups.runner_config(slot)           # the runner's test processes join it
    cgroups.set_memory_limit(slot, limits)                        # before each session
    cgroups.remove()

Why: RLIMIT_AS bounds the address space of one process, so a program may hold its limit once per process
it starts, and memory that is mapped by no process (SysV shared memory, memfds, tmpfs files) is counted
nowhere: the OOM killer, which picks the largest process it sees, would then kill a neighbour's test, the
runner or the server itself. In a cgroup of its own the program's memory is counted as a whole, whoever
holds it, and the OOM killer stays inside the cgroup (cgroup v2: `memory.oom.group` kills all of the test's
processes together); the runner sees the cgroup's `oom_kill` count rise and grades the test `memory`, the
program's own failure. Each slot's cgroup also gets an equal CPU weight, so a program that starts many
busy processes gets its share of the machine and no more, and its whole process tree's CPU time is read
live (the time limit is on CPU time, see sandbox.runner.outcome). The sandbox's own cgroup weighs as much as
`slots` ordinary processes (cpu.shares 1024 or cpu.weight 100 each): beside it, every process of the host
outside any cgroup counts as one, and a single weight would leave all the slots together one process's
share of a busy machine.

Where (made by the server, which must be root or own a delegated cgroup):
- cgroup v1 (hybrid hosts, this project's CI): `<the server's own cgroup>/iarl-sandbox-<name>/slot-<i>` in
  the memory, cpu and cpuacct hierarchies (v1 allows children beside processes).
- cgroup v2: `<parent>/iarl-sandbox-<name>/slot-<i>`, where the parent is `SANDBOX_CGROUP_PARENT` if set (a
  cgroup delegated to the server's user, e.g. by systemd `Delegate=yes`, holding no process), else the
  server's own cgroup: the root, or one holding only the server and its children, which then move into a
  leaf `iarl-server-<pid>` of it (v2 forbids processes beside child cgroups that have controllers).
  Needs Linux 5.16 or newer (the kernel checks the credentials of whoever opened `cgroup.procs`).
Everywhere else (a container whose /sys/fs/cgroup is read-only, a non-root server without delegation)
`create` raises CgroupsUnavailable and the sandbox falls back to rlimits, the solutions' seccomp filter and
the OOM score order (see sandbox.runners.process).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError
from sandbox.runner.cgroup import own_cgroup_dir

logger = logging.getLogger(__name__)

# Beside the program's own memory (`Limits.memory_mb`), a session's cgroup holds its tmpfs /tmp and the
# kernel's share: page tables, pipe buffers, the page cache of the files the interpreter reads.
SESSION_SLACK_MB = 64
V1_CONTROLLERS = ("memory", "cpu", "cpuacct")


class CgroupsUnavailable(SandboxError):
    """No cgroup of our own can be made here; the message says why."""


@dataclass(frozen=True)
class _Slot:
    dirs: tuple[Path, ...]  # v1: one per hierarchy (memory first); v2: one


class SlotCgroups:
    """The per-slot cgroups of one process sandbox (see the module docstring)."""

    def __init__(self, version: int, bases: tuple[Path, ...], slots: int) -> None:
        self.version = version
        self.bases = bases  # v1: the base directory in each hierarchy (memory first); v2: one
        self._slots = [_Slot(tuple(base / f"slot-{i}" for base in bases)) for i in range(slots)]
        self._memory_limit: dict[int, int] = {}

    @classmethod
    def create(cls, name: str, slots: int, parent: Path | None = None) -> SlotCgroups:
        """Make the cgroups of `slots` slots; raise CgroupsUnavailable if this host gives us none."""
        try:
            if parent is not None:
                if not (parent / "cgroup.controllers").exists():
                    raise CgroupsUnavailable(f"{parent} is not a cgroup v2 directory")
                return cls._create_v2(parent, name, slots)
            memory = own_cgroup_dir("memory")
            if memory is None:
                raise CgroupsUnavailable("no memory cgroup controller is mounted")
            fstype, own = memory
            if fstype == "cgroup":
                return cls._create_v1(name, slots)
            if "memory" not in (Path(own) / "cgroup.controllers").read_text().split():
                raise CgroupsUnavailable(f"the memory controller is not available in {own}")
            return cls._create_v2(_v2_parent(Path(own)), name, slots)
        except OSError as exc:
            raise CgroupsUnavailable(f"cannot make cgroups: {exc}") from exc

    @classmethod
    def _create_v1(cls, name: str, slots: int) -> SlotCgroups:
        bases: list[Path] = []
        for controller in V1_CONTROLLERS:
            found = own_cgroup_dir(controller)
            if found is None or found[0] != "cgroup":
                if controller == "memory":
                    raise CgroupsUnavailable("no cgroup v1 memory hierarchy")
                continue  # (CPU fairness and live CPU time need cpu and cpuacct; memory is what we must have)
            base = Path(found[1]) / f"iarl-sandbox-{name}"
            if base not in bases:  # cpu and cpuacct are often mounted together
                bases.append(base)
        made = cls(1, tuple(bases), slots)
        with made._undone_on_failure():
            made._make_dirs()
            for base in made.bases:
                if (base / "cpu.shares").exists():
                    (base / "cpu.shares").write_text(str(1024 * slots))  # (see the module docstring)
            for slot in made._slots:
                # A host with swap but no swap accounting (no memory.memsw.*) would page a program's excess
                # out to swap instead of killing it: its memory would have no bound. Swappiness 0 keeps
                # the slot's anonymous memory in RAM, so reaching the limit is an OOM kill (`memory`).
                with contextlib.suppress(FileNotFoundError):
                    (slot.dirs[0] / "memory.swappiness").write_text("0")
        return made

    @classmethod
    def _create_v2(cls, parent: Path, name: str, slots: int) -> SlotCgroups:
        missing = {"memory", "cpu"} - set((parent / "cgroup.controllers").read_text().split())
        if "memory" in missing:
            raise CgroupsUnavailable(f"the memory controller is not available in {parent}")
        wanted = " ".join(f"+{c}" for c in ("memory", "cpu") if c not in missing)
        (parent / "cgroup.subtree_control").write_text(wanted)
        made = cls(2, (parent / f"iarl-sandbox-{name}",), slots)
        with made._undone_on_failure():
            made._make_dirs()
            (made.bases[0] / "cgroup.subtree_control").write_text(wanted)
            if (made.bases[0] / "cpu.weight").exists():
                (made.bases[0] / "cpu.weight").write_text(str(min(10_000, 100 * slots)))
            for slot in made._slots:
                (slot.dirs[0] / "memory.oom.group").write_text("1")  # an OOM kill takes the whole test
                swap_max = slot.dirs[0] / "memory.swap.max"
                if swap_max.exists():
                    swap_max.write_text("0")
                elif _swap_in_use():
                    logger.warning(
                        "this host swaps but has no swap accounting (memory.swap.max): a program may page "
                        "its memory above its limit out to swap (boot with swapaccount=1, or turn swap off)"
                    )
        return made

    @contextlib.contextmanager
    def _undone_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.remove()
            raise

    def _make_dirs(self) -> None:
        for base in self.bases:
            if base.exists():
                logger.warning("removing the cgroup %s left by a sandbox that did not close", base)
                _remove_tree(base, self.version)
            base.mkdir()
        for slot in self._slots:
            for directory in slot.dirs:
                directory.mkdir()

    def runner_config(self, slot: int) -> dict[str, Any]:
        """The "cgroup" of a runner's hello (see sandbox.runner.cgroup.TestCgroup)."""
        dirs = self._slots[slot].dirs
        if self.version == 2:
            return {
                "join": [str(dirs[0] / "cgroup.procs")],
                "oom_kills": str(dirs[0] / "memory.events"),
                "cpu_usage": str(dirs[0] / "cpu.stat"),
                "shared": False,
            }
        usage = [d / "cpuacct.usage" for d in dirs if (d / "cpuacct.usage").exists()]
        return {
            "join": [str(d / "cgroup.procs") for d in dirs],
            "oom_kills": str(dirs[0] / "memory.oom_control"),
            "cpu_usage": str(usage[0]) if usage else None,
            "shared": False,
        }

    def set_memory_limit(self, slot: int, memory_mb: int, workdir_mb: int) -> None:
        """Bound everything a session's tests hold together: their memory, /tmp, and the kernel's share."""
        limit = (memory_mb + workdir_mb + SESSION_SLACK_MB) << 20
        if self._memory_limit.get(slot) == limit:
            return
        directory = self._slots[slot].dirs[0]
        if self.version == 2:
            (directory / "memory.max").write_text(str(limit))
        else:
            # memory+swap may never be below memory alone: raise it first, lower it last.
            files = ["memory.limit_in_bytes"]
            if (directory / "memory.memsw.limit_in_bytes").exists():
                files.append("memory.memsw.limit_in_bytes")
            if limit > int((directory / "memory.limit_in_bytes").read_text()):
                files.reverse()
            for name in files:
                (directory / name).write_text(str(limit))
        self._memory_limit[slot] = limit

    def empty(self, slot: int) -> None:
        """Kill whatever is left in one slot's cgroup (a runner that broke may leave tests behind without a
        pid namespace): they would count against the next session's memory and CPU time."""
        for directory in self._slots[slot].dirs:
            _kill_all(directory, self.version)

    def remove(self) -> None:
        """Kill whatever is left in the slots' cgroups and remove them."""
        for base in self.bases:
            with contextlib.suppress(OSError):
                _remove_tree(base, self.version)

    def describe(self) -> str:
        where = ", ".join(str(base) for base in self.bases)
        return f"cgroup v{self.version} per slot ({where})"


def _v2_parent(own: Path) -> Path:
    """The server's own cgroup, made able to hold ours (see the module docstring), or CgroupsUnavailable."""
    if _is_root_cgroup(own):
        return own  # the root may hold processes beside child cgroups
    if not os.access(own / "cgroup.subtree_control", os.W_OK):
        raise CgroupsUnavailable(
            f"the server's cgroup {own} is not ours to divide; set SANDBOX_CGROUP_PARENT to a cgroup "
            "delegated to this user"
        )
    ours = _descendants(os.getpid())
    others = [pid for pid in _pids(own) if pid not in ours]
    if others:
        raise CgroupsUnavailable(
            f"the server's cgroup {own} holds {len(others)} other processes; set SANDBOX_CGROUP_PARENT to an "
            "empty cgroup delegated to this user"
        )
    leaf = own / f"iarl-server-{os.getpid()}"
    leaf.mkdir(exist_ok=True)
    for pid in _pids(own):
        with contextlib.suppress(ProcessLookupError, OSError):
            (leaf / "cgroup.procs").write_text(str(pid))
    return own


def _swap_in_use() -> bool:
    try:
        return len(Path("/proc/swaps").read_text().splitlines()) > 1  # (a header line, then one per device)
    except OSError:
        return False


def _is_root_cgroup(directory: Path) -> bool:
    """The root of a cgroup v2 hierarchy (it may hold processes beside children with controllers)."""
    return not (directory / "cgroup.type").exists()


def _pids(directory: Path) -> list[int]:
    try:
        return [int(line) for line in (directory / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _descendants(root: int) -> set[int]:
    """`root` and every process below it (from /proc)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            parents[int(name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    found = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def _remove_tree(directory: Path, version: int, timeout_s: float = 5.0) -> None:
    """Kill every process in `directory` and below, then remove the directories, deepest first."""
    dirs = sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [directory]
    deadline = time.monotonic() + timeout_s
    for cgroup in dirs:
        while True:
            _kill_all(cgroup, version)
            try:
                cgroup.rmdir()
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)  # killed processes take a moment to leave


def _kill_all(cgroup: Path, version: int) -> None:
    kill = cgroup / "cgroup.kill"
    if version == 2 and kill.exists():
        with contextlib.suppress(OSError):
            kill.write_text("1")
        return
    for pid in _pids(cgroup):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
