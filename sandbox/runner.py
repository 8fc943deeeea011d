"""The in-sandbox runner: a warm process that forks once per test. Standard library only, Linux only.

Run it as `python3 -I -S -B runner.py` (a standalone file) or `python3 -I -S -B -m sandbox.runner`; it
imports nothing from the project. `-S` keeps the .pth files of site-packages out of every test process (the
runner adds the site-packages directories to sys.path itself, and `exit`/`quit` to builtins). The process
backend (`sandbox.runners.process`) keeps one runner per slot; the Docker backend runs the same file inside
its containers.

Protocol (stdin/stdout of the runner; one request, then one reply, never two requests in flight)
-------------------------------------------------------------------------------------------------
Every message is a frame: a 4-byte big-endian length N, then N bytes of UTF-8 JSON holding one object with
an "op" key. Frames larger than 256 MiB are refused. Requests and replies:

    -> {"op": "hello", "version": 1, "config": {...}}     first frame; config keys below, all optional
    <- {"op": "ready", "version": 1, "isolation": {...}, "summary": "..."}
    <- {"op": "error", "message": "..."}                   isolation could not be set up (then exit 1)

    -> {"op": "open", "program": {"code", "mode", "fn_name"}, "limits": {Limits fields}}
    <- {"op": "opened", "compile_error": null | "SyntaxError ..."}
    -> {"op": "run", "stdin": "...", "args": null | [...]}     any number of times
    <- {"op": "result", "outcome", "stdout", "stderr_tail", "result_json", "exit_code", "signal",
        "wall_time_s", "cpu_time_s", "certain"}
    -> {"op": "close"}
    <- {"op": "closed"}                                    the session and everything it started are gone

    -> {"op": "ping"}   <- {"op": "pong"}                  only between sessions

Any request may instead be answered by {"op": "error", "message": ...}: an infrastructure failure (never a
verdict on the program); the caller should then discard the runner. Closing the runner's stdin ends it.

Config ("hello"): "namespaces": "auto" | "require" | "off"; "runner_uid"/"test_uid" (host uids used when the
runner starts as real root: the user namespace maps its root to runner_uid and the test user, uid 1000
inside, to test_uid; without a user namespace tests run as test_uid directly); "workdir_mb" (size of the
per-session tmpfs); "expose" (host paths to show read-only besides the Python installation); "work_root"
(where per-session work dirs go when there is no mount namespace); "spare_session" (default true: with
a pid namespace, set up the next session process ahead of its "open", see below); "mount_proc": "auto" |
"off" (see "/proc" below); "cgroup" (the cgroup of the tests: see TestCgroup); "levels" (tests only: the
isolation levels to try, among userns, userns-unprivileged, namespaces and none).

Processes
---------
    P  runner (started by the host)          reads "hello", sets up isolation, then only waits for C
    └─ C  setup process                       enters the namespaces, builds the read-only root, pivots
       └─ Z  zygote (pid 1 of the slot)      serves the protocol between sessions (or hands it over)
          └─ S  session process (pid 1 of a pid namespace of its own, private tmpfs /tmp)
             └─ G  one per test: setsid, rlimits, unprivileged uid, no_new_privs, runs the solution

S owns the protocol while its session is open; a test's process G never sees the protocol pipes. After each
test S kills whatever the test left behind (S is the init of the session's pid namespace, or a child
subreaper without namespaces); when S exits the kernel kills everything in the session's namespace.

Spare session processes (with a pid namespace and "spare_session"): Z forks the next S (its namespaces,
/proc and tmpfs /tmp made, streams set up) while the current one serves; the spare waits on a pipe of its
own and is handed the protocol only once the current S has exited and Z has sent "closed". From then on it
answers "ping"/"hello" itself and becomes the session on "open". So every session still gets a process and
namespaces that nothing ran in before; opening one only no longer waits for them to be made.

/proc: with a pid namespace each session mounts a proc of its own (showing only the session's processes).
Where the kernel refuses that (mount_too_revealing: Docker masks paths of the container's /proc with bind
mounts, and a user namespace may mount a new proc only where one is fully visible), or with "mount_proc":
"off", the namespaces and the minimal root stay, with no proc inside at all (an empty /proc: the outer
one is unmounted, or covered where it is locked, never shown, as it would list outer processes). Nothing
in the runner needs /proc after the pivot: S is pid 1 of its pid namespace, so kill(-1) from it reaches
every other process of the session, reaping until ECHILD finds them gone, and the kernel kills the whole
namespace when S dies. Solutions run as before, except that /proc/self/..., /dev/fd and /dev/std* (links
into /proc) do not resolve.

Per test: G is forked ahead of time (right after the previous result is sent) and sets itself up, then
waits on a "go" pipe for its arguments while stdin waits in a memfd; S starts the wall clock at "go".
G's fds: 0 stdin (memfd), 1 stdout and 2 stderr (pipes, capped together), 3 the result channel (records:
tag b"R" result JSON, b"E" exception name, or from the compile probe b"C" the marshalled code object;
4-byte length, body), 4 "k" once set up (closed before the solution runs: a test whose G dies before "k" is
our failure, never the program's), 5 the go pipe. Before it drops its privileges G joins the test cgroup,
raises its OOM score to 1000, and loads the seccomp filter (solution_filter).

Outcome (see Session._verdict): output_limit if S killed it for that; memory if the OOM killer took a
process of its cgroup meanwhile; timeout if the wall clock ran out, or its processes together used their
CPU time (SIGXCPU, or the cgroup's count read every CGROUP_CHECK_S); else a signal or a non-zero exit
(memory with a MemoryError seen, else runtime_error); else, for a call, exactly one well-formed result
record (else runtime_error); else ok. "certain" is false when the outcome may not be the program's doing:
out of wall time with CPU time to spare, an OOM kill in a cgroup shared with other sessions, or a SIGKILL
nobody can say the sender of.
"""

from __future__ import annotations

import atexit
import builtins
import ctypes
import errno
import fcntl
import gc
import json
import linecache
import marshal
import math
import os
import resource
import select
import signal
import stat
import struct
import sys
import time
import traceback
import types

# Every module imported here is in the memory of each test process: typing (and tempfile, which pulls in
# random, whose reseeding runs on every fork) stay out. mypy treats TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 256 << 20
TEST_ID_IN_NS = 1000  # uid and gid of the test process inside the user namespace
STDERR_TAIL_BYTES = 1024
SWEEP_TIMEOUT_S = 5.0
CGROUP_CHECK_S = 0.05  # how often a running test's CPU time and OOM kills are read from its cgroup
OOM_SCORE_ADJ_TEST = b"1000"  # every test process is the OOM killer's first choice
DEFAULT_EXPOSE = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")
TEST_PATH = "/usr/local/bin:/usr/bin:/bin"
EXIT_SETUP_FAILED = 125  # the harness failed before the solution ran
EXIT_REPORTED = 3  # a session process that already sent its own error frame
EXIT_END_OF_INPUT = 4  # a spare session process that read the end of the protocol instead of a request

# Linux constants (not all are in the os module of Python 3.11).
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECURE_ALL_BITS_LOCKED = 0x3F  # noroot, no_setuid_fixup, keep_caps, each with its lock
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
# (pivot_root, capset) syscall numbers; other architectures run without namespaces.
SYSCALLS = {"x86_64": (155, 126), "aarch64": (41, 91), "arm64": (41, 91)}
# For the seccomp filter of tests (see solution_filter), per machine: the audit arch; the calls that make or
# enter namespaces or mount (unshare, setns, mount, umount2, pivot_root, open_tree, move_mount, fsopen,
# fsconfig, fsmount, mount_setattr); the calls that hold memory outside every process (SysV shmget, shmat,
# semget, msgget; memfd_create, memfd_secret); clone; clone3.
_X86_64_NAMESPACE_CALLS = (272, 308, 165, 166, 155, 428, 429, 430, 431, 432, 442)
_AARCH64_NAMESPACE_CALLS = (97, 268, 40, 39, 41, 428, 429, 430, 431, 432, 442)
SECCOMP_ARCH = {
    "x86_64": (0xC000003E, _X86_64_NAMESPACE_CALLS, (29, 30, 64, 68, 319, 447), 56, 435),
    "aarch64": (0xC00000B7, _AARCH64_NAMESPACE_CALLS, (194, 196, 190, 186, 279, 447), 220, 435),
    "arm64": (0xC00000B7, _AARCH64_NAMESPACE_CALLS, (194, 196, 190, 186, 279, 447), 220, 435),
}
CLONE_NEW_ANY = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

