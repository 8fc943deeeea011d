"""Isolation: the levels the runner tries, the read-only root it builds, and what ends up in force.

Standard library only. The setup process C (see zygote) calls enter_level; the levels, best first:

- userns (the runner starts as real root): the root is built while still privileged on the host, then C
  moves into a user namespace whose root maps to runner_uid and whose uid 1000 (the tests) to test_uid;
- userns-unprivileged (any other user): a user namespace mapping only the runner's own uid, so the tests
  keep uid 0 inside it, with every capability dropped;
- namespaces (real root without user namespaces): pid, net, mount, ipc and uts namespaces, tests as test_uid;
- none: rlimits only (tests switch to test_uid where the runner is root).
"""

from __future__ import annotations

import os
import stat
import sys

from .cgroup import TestCgroup
from .linux import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MNT_DETACH,
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_STRICTATIME,
    PR_SET_DUMPABLE,
    mount,
    pivot_root,
    prctl,
    set_non_dumpable,
    syscall_numbers,
    umount2,
    unshare,
)
from .protocol import DEFAULT_EXPOSE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TEST_ID_IN_NS = 1000  # uid and gid of the test process inside the user namespace
DEVICES = ("null", "zero", "full", "random", "urandom")


class Config:
    """What the host asks for in "hello"."""

    def __init__(self, raw: dict[str, Any] | None) -> None:
        raw = raw or {}
        self.namespaces = str(raw.get("namespaces", "auto"))
        if self.namespaces not in ("auto", "require", "off"):
            raise ValueError(f"namespaces must be auto, require or off, not {self.namespaces!r}")
        self.runner_uid = _opt_int(raw.get("runner_uid"))
        self.test_uid = _opt_int(raw.get("test_uid"))
        self.workdir_mb = int(raw.get("workdir_mb", 64))
        self.expose = [str(p) for p in raw.get("expose", DEFAULT_EXPOSE)]
        self.work_root = raw.get("work_root") or None
        # Keep the next session process set up ahead of its "open" (only with a pid and mount namespace).
        self.spare_session = bool(raw.get("spare_session", True))
        # A proc of its own per session where the kernel allows it (auto), or never (off: tests only).
        self.mount_proc = str(raw.get("mount_proc", "auto"))
        if self.mount_proc not in ("auto", "off"):
            raise ValueError(f"mount_proc must be auto or off, not {self.mount_proc!r}")
        # Only for tests: the levels to try, instead of those `namespaces` implies.
        self.levels = [str(level) for level in raw["levels"]] if raw.get("levels") else None
        # Opened here, in P, before any namespace or uid change (see TestCgroup).
        self.cgroup = TestCgroup.from_config(raw.get("cgroup"))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


