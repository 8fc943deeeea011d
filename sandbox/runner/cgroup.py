"""Cgroups: what the runner needs to know of the memory and CPU its tests use (the host makes the cgroups).

Standard library only. The host reads its own cgroup with `own_cgroup_dir` too (sandbox.cgroups).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cgroup_mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount point, root inside the hierarchy, "cgroup" | "cgroup2", controllers) of this mount namespace."""
    mounts: list[tuple[str, str, str, set[str]]] = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            tail = fields[fields.index("-") + 1 :]
            fstype, options = tail[0], tail[2] if len(tail) > 2 else ""
            point = fields[4].encode().decode("unicode_escape")
            root = fields[3].encode().decode("unicode_escape")
            if fstype == "cgroup":
                mounts.append((point, root, fstype, set(options.split(","))))
            elif fstype == "cgroup2":
                try:
                    with open(os.path.join(point, "cgroup.controllers")) as controllers:
                        mounts.append((point, root, fstype, set(controllers.read().split())))
                except OSError:
                    mounts.append((point, root, fstype, set()))
    return mounts


def own_cgroup_dir(controller: str) -> tuple[str, str] | None:
    """("cgroup" | "cgroup2", the directory of this process's cgroup holding `controller`), if mounted."""
    with open("/proc/self/cgroup") as handle:
        entries = [line.rstrip("\n").split(":", 2) for line in handle if line.strip()]
    for fstype_wanted in ("cgroup", "cgroup2"):
        for point, root, fstype, controllers in cgroup_mounts():
            if fstype != fstype_wanted or controller not in controllers:
                continue
            for hierarchy, names, path in entries:
                mine = (
                    hierarchy == "0" and not names if fstype == "cgroup2" else controller in names.split(",")
                )
                if not mine:
                    continue
                relative = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
                if relative.startswith(".."):
                    continue  # our cgroup lies outside what this mount shows
                directory = os.path.normpath(os.path.join(point, relative))
                if os.path.isdir(directory):
                    return fstype, directory
    return None


def own_cgroup_files() -> dict[str, Any]:
    """The files of this process's own memory cgroup that tell OOM kills (for "cgroup": "own")."""
    found = own_cgroup_dir("memory")
    if found is None:
        return {}
    fstype, directory = found
    name = "memory.oom_control" if fstype == "cgroup" else "memory.events"
    path = os.path.join(directory, name)
    return {"oom_kills": path} if os.path.exists(path) else {}


class TestCgroup:
    """The cgroup that holds the test processes of this runner's sessions, as the host describes it.

    Config "cgroup": {"join": [cgroup.procs paths], "oom_kills": path, "cpu_usage": path, "shared": bool}, or
    "own" (the Docker backend: the container's cgroup holds one session, so it is observed, not joined).
    - join: each test process writes itself into these (one per v1 hierarchy, one in v2) before it drops its
      privileges; the files are opened here, by P, before any namespace or uid change (the kernel checks the
      opener's credentials);
    - oom_kills: memory.events (v2) or memory.oom_control (v1): its "oom_kill" count rising during a test
      means the OOM killer took one of the cgroup's processes;
    - cpu_usage: cpu.stat (v2, usage_usec) or cpuacct.usage (v1, ns): the CPU time of the test's whole
      process tree, live (without it: the rusage of the reaped tree, after the test);
    - shared: the cgroup holds other sessions' tests too (a worker container observed as a whole): an OOM
      kill there may be a neighbour's doing, so such a verdict is not certain.
    """

    __test__ = False

    def __init__(
        self, join_fds: list[int], oom_fd: int | None, cpu_fd: int | None, cpu_path: str, shared: bool
    ):
        self.join_fds = join_fds
        self.oom_fd = oom_fd
        self.cpu_fd = cpu_fd
        self.cpu_in_usec = cpu_path.endswith("cpu.stat")
        self.shared = shared

    @classmethod
    def from_config(cls, raw: Any) -> TestCgroup | None:
        if not raw:
            return None
        if raw == "own":
            raw = {**own_cgroup_files(), "shared": False}
        if not isinstance(raw, dict):
            raise ValueError(f"cgroup must be an object or 'own', not {raw!r}")
        flags = os.O_CLOEXEC
        join = [os.open(str(path), os.O_WRONLY | flags) for path in raw.get("join") or ()]
        oom = raw.get("oom_kills")
        cpu = raw.get("cpu_usage")
        return cls(
            join,
            os.open(str(oom), os.O_RDONLY | flags) if oom else None,
            os.open(str(cpu), os.O_RDONLY | flags) if cpu else None,
            str(cpu or ""),
            bool(raw.get("shared", False)),
        )

    def join(self) -> None:
        for fd in self.join_fds:
            os.write(fd, b"0")  # "0": the writing process itself

    def oom_kills(self) -> int | None:
        if self.oom_fd is None:
            return None
        return _field(os.pread(self.oom_fd, 4096, 0), b"oom_kill")

    def cpu_seconds(self) -> float | None:
        if self.cpu_fd is None:
            return None
        data = os.pread(self.cpu_fd, 4096, 0)
        if self.cpu_in_usec:
            usec = _field(data, b"usage_usec")
            return None if usec is None else usec / 1e6
        return int(data.split()[0]) / 1e9

    def describe(self) -> dict[str, Any]:
        return {
            "joined": bool(self.join_fds),
            "oom_kills_seen": self.oom_fd is not None,
            "cpu_time_live": self.cpu_fd is not None,
            "shared": self.shared,
        }


def _field(data: bytes, key: bytes) -> int | None:
    """The value of `key` in a flat-keyed cgroup file ("key value" lines)."""
    for line in data.splitlines():
        name, _, value = line.partition(b" ")
        if name == key:
            return int(value)
    return None