_libc = ctypes.CDLL(None, use_errno=True)


# ---------------------------------------------------------------------------------------------------------
# Small system helpers


def _errcheck(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _errcheck(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    ret = _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data))
    _errcheck(ret, f"mount {source} on {target}")


def umount2(target: str, flags: int) -> None:
    _errcheck(_libc.umount2(_bytes(target), ctypes.c_int(flags)), f"umount {target}")


def prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    ret = _libc.prctl(
        ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)
    )
    if ret < 0:
        _errcheck(ret, f"prctl({option})")


def _machine() -> str:
    return os.uname().machine


def _syscall_numbers() -> tuple[int, int] | None:
    return SYSCALLS.get(_machine())


def pivot_root(new_root: str, put_old: str) -> None:
    numbers = _syscall_numbers()
    if numbers is None:
        raise OSError(f"pivot_root: unknown syscall number on {_machine()}")
    ret = _libc.syscall(ctypes.c_long(numbers[0]), _bytes(new_root), _bytes(put_old))
    _errcheck(ret, "pivot_root")


def drop_capabilities() -> None:
    """Drop every capability for good (for a test that keeps uid 0 inside a user namespace)."""
    numbers = _syscall_numbers()
    if numbers is None:
        raise OSError(f"capset: unknown syscall number on {_machine()}")
    prctl(PR_SET_SECUREBITS, SECURE_ALL_BITS_LOCKED)
    # Every capability the kernel knows: EINVAL past the last one (no /proc/sys/kernel/cap_last_cap needed).
    for cap in range(64):
        try:
            prctl(PR_CAPBSET_DROP, cap)
        except OSError as exc:
            if exc.errno == errno.EINVAL and cap > 0:
                break
            raise
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: all zero (two 32-bit words)
    _errcheck(_libc.syscall(ctypes.c_long(numbers[1]), header, data), "capset")


def solution_filter(block_namespaces: bool) -> Any:
    """The seccomp program (for prctl) every test runs under; None on a machine without a table above.

    It always refuses SysV shared memory, semaphores and message queues, and memfds: memory that no
    process's RSS shows and RLIMIT_AS does not count, so the OOM killer would pick an innocent process
    (the server, a neighbour) instead of the program holding it. Competitive-programming solutions never
    need them. With `block_namespaces` it also refuses new namespaces and mounts, for tests where the
    kernel would let them make user namespaces and the runner could not forbid that with
    max_user_namespaces (read-only /proc/sys in Docker): clone3 then gets ENOSYS (its flags sit in memory,
    out of a filter's reach), so libc falls back to clone, whose flags are checked. x32 calls are refused
    and a foreign architecture is killed. Everything else is allowed: a container's own profile still
    applies beneath.
    """
    spec = SECCOMP_ARCH.get(_machine())
    if spec is None:
        return None
    arch, namespace_calls, memory_calls, clone, clone3 = spec
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, JMP|JEQ/JGE/JSET|K, RET|K
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    kill = 0x80000000  # SECCOMP_RET_KILL_PROCESS
    # (op, jump-if-true label, jump-if-false label, k); labels are resolved to offsets below.
    code: list[tuple[int, str | None, str | None, int]] = [
        (ld, None, None, 4),  # the architecture
        (jeq, None, "kill", arch),
        (ld, None, None, 0),  # the call's number
        (jge, "eperm", None, 0x40000000),  # x32
    ]
    denied = memory_calls + (namespace_calls if block_namespaces else ())
    code += [(jeq, "eperm", None, number) for number in denied]
    labels: dict[str, int] = {}
    if block_namespaces:
        code += [
            (jeq, None, "not_clone", clone),
            (ld, None, None, 16),  # args[0], low 32 bits (little-endian): the clone flags
            (jset, "eperm", "allow", CLONE_NEW_ANY),
            (jeq, "enosys", "allow", clone3),
        ]
        labels["not_clone"] = len(code) - 1
    for name, value in (("allow", allow), ("enosys", enosys), ("eperm", eperm), ("kill", kill)):
        labels[name] = len(code)
        code.append((ret, None, None, value))

    def offset(at: int, label: str | None) -> int:
        return 0 if label is None else labels[label] - at - 1  # jumps count from the next instruction

    class SockFilter(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_uint16),
            ("jt", ctypes.c_uint8),
            ("jf", ctypes.c_uint8),
            ("k", ctypes.c_uint32),
        ]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    items = [SockFilter(op, offset(at, jt), offset(at, jf), k) for at, (op, jt, jf, k) in enumerate(code)]
    array = (SockFilter * len(items))(*items)
    program = SockFprog(len(items), array)
    program._array = array  # kept alive with the program
    return program


def install_filter(program: Any) -> None:
    """Load a seccomp program into this thread (no_new_privs must be set); for good."""
    ret = _libc.prctl(
        ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(program), 0, 0
    )
    if ret < 0:
        _errcheck(ret, "prctl(PR_SET_SECCOMP)")


def read_exact(fd: int, size: int) -> bytes | None:
    """`size` bytes from fd; None on end of file before the first byte."""
    chunks: list[bytes] = []
    got = 0
    while got < size:
        data = os.read(fd, size - got)
        if not data:
            if got == 0:
                return None
            raise EOFError("truncated frame")
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def encode_frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    if len(body) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return struct.pack(">I", len(body)) + body


def decode_frame_body(body: bytes) -> dict[str, Any]:
    message = json.loads(body.decode("utf-8", "surrogatepass"))
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ValueError("a frame must hold a JSON object with an 'op'")
    return message


def read_frame(fd: int) -> dict[str, Any] | None:
    header = read_exact(fd, 4)
    if header is None:
        return None
    (size,) = struct.unpack(">I", header)
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    body = read_exact(fd, size) if size else b""
    if body is None:
        raise EOFError("truncated frame")
    return decode_frame_body(body)


def write_frame(fd: int, message: dict[str, Any]) -> None:
    write_all(fd, encode_frame(message))


def reset_signals() -> None:
    """Default dispositions: the runner's processes must not turn signals into Python exceptions."""
    for sig in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGCHLD,
        signal.SIGXFSZ,
        signal.SIGXCPU,
    ):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def die_with_parent(parent: int) -> None:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # The parent died before the line above (0: the parent is outside our new pid namespace).
    if os.getppid() not in (parent, 0):
        os._exit(1)


def set_non_dumpable() -> None:
    # A non-dumpable process's /proc entries (fd, mem, environ) and ptrace are closed to same-uid processes.
    prctl(PR_SET_DUMPABLE, 0)


def reap_all() -> bool:
    """Reap every exited child; True when no child is left at all."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False


def children_of_self() -> list[int]:
    """Live children of this process (including orphans adopted as a subreaper)."""
    me = os.getpid()
    kids: list[int] = []
    try:
        with open(f"/proc/self/task/{me}/children") as handle:
            return [int(x) for x in handle.read().split()]
    except OSError:
        pass
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            kids.append(int(name))
    return kids


# ---------------------------------------------------------------------------------------------------------
# Cgroups: what the runner needs to know of the memory and CPU its tests use (the host makes the cgroups)


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


# ---------------------------------------------------------------------------------------------------------
# Configuration and isolation


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
        self.seccomp_program: Any = None  # the filter each test loads (see solution_filter)
        self.proc = self.pid_ns  # each session mounts a proc of its own (decided by the zygote)
        self.no_proc_reason: str | None = None  # why there is no /proc inside, with namespaces
        # Without a /proc inside: the outer one, kept open (never shown to a solution) so that a test
        # process can still raise its own oom_score_adj through "self" (see Session._child).
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
    if _syscall_numbers() is None:
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


def _mount_points() -> list[str]:
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
    # where none may be mounted, the zygote takes this one away again (Zygote._settle_proc).
    mount("/proc", new_root + "/proc", None, MS_BIND | MS_REC)

    os.chdir(new_root)
    pivot_root(".", ".")
    umount2(".", MNT_DETACH)
    os.chdir("/")
    for point in _mount_points():
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
    for point in _mount_points():
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


# ---------------------------------------------------------------------------------------------------------
# P: the runner process


class _Quitter:
    """`exit()` and `quit()` as the site module defines them (the runner runs with -S)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Use {self.name}() or Ctrl-D (i.e. EOF) to exit"

    def __call__(self, code: Any = None) -> NoReturn:
        raise SystemExit(code)