class Isolation:
    """What is actually in force; sent to the host in "ready"."""

    def __init__(self, level: str) -> None:
        self.level = level  # userns | userns-unprivileged | namespaces | none
        self.namespaces: list[str] = []
        self.pid_ns = level != "none"
        self.mount_ns = level != "none"
        self.userns = level.startswith("userns")
        self.test_uid: int | None = None  # uid to switch to (as seen by the runner), None: keep
        self.test_gid: int | None = None
        self.host_test_uid: int | None = None
        self.drop_caps = False  # the test keeps uid 0 of a user namespace: drop capabilities
        self.nested_userns_blocked: str | None = None  # how: "max_user_namespaces" or "seccomp"
        self.seccomp_program: Any = None  # the filter each test loads (see linux.solution_filter)
        self.proc = self.pid_ns  # each session mounts a proc of its own (decided by the zygote)
        self.no_proc_reason: str | None = None  # why there is no /proc inside, with namespaces
        # Without a /proc inside: the outer one, kept open (never shown to a solution) so that a test
        # process can still raise its own oom_score_adj through "self" (see session.Session._raise_oom_score).
        self.outer_proc_fd: int | None = None
        self.cgroup: dict[str, Any] | None = None  # TestCgroup.describe(), None: no cgroup known
        self.warnings: list[str] = []

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "namespaces": self.namespaces,
            "readonly_root": self.mount_ns,
            "private_tmp": self.mount_ns,
            "uid_switch": self.test_uid is not None,
            "test_uid": self.test_uid,
            "host_test_uid": self.host_test_uid,
            "capabilities_dropped": self.test_uid is not None or self.drop_caps,
            "nested_userns_blocked": self.nested_userns_blocked is not None,
            "nested_userns_blocked_by": self.nested_userns_blocked,
            "proc": self.proc,
            "no_proc_reason": self.no_proc_reason,
            "rlimits": ["AS", "CPU", "NPROC", "NOFILE", "FSIZE", "CORE"],
            "ipc_and_memfd_blocked": self.seccomp_program is not None,
            "cgroup": self.cgroup,
            "warnings": self.warnings,
        }

    def summary(self) -> str:
        parts: list[str] = []
        if self.namespaces:
            parts.append("namespaces " + "+".join(self.namespaces))
            parts.append("read-only minimal root, private tmpfs /tmp per session, no network")
            if self.proc:
                parts.append("a /proc of its own per session")
            else:
                parts.append(f"no /proc inside ({self.no_proc_reason})")
        else:
            parts.append("NO namespaces (rlimits only: host filesystem and network are reachable)")
        if self.test_uid is not None:
            where = "in the user namespace" if self.userns else "on the host"
            host = (
                f" (host uid {self.host_test_uid})" if self.userns and self.host_test_uid is not None else ""
            )
            parts.append(f"tests run as uid {self.test_uid} {where}{host} without capabilities")
        elif self.drop_caps:
            parts.append("tests keep uid 0 of the user namespace with every capability dropped")
        else:
            parts.append("tests run as the runner's own uid (RLIMIT_NPROC counts the runner too)")
        if self.nested_userns_blocked == "seccomp":
            parts.append("nested namespaces and mounts off (a seccomp filter on tests)")
        elif self.nested_userns_blocked:
            parts.append("nested user namespaces off")
        if self.seccomp_program is not None:
            parts.append("SysV IPC and memfds off (seccomp)")
        cgroup = self.cgroup or {}
        if cgroup.get("joined"):
            parts.append("each slot's tests in a memory and CPU cgroup of their own")
        elif cgroup.get("oom_kills_seen"):
            parts.append(
                "OOM kills seen in the " + ("shared" if cgroup.get("shared") else "session's") + " cgroup"
            )
        else:
            parts.append("no memory cgroup: memory bounded per process only (RLIMIT_AS x processes)")
        parts.append("no_new_privs, rlimits AS/CPU/NPROC/NOFILE/FSIZE/CORE, tests first for the OOM killer")
        return "; ".join(parts)


def plan_levels(config: Config) -> list[str]:
    """Isolation levels to try, best first: userns (real root), userns-unprivileged, namespaces, none."""
    if config.levels is not None:
        return config.levels
    if config.namespaces == "off":
        return ["none"]
    if syscall_numbers() is None:
        levels: list[str] = []
    elif real_root():
        levels = ["userns", "namespaces"]
    else:
        levels = ["userns-unprivileged"]
    if config.namespaces == "auto":
        levels.append("none")
    return levels


