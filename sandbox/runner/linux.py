"""Linux system calls the runner needs (through libc and ctypes), its seccomp filter, and process helpers.

Standard library only. Everything here is a thin wrapper: raising OSError with the call's name on failure.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
# fsconfig, fsmount, mount_setattr); the calls always refused: those that hold memory outside every process
# (SysV shmget, shmat, semget, msgget; memfd_create, memfd_secret), then those whose state outlives the
# session or that open kernel surface no solution needs (add_key, request_key, keyctl: a uid's keyring
# outlives its session, so a later session of the slot could read it; io_uring_setup, io_uring_enter,
# io_uring_register; bpf; perf_event_open; userfaultfd), and ptrace (PTRACE_TRACEME would make the
# session process the tracer of a test, which then stops at every signal it gets); clone; clone3.
_X86_64_NAMESPACE_CALLS = (272, 308, 165, 166, 155, 428, 429, 430, 431, 432, 442)
_AARCH64_NAMESPACE_CALLS = (97, 268, 40, 39, 41, 428, 429, 430, 431, 432, 442)
_X86_64_REFUSED_CALLS = (29, 30, 64, 68, 319, 447) + (248, 249, 250, 425, 426, 427, 321, 298, 323, 101)
_AARCH64_REFUSED_CALLS = (194, 196, 190, 186, 279, 447) + (217, 218, 219, 425, 426, 427, 280, 241, 282, 117)
SECCOMP_ARCH = {
    "x86_64": (0xC000003E, _X86_64_NAMESPACE_CALLS, _X86_64_REFUSED_CALLS, 56, 435),
    "aarch64": (0xC00000B7, _AARCH64_NAMESPACE_CALLS, _AARCH64_REFUSED_CALLS, 220, 435),
    "arm64": (0xC00000B7, _AARCH64_NAMESPACE_CALLS, _AARCH64_REFUSED_CALLS, 220, 435),
}
CLONE_NEW_ANY = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

_libc = ctypes.CDLL(None, use_errno=True)


# ---------------------------------------------------------------------------------------------------------
# System calls


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


def syscall_numbers() -> tuple[int, int] | None:
    return SYSCALLS.get(_machine())


def pivot_root(new_root: str, put_old: str) -> None:
    numbers = syscall_numbers()
    if numbers is None:
        raise OSError(f"pivot_root: unknown syscall number on {_machine()}")
    ret = _libc.syscall(ctypes.c_long(numbers[0]), _bytes(new_root), _bytes(put_old))
    _errcheck(ret, "pivot_root")


def drop_capabilities() -> None:
    """Drop every capability for good (for a test that keeps uid 0 inside a user namespace)."""
    numbers = syscall_numbers()
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
    (the server, a neighbour) instead of the program holding it. It also refuses the kernel keyrings (a
    uid's keys outlive the session: a note for the next session of the slot), io_uring, bpf,
    perf_event_open and userfaultfd (kernel surface, often exploited), and ptrace (PTRACE_TRACEME makes
    the session process a test's tracer). Competitive-programming solutions never need any of these.
    With `block_namespaces` it also refuses new namespaces and mounts, for tests where the kernel would
    let them make user namespaces and the runner could not forbid that with
    max_user_namespaces (read-only /proc/sys in Docker): clone3 then gets ENOSYS (its flags sit in memory,
    out of a filter's reach), so libc falls back to clone, whose flags are checked. x32 calls are refused
    and a foreign architecture is killed. Everything else is allowed: a container's own profile still
    applies beneath.
    """
    spec = SECCOMP_ARCH.get(_machine())
    if spec is None:
        return None
    arch, namespace_calls, refused_calls, clone, clone3 = spec
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
    denied = refused_calls + (namespace_calls if block_namespaces else ())
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


# ---------------------------------------------------------------------------------------------------------
# Processes


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


def describe_exit(code: int) -> str:
    """A child's exit (os.waitstatus_to_exitcode) in words."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"