def prepare_interpreter() -> None:
    """What `site` would have given the solutions, without importing the .pth files of site-packages."""
    if sys.flags.no_site:
        import site  # with -S, importing site does not run its main()

        for path in site.getsitepackages():
            if os.path.isdir(path) and path not in sys.path:
                sys.path.append(path)
        builtins.exit = _Quitter("exit")  # type: ignore[assignment]
        builtins.quit = _Quitter("quit")  # type: ignore[assignment]


def runner_main() -> NoReturn:
    reset_signals()
    set_non_dumpable()
    prepare_interpreter()
    try:
        hello = read_frame(0)
        if hello is None:
            os._exit(0)
        if hello.get("op") != "hello":
            raise ValueError(f"expected hello, got {hello.get('op')!r}")
        config = Config(hello.get("config"))
    except Exception as exc:  # noqa: BLE001 - reported to the host
        write_frame(1, {"op": "error", "message": f"bad hello: {exc}"})
        os._exit(1)
    failures: list[str] = []
    for level in plan_levels(config):
        reason = _try_level(level, config, failures)
        if reason is None:
            os._exit(0)  # unreachable: _try_level waits for the slot to end
        failures.append(f"{level}: {reason}")
    write_frame(1, {"op": "error", "message": "no isolation could be set up: " + "; ".join(failures)})
    os._exit(1)