def python_paths() -> list[str]:
    """Directories the solution's interpreter needs: the installation and the (virtual) environment."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    if sys.executable:
        paths.append(os.path.dirname(sys.executable))
        paths.append(os.path.dirname(os.path.realpath(sys.executable)))
    return [p for p in paths if p]


def _plan_exposure(path: str, ops: list[tuple[str, str, str]], depth: int = 0) -> None:
    """Ops that make `path` appear inside the new root: ("dir"|"link"|"bind", path, link target)."""
    if depth > 16:
        return
    parts = [p for p in os.path.normpath(path).split("/") if p]
    current = ""
    for index, part in enumerate(parts):
        current = f"{current}/{part}"
        try:
            info = os.lstat(current)
        except OSError:
            return
        if stat.S_ISLNK(info.st_mode):
            ops.append(("link", current, os.readlink(current)))
            rest = "/".join(parts[index + 1 :])
            resolved = os.path.realpath(current)
            _plan_exposure(f"{resolved}/{rest}" if rest else resolved, ops, depth + 1)
            return
        if index == len(parts) - 1:
            ops.append(("bind", current, ""))
        else:
            ops.append(("dir", current, ""))


def _mount_flags(path: str) -> int:
    """The per-mount flags a bind remount must keep (a user namespace may not clear locked ones)."""
    flags = 0
    info = os.statvfs(path)
    for st_flag, ms_flag in (
        (os.ST_RDONLY, MS_RDONLY),  # (Docker's read-only binds in /proc: /proc/bus, /proc/sys, ...)
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (os.ST_RELATIME, MS_RELATIME),
    ):
        if info.f_flag & st_flag:
            flags |= ms_flag
    if not info.f_flag & (os.ST_NOATIME | os.ST_RELATIME):
        flags |= MS_STRICTATIME  # (else a remount would turn it into relatime)
    return flags


def mount_points() -> list[str]:
    points: list[str] = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            field = line.split()[4]
            points.append(field.encode().decode("unicode_escape"))
    return points


def build_root(config: Config) -> None:
    """Make a private, read-only root holding only the exposed paths, /dev basics and /proc; pivot into it.

    Runs in a fresh mount namespace. Sources are opened before anything is mounted over them, and bound
    from /proc/self/fd, so they may live anywhere (even under the directory the new root is built on).
    """
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    ops: list[tuple[str, str, str]] = []
    for path in [*config.expose, *python_paths()]:
        _plan_exposure(path, ops)
    bind_paths = sorted({path for kind, path, _ in ops if kind == "bind"}, key=lambda p: p.count("/"))
    binds = [(path, os.open(path, os.O_PATH | os.O_CLOEXEC)) for path in bind_paths]
    links = sorted({(path, target) for kind, path, target in ops if kind == "link"})
    dirs = sorted({path for kind, path, _ in ops if kind == "dir"} - set(bind_paths))
    devices = [
        (f"/dev/{name}", os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC))
        for name in DEVICES
        if os.path.exists(f"/dev/{name}")
    ]

    new_root = "/tmp"  # any directory works: in this private namespace nothing of the host's /tmp is used
    mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=4096")
    bound: list[str] = []
    for path in dirs:
        os.makedirs(new_root + path, mode=0o755, exist_ok=True)
    for path, target in links:
        if not os.path.lexists(new_root + path):
            os.makedirs(os.path.dirname(new_root + path), mode=0o755, exist_ok=True)
            os.symlink(target, new_root + path)
    for path, fd in binds:
        if any(path == b or path.startswith(b + "/") for b in bound):
            os.close(fd)
            continue  # already visible through a bind of a parent
        inside = new_root + path
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(inside, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(inside), mode=0o755, exist_ok=True)
            open(inside, "a").close()
        mount(f"/proc/self/fd/{fd}", inside, None, MS_BIND | MS_REC)
        os.close(fd)
        bound.append(path)
    os.makedirs(new_root + "/dev", mode=0o755, exist_ok=True)
    for path, fd in devices:
        open(new_root + path, "a").close()
        mount(f"/proc/self/fd/{fd}", new_root + path, None, MS_BIND)
        os.close(fd)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{new_root}/dev/{name}")
    os.makedirs(new_root + "/tmp", mode=0o755, exist_ok=True)
    os.makedirs(new_root + "/proc", mode=0o555, exist_ok=True)
    # The host's proc, only so that a proc of our own may be mounted on top later in a user namespace (the
    # kernel refuses a new proc where none is fully visible). Every session mounts its own proc over it;
    # where none may be mounted, the zygote takes this one away again (zygote.Zygote._settle_proc).
    mount("/proc", new_root + "/proc", None, MS_BIND | MS_REC)

    os.chdir(new_root)
    pivot_root(".", ".")
    umount2(".", MNT_DETACH)
    os.chdir("/")
    for point in mount_points():
        if point == "/proc" or point.startswith("/proc/"):
            flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        elif point.startswith("/dev/"):
            flags = MS_RDONLY | MS_NOSUID | MS_NOEXEC
        else:
            flags = MS_RDONLY | MS_NOSUID | MS_NODEV
        try:
            mount(None, point, None, MS_REMOUNT | MS_BIND | flags | _mount_flags(point))
        except OSError as exc:
            raise OSError(f"cannot remount {point} read-only: {exc}") from exc
    for point in mount_points():
        if (
            not (point == "/proc" or point.startswith("/proc/"))
            and not os.statvfs(point).f_flag & os.ST_RDONLY
        ):
            raise OSError(f"{point} is still writable")


def enter_level(level: str, config: Config, status_w: int, go_r: int) -> Isolation:
    """In the setup process C: enter the namespaces of `level` (raises if the kernel refuses)."""
    iso = Isolation(level)
    every = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    names = ["pid", "net", "mount", "ipc", "uts"]
    if level == "userns":
        # Real root: build the root while still privileged on the host, then move into a user namespace
        # whose root maps to an unprivileged host uid; the mounts become locked (read-only for good).
        if config.runner_uid is None or config.test_uid is None:
            raise OSError("userns needs runner_uid and test_uid")
        unshare(CLONE_NEWNS)
        build_root(config)
        unshare(CLONE_NEWUSER | every)
        os.write(status_w, b"unshared\n")
        if os.read(go_r, 1) != b"m":
            raise OSError("the runner did not write the uid map")
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        iso.namespaces = ["user", *names]
        iso.test_uid = iso.test_gid = TEST_ID_IN_NS
        iso.host_test_uid = config.test_uid
    elif level == "userns-unprivileged":
        uid, gid = os.getuid(), os.getgid()
        unshare(CLONE_NEWUSER | every)
        prctl(PR_SET_DUMPABLE, 1)  # else /proc/self/*_map belong to root and we may not write them
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
        set_non_dumpable()
        build_root(config)
        iso.namespaces = ["user", *names]
        iso.drop_caps = True
        iso.warnings.append(
            "no second uid to map: tests keep uid 0 of the user namespace, capabilities dropped"
        )
    elif level == "namespaces":
        # Real root without a user namespace: worth it only if the tests can run under a uid of their own.
        if config.test_uid is None:
            raise OSError("namespaces without a user namespace need test_uid")
        unshare(CLONE_NEWNS)
        build_root(config)
        problem = _uid_switch_problem(config.test_uid)  # (in the new root, before the pid namespace)
        if problem:
            raise OSError(problem)
        unshare(every & ~CLONE_NEWNS)
        iso.namespaces = names
        iso.test_uid = iso.test_gid = iso.host_test_uid = config.test_uid
    elif level == "none":
        if os.geteuid() == 0:
            problem = "no test_uid given" if config.test_uid is None else _uid_switch_problem(config.test_uid)
            if problem is None or problem.startswith("unreadable"):
                iso.test_uid = iso.test_gid = iso.host_test_uid = config.test_uid
                if problem:
                    iso.warnings.append(f"solutions can import only what the runner imported: {problem}")
            else:
                iso.warnings.append(f"TESTS RUN AS ROOT (limited only by rlimits): {problem}")
    else:
        raise ValueError(f"unknown isolation level {level!r}")
    return iso


def real_root() -> bool:
    """Root of the initial user namespace (whose uid map is the identity on every uid)."""
    try:
        with open("/proc/self/uid_map") as handle:
            return os.geteuid() == 0 and handle.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return os.geteuid() == 0


def _uid_switch_problem(uid: int) -> str | None:
    """Why a test process could not run as `uid` here (None: it can), checked in a throwaway child."""
    child = os.fork()
    if child == 0:
        code = 3
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            code = 0 if os.access(os.path.dirname(os.__file__), os.R_OK | os.X_OK) else 4
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    if code == 4:
        return f"unreadable: uid {uid} cannot read the Python installation ({os.path.dirname(os.__file__)})"
    return f"cannot switch to uid {uid} (no CAP_SETUID/CAP_SETGID?)"