def _try_level(level: str, config: Config, failures: list[str]) -> str | None:
    """Start C at `level`. On success wait for it and exit with its status; else return why it failed."""
    status_r, status_w = os.pipe()
    go_r, go_w = os.pipe()
    me = os.getpid()
    child = os.fork()
    if child == 0:
        os.close(status_r)
        os.close(go_w)
        _setup_main(level, config, failures, me, status_w, go_r)
    os.close(status_w)
    os.close(go_r)
    lines = os.fdopen(status_r, "rb")
    try:
        for raw in lines:
            line = raw.decode().rstrip("\n")
            if line == "unshared":
                _write_id_maps(child, config)
                os.write(go_w, b"m")
            elif line == "ok":
                lines.close()
                os.close(go_w)
                _, status = os.waitpid(child, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            elif line.startswith("fail "):
                reason = line[5:]
                break
        else:
            reason = "setup process died"
    except OSError as exc:
        reason = f"{exc}"
    lines.close()
    os.close(go_w)
    try:
        os.kill(child, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(child, 0)
    return reason


def _write_id_maps(child: int, config: Config) -> None:
    assert config.runner_uid is not None and config.test_uid is not None
    for name, base in (("uid_map", config.runner_uid), ("gid_map", config.runner_uid)):
        test = config.test_uid
        with open(f"/proc/{child}/{name}", "w") as handle:
            handle.write(f"0 {base} 1\n{TEST_ID_IN_NS} {test} 1\n")


def _setup_main(
    level: str, config: Config, failures: list[str], parent: int, status_w: int, go_r: int
) -> NoReturn:
    """C: enter the level, start the zygote, then wait for it."""
    try:
        die_with_parent(parent)
        iso = enter_level(level, config, status_w, go_r)
        die_with_parent(parent)  # credentials changed above, which clears the parent-death signal
        iso.warnings.extend(f"refused {f}" for f in failures)
        os.close(go_r)
        me = os.getpid()
        zygote = os.fork()
        if zygote == 0:
            Zygote(iso, config, me, status_w).serve()
        os.close(status_w)
        _, status = os.waitpid(zygote, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    except BaseException as exc:  # noqa: BLE001 - reported to P, which tries the next level
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        try:
            os.write(status_w, f"fail {message}\n".encode())
        finally:
            os._exit(1)


# ---------------------------------------------------------------------------------------------------------
# Z: the zygote


def ready_message(iso: Isolation) -> dict[str, Any]:
    return {"op": "ready", "version": PROTOCOL_VERSION, "isolation": iso.as_dict(), "summary": iso.summary()}


def answer_idle(iso: Isolation, message: dict[str, Any], wfd: int = 1) -> None:
    """Answer a request outside a session (in the zygote, or in a spare session process)."""
    op = message["op"]
    if op == "ping":
        write_frame(wfd, {"op": "pong"})
    elif op == "hello":
        write_frame(wfd, ready_message(iso))
    else:
        write_frame(wfd, {"op": "error", "message": f"unexpected op {op!r} outside a session"})


class Zygote:
    def __init__(self, iso: Isolation, config: Config, parent: int, status_w: int) -> None:
        self.iso = iso
        self.config = config
        self.parent = parent
        self.status_w = status_w

    def serve(self) -> NoReturn:
        try:
            die_with_parent(self.parent)
            prctl(PR_SET_CHILD_SUBREAPER, 1)
            set_non_dumpable()
            self._load_filter(self._block_nested_userns() if self.iso.userns else None)
            if self.config.cgroup is not None:
                self.iso.cgroup = self.config.cgroup.describe()
            if self.iso.pid_ns:
                self._settle_proc()
            os.write(self.status_w, b"ok\n")
            os.close(self.status_w)
        except BaseException as exc:  # noqa: BLE001
            os.write(self.status_w, f"fail zygote: {exc}\n".encode())
            os._exit(1)
        # The first compile in a process builds the compiler's state (~1.5 ms); done here once, every
        # session process and test process inherits it.
        compile("pass\n", "<warm-up>", "exec", dont_inherit=True)
        write_frame(1, ready_message(self.iso))
        if self.iso.pid_ns and self.config.spare_session:
            self._serve_with_spares()
        while True:
            message = self._read_request()
            if message["op"] == "open":
                self._session(message)
            else:
                answer_idle(self.iso, message)

    def _read_request(self) -> dict[str, Any]:
        try:
            message = read_frame(0)
        except (OSError, ValueError, EOFError) as exc:
            self._error(f"bad request: {exc}")
            os._exit(1)
        if message is None:
            os._exit(0)
        return message

    def _serve_with_spares(self) -> NoReturn:
        """Serve through spare session processes: each is set up while the one before it serves.

        A spare S is forked (new mount, pid and ipc namespaces, its own proc and tmpfs /tmp) as soon as the
        previous one is handed the protocol, and waits on its go pipe. It is handed the protocol only after
        the previous S has exited, so it never serves next to a session, and it is never reused: each
        session still gets a process and namespaces of its own, only made earlier.
        """
        spare = self._spawn(None)
        while True:
            if isinstance(spare, tuple) and self._exited(spare[0]):
                os.close(spare[1])
                spare = "the spare session process died"
            if isinstance(spare, str):
                # No spare to hand over: answer one request here (an open gets the error), then retry.
                reason = spare if isinstance(spare, str) else "the spare session process died"
                message = self._read_request()
                if message["op"] == "open":
                    self._error(f"cannot start a session: {reason}")
                else:
                    answer_idle(self.iso, message)
                spare = self._spawn(None)
                continue
            current, go_w = spare
            try:
                os.write(go_w, b"g")
            except OSError:
                pass  # it died just now: judged by its exit status below
            os.close(go_w)
            spare = self._spawn(None)
            _, status = os.waitpid(current, 0)
            code = os.waitstatus_to_exitcode(status)
            if code == EXIT_END_OF_INPUT:
                os._exit(0)  # (the spare reads end of file on its go pipe, or dies with the slot)
            if code == 0:
                write_frame(1, {"op": "closed"})
            elif code != EXIT_REPORTED:
                self._error(f"session process died ({_describe_exit(code)})")

    @staticmethod
    def _exited(pid: int) -> bool:
        """Whether a child has exited (it is reaped if so)."""
        try:
            return os.waitpid(pid, os.WNOHANG)[0] != 0
        except ChildProcessError:
            return True

    def _error(self, message: str) -> None:
        write_frame(1, {"op": "error", "message": message})

    def _block_nested_userns(self) -> str | None:
        """Per user namespace: tests (unprivileged in ours) may not create user namespaces of their own.

        Returns why the sysctl could not be set (Docker binds /proc/sys read-only): the seccomp filter of
        the tests refuses them instead (see _load_filter).
        """
        try:
            with open("/proc/sys/user/max_user_namespaces", "w") as handle:
                handle.write("0")
        except OSError as exc:
            return f"{exc}"
        self.iso.nested_userns_blocked = "max_user_namespaces"
        return None

    def _load_filter(self, sysctl_refused: str | None) -> None:
        """The seccomp filter of every test (see solution_filter), tried once here before it is relied on."""
        block_namespaces = sysctl_refused is not None
        program = solution_filter(block_namespaces)
        problem = (
            "no seccomp filter for this machine"
            if program is None
            else _filter_problem(program, block_namespaces)
        )
        if problem is None:
            self.iso.seccomp_program = program
            if block_namespaces:
                self.iso.nested_userns_blocked = "seccomp"
            return
        self.iso.warnings.append(f"SysV IPC and memfds stay allowed: {problem}")
        if block_namespaces:
            self.iso.warnings.append(f"nested user namespaces stay allowed: {sysctl_refused}; {problem}")

    def _settle_proc(self) -> None:
        """Keep the outer /proc only under sessions that can mount their own; else no /proc at all.

        The outer proc (bound by build_root) lists the processes outside the slot, so it must never be what
        a session sees: if a throwaway session cannot mount a fresh proc (or mount_proc is off), it goes.
        """
        iso = self.iso
        if self.config.mount_proc == "off":
            iso.no_proc_reason = "turned off: mount_proc=off"
        else:
            problem = _fresh_proc_problem()
            if problem is None:
                return
            masks = sum(1 for point in _mount_points() if point.startswith("/proc/"))
            # (mount_too_revealing: a user namespace gets a new proc only where one is fully visible)
            cause = f"the host masks /proc ({masks} mounts on its paths): " if masks else ""
            iso.no_proc_reason = f"{cause}fresh proc mount refused: {problem}"
        iso.proc = False
        iso.outer_proc_fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            umount2("/proc", MNT_DETACH)
        except OSError:
            # Locked (bound before the user namespace was made, at the userns level): cover it instead.
            mount("tmpfs", "/proc", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=555")
        if os.listdir("/proc"):
            raise OSError("the outer /proc is still visible")

    def _spawn(self, message: dict[str, Any] | None) -> tuple[int, int] | str:
        """Start S in new mount, pid and ipc namespaces: (its pid, its go pipe), or why it failed.

        With a message S opens that session at once; without, S is a spare: it sets itself up, then waits
        for a byte on its go pipe before it reads requests itself.
        """
        me = os.getpid()
        # An intermediate process enters the namespaces, so that S is the init of its own pid namespace and
        # nothing of a session (files in /tmp, SysV IPC objects) outlives it.
        go_r, go_w = os.pipe()
        pid_r, pid_w = os.pipe()
        middle = os.fork()
        if middle == 0:
            os.close(pid_r)
            os.close(go_w)
            try:
                unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC)
                session = os.fork()
                if session == 0:
                    os.close(pid_w)
                    Session(self.iso, self.config, me).main(message, go_r)
                os.write(pid_w, f"{session}".encode())
                os._exit(0)
            except BaseException as exc:  # noqa: BLE001
                os.write(pid_w, f"E{exc}".encode())
                os._exit(1)
        os.close(pid_w)
        os.close(go_r)
        with os.fdopen(pid_r, "rb") as handle:
            text = handle.read().decode()
        os.waitpid(middle, 0)
        if not text.isdigit():
            os.close(go_w)
            return text[1:] or "no pid"
        return int(text), go_w  # S was re-parented to us (we are the slot's init and a subreaper)

    def _session(self, message: dict[str, Any]) -> None:
        me = os.getpid()
        if self.iso.pid_ns:
            spawned = self._spawn(message)
            if isinstance(spawned, str):
                self._error(f"cannot start a session: {spawned}")
                return
            session, go_w = spawned
            os.close(go_w)
        else:
            session = os.fork()
            if session == 0:
                Session(self.iso, self.config, me).main(message, -1)
        _, status = os.waitpid(session, 0)
        reap_all()
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            write_frame(1, {"op": "closed"})
        elif code != EXIT_REPORTED:
            self._error(f"session process died ({_describe_exit(code)})")


def _filter_problem(program: Any, block_namespaces: bool) -> str | None:
    """Why the tests could not run under `program` (None: they can), tried in a throwaway child."""
    child = os.fork()
    if child == 0:
        code = 3
        try:
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            install_filter(program)
            code = 9
            try:
                os.close(os.memfd_create("probe"))
            except OSError as exc:
                code = 0 if exc.errno == errno.EPERM else 9
            if code == 0 and block_namespaces:
                code = 4
                try:
                    unshare(CLONE_NEWUSER)
                except OSError as exc:
                    code = 5 if exc.errno != errno.EPERM else 0
            if code == 0:  # refused as they should be; fork and threads (clone3 -> clone) must still work
                import _thread

                done = _thread.allocate_lock()
                done.acquire()
                _thread.start_new_thread(done.release, ())
                code = 0 if done.acquire(timeout=5) else 8
                grandchild = os.fork()
                if grandchild == 0:
                    os._exit(0)
                if os.waitpid(grandchild, 0)[1] != 0:
                    code = 7
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    reasons = {
        3: "the seccomp filter was refused",
        4: "unshare still allowed under the seccomp filter",
        9: "memfd_create still allowed under the seccomp filter",
    }
    return None if code == 0 else reasons.get(code, f"the seccomp filter broke the test ({code})")


def _fresh_proc_problem() -> str | None:
    """Why a session process could not mount a proc of its own (None: it can), tried in throwaway children.

    The child stands in for the intermediate of Zygote._spawn, its child for S (pid 1 of a new pid
    namespace in a mount namespace of its own); both vanish with their namespaces.
    """
    read_r, write_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_r)
        try:
            unshare(CLONE_NEWNS | CLONE_NEWPID)
            grandchild = os.fork()
            if grandchild == 0:
                try:
                    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                except BaseException as exc:  # noqa: BLE001 - reported through the pipe
                    os.write(write_w, f"{exc}".encode())
                os._exit(0)
            os.waitpid(grandchild, 0)
        except BaseException as exc:  # noqa: BLE001
            os.write(write_w, f"{exc}".encode())
        os._exit(0)
    os.close(write_w)
    with os.fdopen(read_r, "rb") as handle:
        problem = handle.read().decode(errors="replace")
    os.waitpid(child, 0)
    return problem or None


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


# ---------------------------------------------------------------------------------------------------------
# S: one session (one program, many tests)


class Limits:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.wall_time_s = float(raw.get("wall_time_s", 4.0))
        cpu = raw.get("cpu_time_s")
        self.cpu_time_s = float(cpu) if cpu is not None else self.wall_time_s
        self.memory_mb = int(raw.get("memory_mb", 512))
        self.max_processes = int(raw.get("max_processes", 16))
        self.max_output_bytes = int(raw.get("max_output_bytes", 8 << 20))
        self.max_open_files = int(raw.get("max_open_files", 64))
        self.max_file_bytes = int(raw.get("max_file_bytes", 16 << 20))


class _Child:
    """A forked test process and our ends of its pipes."""

    def __init__(
        self, pid: int, stdin_fd: int, go_w: int, out_r: int, err_r: int, res_r: int, ok_r: int
    ) -> None:
        self.pid = pid
        self.stdin_fd = stdin_fd
        self.go_w = go_w
        self.out_r = out_r
        self.err_r = err_r
        self.res_r = res_r
        self.ok_r = ok_r
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None

    def close(self) -> None:
        for fd in (self.stdin_fd, self.go_w, self.out_r, self.err_r, self.res_r, self.ok_r, self.pidfd):
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.stdin_fd = self.go_w = self.out_r = self.err_r = self.res_r = self.ok_r = -1
        self.pidfd = None


class Session:
    """S: holds one program; forks one test process per test.

    The next test's process is forked and set up (uid, rlimits, streams) as soon as a result is sent, so it
    waits, ready, for its input while the host reads the result and sends the next test. A spare S (see
    Zygote._serve_with_spares) sets itself up before its "open" arrives.
    """

    def __init__(self, iso: Isolation, config: Config, parent: int) -> None:
        self.iso = iso
        self.config = config
        self.parent = parent
        self.code = ""
        self.mode = "stdin"
        self.fn_name: str | None = None
        self.limits = Limits({})
        self.workdir = "/tmp"
        self.compiled: types.CodeType | None = None
        self.static_result: dict[str, Any] | None = None  # every test's result when compilation failed
        self.nproc_extra = 0
        self.spare: _Child | None = None
        self.rfd, self.wfd = 0, 1  # the protocol (moved off 0-2 by _set_up_streams)
        self.streams: tuple[Any, Any, Any] = (sys.stdin, sys.stdout, sys.stderr)

    # -- lifetime --

    def main(self, message: dict[str, Any] | None, go_r: int) -> NoReturn:
        """Serve the session `message` opens; without one (a spare), first wait on go_r for the protocol."""
        setup_error: str | None = None
        try:
            self._setup()
        except BaseException as exc:  # noqa: BLE001 - an infrastructure failure, reported on "open"
            setup_error = f"session setup failed: {type(exc).__name__}: {exc}"
        if message is None:
            message = self._wait_for_open(go_r)
        elif go_r >= 0:
            os.close(go_r)
        if setup_error is not None:
            self._fail(setup_error)
        try:
            self._load(message)
            write_frame(self.wfd, {"op": "opened", "compile_error": self._compile()})
            self._refill()
        except BaseException as exc:  # noqa: BLE001 - an infrastructure failure
            self._fail(f"session setup failed: {type(exc).__name__}: {exc}")
        while True:
            try:
                message = read_frame(self.rfd)
            except (OSError, ValueError, EOFError) as exc:
                self._fail(f"bad request: {exc}")
            if message is None or message["op"] == "close":
                self._cleanup()
                os._exit(0)
            if message["op"] != "run":
                self._fail(f"unexpected op {message['op']!r} in a session")
            try:
                result = self._run(message)
                write_frame(self.wfd, {"op": "result", **result})
                self._refill()
            except BaseException as exc:  # noqa: BLE001
                self._fail(f"test failed to run: {type(exc).__name__}: {exc}")

    def _wait_for_open(self, go_r: int) -> dict[str, Any]:
        """A spare: wait to be handed the protocol, answer requests until an "open" (returned)."""
        go = os.read(go_r, 1)
        os.close(go_r)
        if not go:
            os._exit(EXIT_END_OF_INPUT)  # the zygote is gone
        while True:
            try:
                message = read_frame(self.rfd)
            except (OSError, ValueError, EOFError) as exc:
                self._fail(f"bad request: {exc}")
            if message is None:
                os._exit(EXIT_END_OF_INPUT)
            if message["op"] == "open":
                return message
            answer_idle(self.iso, message, self.wfd)

    def _load(self, message: dict[str, Any]) -> None:
        program = message.get("program") or {}
        self.code = str(program.get("code", ""))
        self.mode = str(program.get("mode", "stdin"))
        fn_name = program.get("fn_name")
        self.fn_name = str(fn_name) if fn_name else None
        self.limits = Limits(message.get("limits") or {})

    def _fail(self, message: str) -> NoReturn:
        try:
            write_frame(self.wfd, {"op": "error", "message": message})
            self._drop_spare()
            self._sweep()
        finally:
            os._exit(EXIT_REPORTED)

    def _setup(self) -> None:
        if self.iso.pid_ns:
            # We are pid 1 of the session's pid namespace, in a mount namespace of our own.
            if self.iso.proc:
                mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            mount(
                "tmpfs",
                "/tmp",
                "tmpfs",
                MS_NOSUID | MS_NODEV | MS_NOEXEC,
                f"size={self.config.workdir_mb}m,nr_inodes=16384,mode=0700",
            )
            self.workdir = "/tmp"
        else:
            die_with_parent(self.parent)
            prctl(PR_SET_CHILD_SUBREAPER, 1)
            import tempfile

            self.workdir = tempfile.mkdtemp(prefix="sandbox-session-", dir=self.config.work_root)
        set_non_dumpable()
        if self.iso.test_uid is not None:
            os.chown(
                self.workdir, self.iso.test_uid, self.iso.test_gid if self.iso.test_gid is not None else -1
            )
        else:
            # The test shares our uid, and RLIMIT_NPROC counts every process of a uid (per user namespace):
            # in ours the setup process, the zygote and this one (and with spares the next session process
            # and, while it starts, its intermediate); without namespaces all of the host's.
            if self.iso.pid_ns:
                self.nproc_extra = 5 if self.config.spare_session else 3
            else:
                self.nproc_extra = _count_processes_of(os.getuid())
        # What every test process starts with, set here once so that forking inherits it.
        os.environ.clear()
        os.environ.update(
            {
                "PATH": TEST_PATH,
                "HOME": self.workdir,
                "TMPDIR": self.workdir,
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
            }
        )
        sys.path[:] = [p for p in sys.path if p and os.path.exists(p)]
        sys.argv[:] = ["solution.py"]
        os.chdir(self.workdir)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as python has it (writes past RLIMIT_FSIZE fail)
        self._set_up_streams()

    def _set_up_streams(self) -> None:
        """Make the tests' sys.stdin/stdout/stderr here, once, so that no test process pays for it.

        The protocol moves off fds 0-2; in their place go files of the kinds the tests will have (a memfd for
        stdin, pipes for stdout and stderr), on which the three stream objects are opened. Each test process
        then only puts its own files on fds 0-2 and takes these pristine objects (its own copies, by fork).
        """
        self.rfd = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 10)
        self.wfd = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 10)
        placeholder_in = os.memfd_create("stdin", os.MFD_CLOEXEC)
        placeholder_r, placeholder_w = os.pipe()
        os.dup2(placeholder_in, 0)
        os.dup2(placeholder_w, 1)
        os.dup2(placeholder_w, 2)
        for fd in (placeholder_in, placeholder_r, placeholder_w):
            os.close(fd)
        self.streams = (
            open(0, encoding="utf-8", errors="surrogateescape", closefd=False),
            open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False),
            open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1),
        )

    def _cleanup(self) -> None:
        self._drop_spare()
        self._sweep()
        self._kill_test_uid()
        if not self.iso.mount_ns:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)

    def _refill(self) -> None:
        if self.spare is None and self.static_result is None:
            self.spare = self._fork(probe=False)

    def _drop_spare(self) -> None:
        if self.spare is not None:
            self.spare.close()  # it reads end of file instead of a test, and exits
            self.spare = None

    # -- compilation --

    def _compile(self) -> str | None:
        if self.mode == "call" and not self.fn_name:
            self.static_result = _static("runtime_error", "call mode needs fn_name\n", exit_code=1)
            return "call mode needs fn_name"
        # Compile once in a limited child first: a pathological source must not take this process down.
        # It sends back the code object (marshal), so that a huge source is compiled once, within the test's
        # limits, and never again here outside any deadline.
        probe = self._execute(self._fork(probe=True), b"", None, probe=True)
        compiled = probe.pop("compiled", None)
        if probe["outcome"] != "ok":
            self.static_result = probe
            return str(probe["stderr_tail"] or probe["outcome"])
        try:
            self.compiled = marshal.loads(compiled) if compiled is not None else None
        except (EOFError, ValueError, TypeError):
            self.compiled = None
        if not isinstance(self.compiled, types.CodeType):
            self.compiled = compile(self.code, "<solution>", "exec", dont_inherit=True)
        # Tracebacks of the solution show its lines.
        linecache.cache["<solution>"] = (len(self.code), None, self.code.splitlines(True), "<solution>")
        return None

    # -- one test --

    def _run(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.static_result is not None:
            return dict(self.static_result)
        stdin = str(message.get("stdin") or "").encode("utf-8", "surrogatepass")
        args = message.get("args")
        if args is not None and not isinstance(args, list):
            raise ValueError("args must be a list")
        child, self.spare = self.spare or self._fork(probe=False), None
        return self._execute(child, stdin, args, probe=False)

    def _kill_everything(self, pid: int) -> None:
        if self.iso.pid_ns:
            try:
                os.kill(-1, signal.SIGKILL)  # as the namespace's init: every other process in it
            except ProcessLookupError:
                pass
            return
        for target in (-pid, pid):
            try:
                os.kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _sweep(self) -> None:
        """Kill and reap everything the tests left behind; raise if something survives."""
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        while not reap_all():
            if time.monotonic() > deadline:
                raise RuntimeError("processes of the test survive SIGKILL")
            if self.iso.pid_ns:
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                for child in children_of_self():
                    for target in (-child, child):
                        try:
                            os.kill(target, signal.SIGKILL)
                        except (ProcessLookupError, PermissionError):
                            pass
            time.sleep(0.0005)

    def _kill_test_uid(self) -> None:
        """Without a pid namespace: kill(-1) as the test uid reaches exactly the processes of that uid."""
        if self.iso.pid_ns or self.iso.test_uid is None or os.geteuid() != 0:
            return
        helper = os.fork()
        if helper == 0:
            try:
                gid = self.iso.test_gid if self.iso.test_gid is not None else self.iso.test_uid
                os.setresgid(gid, gid, gid)
                os.setresuid(self.iso.test_uid, self.iso.test_uid, self.iso.test_uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:  # noqa: BLE001, S110
                pass
            os._exit(0)
        os.waitpid(helper, 0)

    def _fork(self, *, probe: bool) -> _Child:
        gc.freeze()  # the child's collections then leave our objects (and their memory pages) alone
        stdin_fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        ok_r, ok_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            self._child(stdin_fd, go_r, out_w, err_w, res_w, ok_w, probe)
        for fd in (go_r, out_w, err_w, res_w, ok_w):
            os.close(fd)
        return _Child(pid, stdin_fd, go_w, out_r, err_r, res_r, ok_r)

    def _execute(self, child: _Child, stdin: bytes, args: list[Any] | None, *, probe: bool) -> dict[str, Any]:
        """Hand a test to a forked child, enforce the deadline and the output cap, and judge the outcome."""
        try:
            return self._watch(child, stdin, args, probe)
        finally:
            child.close()

    def _watch(self, child: _Child, stdin: bytes, args: list[Any] | None, probe: bool) -> dict[str, Any]:
        limits = self.limits
        write_all(child.stdin_fd, stdin)
        os.lseek(child.stdin_fd, 0, os.SEEK_SET)
        go = (
            b"G"
            if args is None
            else b"A" + json.dumps(args, ensure_ascii=False).encode("utf-8", "surrogatepass")
        )
        cgroup = self.config.cgroup
        oom_kills_before = cgroup.oom_kills() if cgroup is not None else None
        # A cgroup of the test's own is read while it runs (see _over_budget).
        watched = cgroup is not None and (cgroup.cpu_fd is not None or not cgroup.shared)
        cpu_before = self._tree_cpu_s()
        start = time.monotonic()
        next_check = start + CGROUP_CHECK_S
        try:
            write_all(child.go_w, go)
        except BrokenPipeError:
            pass  # it died during its set-up: judged below
        os.close(child.go_w)
        child.go_w = -1
        pid = child.pid
        readers = {
            child.out_r: bytearray(),
            child.err_r: bytearray(),
            child.res_r: bytearray(),
            child.ok_r: bytearray(),
        }
        poller = select.poll()
        for fd in readers:
            os.set_blocking(fd, False)
            poller.register(fd, select.POLLIN)
        if child.pidfd is not None:
            poller.register(child.pidfd, select.POLLIN)
        open_fds = set(readers)
        deadline = start + limits.wall_time_s
        killed: str | None = None
        exited = False
        status = 0
        end = start
        output_bytes = 0
        drain_deadline = 0.0
        while not exited or open_fds:
            now = time.monotonic()
            if not exited and killed is None and now >= deadline:
                killed = "timeout"
                self._kill_everything(pid)
            if not exited and killed is None and watched and now >= next_check:
                next_check = now + CGROUP_CHECK_S
                killed = self._over_budget(cpu_before, oom_kills_before)
                if killed is not None:
                    self._kill_everything(pid)
            if exited and now >= drain_deadline:
                break  # something we cannot kill holds a pipe; give up on it
            wait_s = (drain_deadline if exited else (deadline if killed is None else now + 0.05)) - now
            if watched and not exited and killed is None:
                wait_s = min(wait_s, next_check - now)
            if child.pidfd is None and not exited:
                wait_s = min(wait_s, 0.002)
            events = poller.poll(max(0, math.ceil(wait_s * 1000)))
            if child.pidfd is None and not exited:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    events.append((-1, select.POLLIN))
            for fd, _ in events:
                if fd == child.pidfd or fd == -1:
                    if fd == child.pidfd:
                        _, status = os.waitpid(pid, 0)
                        poller.unregister(fd)
                    end = time.monotonic()
                    exited = True
                    drain_deadline = end + 2.0
                    self._sweep()  # anything still running dies now, so every pipe reaches EOF
                    continue
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                buffer = readers[fd]
                if fd in (child.out_r, child.err_r):
                    output_bytes += len(data)
                    if output_bytes > limits.max_output_bytes:
                        if killed is None:
                            killed = "output_limit"
                            self._kill_everything(pid)
                        continue
                    buffer += data
                    if fd == child.err_r and len(buffer) > 8 * STDERR_TAIL_BYTES:
                        del buffer[:-STDERR_TAIL_BYTES]
                elif len(buffer) <= (MAX_FRAME_BYTES if probe else limits.max_output_bytes + 16):
                    buffer += data  # (the probe's channel carries the compiled program)
                elif killed is None:
                    killed = "output_limit"
                    self._kill_everything(pid)
        # Everything the test started has been reaped by now (swept at its exit).
        cpu_s = self._tree_cpu_s() - cpu_before
        oom_kills = None
        if oom_kills_before is not None and cgroup is not None:
            oom_kills = (cgroup.oom_kills() or 0) - oom_kills_before
        return self._verdict(
            status,
            cpu_s,
            oom_kills,
            killed,
            end - start,
            readers[child.out_r],
            readers[child.err_r],
            bytes(readers[child.res_r]),
            bytes(readers[child.ok_r]),
            probe,
        )

    def _over_budget(self, cpu_before: float, oom_kills_before: int | None) -> str | None:
        """While a test runs, from its own cgroup: "timeout" once all its processes together have used its
        CPU time (RLIMIT_CPU counts one process), "memory" once the OOM killer took any of them (the whole
        test then goes, as cgroup v2's memory.oom.group would have it); else None."""
        cgroup = self.config.cgroup
        assert cgroup is not None
        if cgroup.cpu_fd is not None and self._tree_cpu_s() - cpu_before >= self.limits.cpu_time_s:
            return "timeout"
        if (
            oom_kills_before is not None
            and not cgroup.shared
            and (cgroup.oom_kills() or 0) > oom_kills_before
        ):
            return "memory"
        return None

    def _tree_cpu_s(self) -> float:
        """CPU seconds used so far by the tests' processes: the test cgroup's count, live; else what the
        reaped children used (every process a test starts is reaped by this one, its init or subreaper)."""
        cgroup = self.config.cgroup
        if cgroup is not None and cgroup.cpu_fd is not None:
            used = cgroup.cpu_seconds()
            if used is not None:
                return used
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return float(usage.ru_utime + usage.ru_stime)

    def _verdict(
        self,
        status: int,
        cpu_s: float,
        oom_kills: int | None,
        killed: str | None,
        wall_s: float,
        out: bytearray,
        err: bytearray,
        res: bytes,
        ok: bytes,
        probe: bool,
    ) -> dict[str, Any]:
        """Judge what the test did. `certain` is False when something outside the program (a neighbour's
        load or memory) may have caused the outcome: the caller should neither cache nor trust it blindly."""
        code = os.waitstatus_to_exitcode(status)
        exit_code = code if code >= 0 else None
        sig = -code if code < 0 else None
        expect_result = self.mode == "call" and not probe
        stderr_tail = bytes(err[-STDERR_TAIL_BYTES:]).decode("utf-8", "replace")
        records = _parse_records(res)
        result_json: str | None = None
        exception = ""
        compiled: bytes | None = None
        if records is not None:
            results = [body for tag, body in records if tag == b"R"]
            exceptions = [body for tag, body in records if tag == b"E"]
            if len(results) == 1:
                result_json = results[0].decode("utf-8", "surrogatepass")
            if exceptions:
                exception = exceptions[-1].decode("utf-8", "replace")
            if probe:
                compiled = next((body for tag, body in records if tag == b"C"), None)
        if killed is None and ok != b"k":
            # The harness died before the solution could run: that is our failure, not the program's.
            raise RuntimeError(f"test process setup failed ({_describe_exit(code)}): {stderr_tail.strip()}")
        memory_hint = exception == "MemoryError" or any(
            marker in stderr_tail for marker in ("MemoryError", "Cannot allocate memory", "out of memory")
        )
        cgroup = self.config.cgroup
        failed = sig is not None or exit_code != 0
        certain = True
        if killed == "output_limit":
            outcome = killed
        elif oom_kills and (failed or killed is not None):
            outcome = "memory"  # the OOM killer took a process of the test's cgroup
            certain = cgroup is not None and not cgroup.shared
        elif killed == "timeout":
            outcome = "timeout"
            # Out of wall time with CPU time to spare: sleeping, blocked, or starved by others' load.
            certain = cpu_s >= self.limits.cpu_time_s
        elif sig == signal.SIGXCPU or cpu_s >= self.limits.cpu_time_s:
            outcome = "timeout"  # the time limit is on CPU time, of all its processes together
        elif failed:
            outcome = "memory" if memory_hint else "runtime_error"
            if sig == signal.SIGKILL and not memory_hint and oom_kills is None:
                certain = False  # a kill we did not send, and no way to tell whether the OOM killer sent it
        elif expect_result and result_json is None:
            outcome = (
                "runtime_error"  # exited without returning (os._exit, sys.exit) or a forged result channel
            )
        else:
            outcome = "ok"
        return {
            "outcome": outcome,
            "stdout": bytes(out).decode("utf-8", "replace"),
            "stderr_tail": stderr_tail,
            "result_json": result_json if outcome == "ok" and expect_result else None,
            "exit_code": exit_code,
            "signal": sig,
            "wall_time_s": round(wall_s, 6),
            "cpu_time_s": round(cpu_s, 6),
            "certain": certain,
            **({"compiled": compiled} if probe else {}),
        }

    # -- G: the test process --

    def _child(
        self,
        stdin_fd: int,
        go_r: int,
        out_w: int,
        err_w: int,
        res_w: int,
        ok_w: int,
        probe: bool,
        _exit: Callable[[int], NoReturn] = os._exit,
    ) -> NoReturn:
        """Set up, wait for the go (fd 5), report "k" on fd 4, then run the solution. Never returns."""
        try:
            if self.config.cgroup is not None:
                self.config.cgroup.join()  # (while still privileged: the runner's root may move it)
            self._raise_oom_score()
            os.setsid()
            # Out of the way first, so that no dup2 below overwrites a source it still needs.
            high = [
                fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64)
                for fd in (stdin_fd, out_w, err_w, res_w, ok_w, go_r)
            ]
            for target, fd in enumerate(high):
                os.dup2(fd, target, inheritable=target < 3)
            os.closerange(6, 1 << 20)
            self._limit()
            self._drop_privileges()
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            if self.iso.seccomp_program is not None:
                install_filter(self.iso.seccomp_program)
            if not self.iso.pid_ns:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # (after the uid switch, which clears it)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # (the rest are as python has them)
            sys.stdin = sys.__stdin__ = self.streams[0]  # type: ignore[misc]
            sys.stdout = sys.__stdout__ = self.streams[1]  # type: ignore[misc]
            sys.stderr = sys.__stderr__ = self.streams[2]  # type: ignore[misc]
            go = bytearray()
            while chunk := os.read(5, 1 << 16):
                go += chunk
            os.close(5)
            if not go:
                os._exit(0)  # the session ended before this spare was needed
            args = json.loads(bytes(go[1:]).decode("utf-8", "surrogatepass")) if go[:1] == b"A" else None
            os.write(4, b"k")  # set up: from here on, whatever happens is the solution's doing
            os.close(4)
        except BaseException:  # noqa: BLE001
            os._exit(EXIT_SETUP_FAILED)
        status = 1
        try:
            if probe:
                status = _probe_compile(self.code)
            else:
                assert self.compiled is not None
                status = _harness(self.compiled, self.mode, self.fn_name, args)
        finally:
            _exit(status)  # whatever the solution raised or patched, this process ends here

    def _raise_oom_score(self) -> None:
        """Make this test process the OOM killer's first choice: never the runner, a neighbour or the server.

        Anyone may raise their own score. Without a /proc inside, through the outer one the zygote kept.
        """
        directory = self.iso.outer_proc_fd
        path = "self/oom_score_adj" if directory is not None else "/proc/self/oom_score_adj"
        # A non-dumpable process's /proc files belong to the host's root, out of reach of our user namespace:
        # dumpable for the moment of the open (only the runner's own processes share our uid meanwhile).
        prctl(PR_SET_DUMPABLE, 1)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC, dir_fd=directory)
        except OSError:
            return  # no /proc at all: the score stays as inherited
        finally:
            set_non_dumpable()
        try:
            os.write(fd, OOM_SCORE_ADJ_TEST)
        finally:
            os.close(fd)

    def _limit(self) -> None:
        limits = self.limits
        cpu = max(1, math.ceil(limits.cpu_time_s))
        memory = limits.memory_mb * (1 << 20)  # the interpreter's own ~20 MiB included, as the caller expects
        for which, value in (
            (resource.RLIMIT_AS, memory),
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_NOFILE, limits.max_open_files),
            (resource.RLIMIT_FSIZE, limits.max_file_bytes),
            (resource.RLIMIT_NPROC, limits.max_processes + self.nproc_extra),
            (resource.RLIMIT_CORE, 0),
        ):
            soft, hard = value if isinstance(value, tuple) else (value, value)
            resource.setrlimit(which, (soft, hard))

    def _drop_privileges(self) -> None:
        iso = self.iso
        if iso.test_uid is not None:
            gid = iso.test_gid if iso.test_gid is not None else iso.test_uid
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(iso.test_uid, iso.test_uid, iso.test_uid)
        elif iso.drop_caps:
            drop_capabilities()


def _static(outcome: str, stderr: str, exit_code: int | None = None) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "stdout": "",
        "stderr_tail": stderr[-STDERR_TAIL_BYTES:],
        "result_json": None,
        "exit_code": exit_code,
        "signal": None,
        "wall_time_s": 0.0,
        "cpu_time_s": 0.0,
        "certain": True,
    }


def _count_processes_of(uid: int) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _parse_records(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """The result channel: records of tag (1 byte: b"R" result, b"E" exception name, b"C" compiled code),
    length (4 bytes), body. None if malformed."""
    records: list[tuple[bytes, bytes]] = []
    at = 0
    while at < len(data):
        if at + 5 > len(data):
            return None
        tag = data[at : at + 1]
        (size,) = struct.unpack(">I", data[at + 1 : at + 5])
        if tag not in (b"R", b"E", b"C") or at + 5 + size > len(data):
            return None
        records.append((tag, data[at + 5 : at + 5 + size]))
        at += 5 + size
    return records


# ---------------------------------------------------------------------------------------------------------
# Inside G: the harness around the solution. Everything it relies on is bound before the solution runs.


def _probe_compile(code: str) -> int:
    """Compile the solution; send the code object back (record b"C") so that the session never compiles it."""
    try:
        compiled = compile(code, "<solution>", "exec", dont_inherit=True)
        _record(b"C", marshal.dumps(compiled))
    except BaseException:  # noqa: BLE001 - SyntaxError, MemoryError, RecursionError, ValueError (NUL bytes)
        _print_exception(sys.stderr)
        return 1
    return 0


# The harness binds what it uses as default arguments: a solution that patches builtins or the json, sys,
# os or traceback modules in its own process does not change how its result is reported. (It could still
# report anything it likes by writing to fd 3 itself: but expected outputs never enter the sandbox, so
# forging a result is no easier than returning it, and the comparison happens outside.)


def _print_exception(
    stream: Any,
    _exc_info: Any = sys.exc_info,
    _format: Any = traceback.format_exception,
    _here: str = __file__,
    _join: Any = "".join,
) -> None:
    """The traceback of the exception being handled, without the harness's own frames."""
    try:
        exc_type, exc, tb = _exc_info()
        while tb is not None and tb.tb_frame.f_code.co_filename == _here:
            tb = tb.tb_next
        stream.write(_join(_format(exc_type, exc, tb)))
        stream.flush()
    except BaseException:  # noqa: BLE001, S110
        pass


def _exit_code(exc: SystemExit, _isinstance: Any = isinstance, _bool: Any = bool, _int: Any = int) -> int:
    """The exit status python gives an uncaught SystemExit."""
    code = exc.code
    if code is None:
        return 0
    if _isinstance(code, _int) and not _isinstance(code, _bool):
        return int(code) & 0xFF
    try:
        sys.stderr.write(f"{code}\n")
    except BaseException:  # noqa: BLE001, S110
        pass
    return 1


def _record(
    tag: bytes, body: bytes, _write: Any = os.write, _pack: Any = struct.pack, _memoryview: Any = memoryview
) -> None:
    """One record (tag, length, body) on the result channel, fd 3."""
    view = _memoryview(tag + _pack(">I", len(body)) + body)
    while view:
        view = view[_write(3, view) :]


def _find_function(
    namespace: dict[str, Any],
    name: str,
    _callable: Any = callable,
    _isinstance: Any = isinstance,
    _type: Any = type,
    _hasattr: Any = hasattr,
    _getattr: Any = getattr,
    _NameError: Any = NameError,
) -> Any:
    """`name` at module level, else as a method of an instance of `class Solution` (LeetCode style)."""
    function = namespace.get(name)
    if _callable(function) and not _isinstance(function, _type):
        return function
    cls: Any = namespace.get("Solution")
    if _isinstance(cls, _type) and _hasattr(cls, name):
        return _getattr(cls(), name)
    raise _NameError(f"no function {name!r} at module level or in class Solution")


def _make_json_encoder(
    _isinstance: Any = isinstance,
    _type: Any = type,
    _getattr: Any = getattr,
    _int_repr: Any = int.__repr__,
    _float_repr: Any = float.__repr__,
    _isfinite: Any = math.isfinite,
    _escape: Any = json.encoder.encode_basestring,
    _join: Any = ",".join,
    _list_iter: Any = list.__iter__,
    _tuple_iter: Any = tuple.__iter__,
    _items: Any = dict.items,
    _TypeError: Any = TypeError,
    _ValueError: Any = ValueError,
) -> Any:
    """A JSON encoder built from the values themselves, never from their (overridable) methods."""

    def number(item: Any) -> str | None:
        if _isinstance(item, bool):
            return "true" if item else "false"
        if _isinstance(item, int):
            return str(_int_repr(item))
        if _isinstance(item, float):
            if not _isfinite(item):
                raise _ValueError(f"the result holds a non-finite float {_float_repr(item)}")
            return str(_float_repr(item))
        return None

    def key(item: Any) -> str:
        if _isinstance(item, str):
            return str(_escape(item))
        if item is None:
            return '"null"'
        text = number(item)
        if text is None:
            raise _TypeError(f"a dict key of type {_type(item).__name__} is not JSON")
        return '"' + text + '"'

    def encode(item: Any) -> str:
        if item is None:
            return "null"
        if _isinstance(item, str):
            return str(_escape(item))
        text = number(item)
        if text is not None:
            return text
        if _isinstance(item, list):
            return "[" + str(_join([encode(x) for x in _list_iter(item)])) + "]"
        if _isinstance(item, tuple):
            return "[" + str(_join([encode(x) for x in _tuple_iter(item)])) + "]"
        if _isinstance(item, dict):
            return "{" + str(_join([key(k) + ":" + encode(v) for k, v in _items(item)])) + "}"
        kind = _type(item)
        if _getattr(kind, "__module__", "") == "numpy" and _getattr(item, "tolist", None) is not None:
            return encode(item.tolist())  # numpy scalars and arrays
        raise _TypeError(
            f"the result of type {kind.__name__} is not JSON (None, bool, int, float, str, list, tuple, dict)"
        )

    return encode


_to_json = _make_json_encoder()
_to_json.__doc__ = """The return value as JSON text, tuples as lists.

Only None, bool, int, float, str, list, tuple and dict (keys str, int, float, bool or None, turned into
strings as json.dumps does) qualify; a subclass counts as its base type, so an overridden __eq__, __iter__
or __str__ changes nothing; numpy scalars and arrays become their Python values. Anything else raises
TypeError (the test is then a runtime_error), as does a non-finite float or a cycle (RecursionError).
"""


def _harness(
    code: types.CodeType,
    mode: str,
    fn_name: str | None,
    args: list[Any] | None,
    _record: Any = _record,
    _to_json: Any = _to_json,
    _find_function: Any = _find_function,
    _print_exception: Any = _print_exception,
    _exit_code: Any = _exit_code,
    _exec: Any = exec,
    _type: Any = type,
    _modules: Any = sys.modules,
    _run_exitfuncs: Any = atexit._run_exitfuncs,
    _SystemExit: Any = SystemExit,
    _BaseException: Any = BaseException,
) -> int:
    """Run the solution as `python solution.py` would; return its exit status. Inside G only."""
    stdout = sys.stdout
    stderr = sys.stderr
    ballast = bytearray(1 << 14)  # freed on an exception, so that a MemoryError can still be reported
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    module.__dict__["__file__"] = "solution.py"
    _modules["__main__"] = module
    status = 0
    try:
        _exec(code, module.__dict__)
        if mode == "call":
            function = _find_function(module.__dict__, fn_name or "")
            value = function(*(args or []))
            _record(b"R", _to_json(value).encode("utf-8", "surrogatepass"))
        threading = _modules.get("threading")
        if threading is not None:
            threading._shutdown()  # wait for non-daemon threads, as python does at exit
    except _SystemExit as exc:
        status = _exit_code(exc)
    except _BaseException as exc:  # noqa: BLE001 - the program's own failure
        del ballast
        try:
            _record(b"E", _type(exc).__name__.encode("utf-8", "replace"))
        except _BaseException:  # noqa: BLE001, S110
            pass
        _print_exception(stderr)
        status = 1
    try:
        _run_exitfuncs()
    except _BaseException:  # noqa: BLE001, S110
        pass
    for stream in (sys.stdout, stdout):
        try:
            stream.flush()
        except _BaseException:  # noqa: BLE001
            status = status or 120  # what python does when stdout cannot be flushed at exit
    try:
        sys.stderr.flush()
    except _BaseException:  # noqa: BLE001, S110
        pass
    return int(status)


if __name__ == "__main__":
    runner_main()
