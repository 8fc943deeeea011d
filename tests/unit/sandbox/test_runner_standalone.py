"""The runner folder on its own, spoken to over its pipes as the Docker backend does, at each level."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.runner import __main__ as entry
from sandbox.runner import isolation, linux, protocol

RUNNER_DIR = os.path.dirname(protocol.__file__)  # run as `python <folder>`, as both backends do

ROOT_ONLY = pytest.mark.skipif(not isolation.real_root(), reason="needs real root")


_NOT_SOURCE = shutil.ignore_patterns("__pycache__")


class Runner:
    def __init__(
        self, config: dict[str, Any], argv_prefix: tuple[str, ...] = (), python: str = sys.executable
    ) -> None:
        script = RUNNER_DIR
        self.copy: str | None = None
        if argv_prefix:  # run as another user: from a copy it may read (the checkout may be private)
            self.copy = tempfile.mkdtemp(prefix="runner-")
            os.chmod(self.copy, 0o755)
            script = shutil.copytree(RUNNER_DIR, os.path.join(self.copy, "runner"), ignore=_NOT_SOURCE)
            os.chmod(script, 0o755)
            for name in os.listdir(script):
                os.chmod(os.path.join(script, name), 0o644)
        self.process = subprocess.Popen(
            [*argv_prefix, python, "-I", "-S", "-B", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            start_new_session=True,
        )
        try:
            self.ready = self.request({"op": "hello", "version": 1, "config": config})
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Kill the runner (if it still runs), close its streams, remove the copy of it."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        if self.copy is not None:
            shutil.rmtree(self.copy, ignore_errors=True)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(protocol.encode_frame(message))
        self.process.stdin.flush()
        header = self.process.stdout.read(4)
        assert len(header) == 4, f"the runner ended ({self.process.poll()})"
        (size,) = struct.unpack(">I", header)
        return protocol.decode_frame_body(self.process.stdout.read(size))

    def run(self, code: str, stdin: str = "", **limits: Any) -> dict[str, Any]:
        opened = self.request({"op": "open", "program": {"code": code}, "limits": limits})
        assert opened["op"] == "opened", opened
        result = self.request({"op": "run", "stdin": stdin})
        assert self.request({"op": "close"}) == {"op": "closed"}
        return result

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=10) == 0
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def start() -> Iterator[Any]:
    started: list[Runner] = []

    def make(config: dict[str, Any], **kwargs: Any) -> Runner:
        started.append(Runner(config, **kwargs))
        return started[-1]

    yield make
    for item in started:
        item.discard()


_BASE = random.randrange(1_200_000_000, 1_300_000_000, 2)  # apart from any other test run on this host
UIDS = {"runner_uid": _BASE, "test_uid": _BASE + 1}
KILL_ALL = "import os\nos.system('kill -9 -1')\nprint('alive')"
FORK_BOMB = "import os\nwhile True:\n    os.fork()"


def check_level(box: Runner, *, expect_uid: int | None) -> None:
    ok = box.run("print(sum(map(int, input().split())))", "1 2\n")
    assert (ok["outcome"], ok["stdout"]) == ("ok", "3\n")
    bomb = box.run(FORK_BOMB, wall_time_s=3, max_processes=8)
    assert bomb["outcome"] in ("runtime_error", "timeout")
    killed = box.run(KILL_ALL)
    assert killed["outcome"] == "runtime_error" and killed["signal"] == 9  # it killed itself, and only itself
    assert box.run("print('next')")["stdout"] == "next\n"
    if expect_uid is not None:
        assert box.run("import os\nprint(os.getuid())")["stdout"] == f"{expect_uid}\n"
    assert box.request({"op": "ping"}) == {"op": "pong"}
    box.close()


@ROOT_ONLY
def test_userns_level(start: Any) -> None:
    box = start({**UIDS, "levels": ["userns"]})
    assert box.ready["isolation"]["level"] == "userns", box.ready
    assert box.ready["isolation"]["nested_userns_blocked"]
    check_level(box, expect_uid=isolation.TEST_ID_IN_NS)


@ROOT_ONLY
def test_namespaces_level_without_a_user_namespace(start: Any) -> None:
    box = start({**UIDS, "levels": ["namespaces"]})
    assert box.ready["isolation"]["level"] == "namespaces", box.ready
    assert "user" not in box.ready["isolation"]["namespaces"]
    check_level(box, expect_uid=UIDS["test_uid"])


@ROOT_ONLY
def test_none_level_as_root_switches_uid(start: Any) -> None:
    box = start({**UIDS, "levels": ["none"]})
    assert box.ready["isolation"]["level"] == "none"
    info = box.ready["isolation"]
    # This machine's Python may live where the test uid cannot read it (e.g. /root/.pyenv): then only the
    # modules the runner already imported are usable, and the runner says so.
    assert info["uid_switch"], info
    check_level(box, expect_uid=UIDS["test_uid"])  # (its programs import only what the runner has)


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3") or not isolation.real_root(), reason="needs root")
def test_unprivileged_runner_uses_a_user_namespace_of_its_own(start: Any) -> None:
    # An ordinary user (nobody) with the system interpreter: one uid to map, so the tests keep uid 0 of
    # the namespace with every capability dropped; still no way to kill the runner or exceed NPROC.
    prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    box = start({"namespaces": "auto"}, argv_prefix=prefix, python="/usr/bin/python3")
    info = box.ready["isolation"]
    if info["level"] != "userns-unprivileged":
        pytest.skip(f"unprivileged user namespaces are refused here: {info['warnings']}")
    assert info["capabilities_dropped"]
    caps = box.run("print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    assert caps["stdout"] == "0000000000000000\n"
    check_level(box, expect_uid=0)


# What a solution needs from the system, checked where the sandbox has no /proc inside. (The child is `sh`,
# not sys.executable: a venv under /tmp, e.g. a CI clone there, is hidden by the session's own /tmp.)
ORDINARY_PROGRAM = (
    "import json, os, subprocess, sys, threading\n"
    "found = []\n"
    "thread = threading.Thread(target=lambda: found.append(sum(range(10))))\n"
    "thread.start()\n"
    "thread.join()\n"
    "sys.setrecursionlimit(100000)\n"
    "deep = lambda n: 0 if n == 0 else 1 + deep(n - 1)\n"
    "child = subprocess.run(['sh', '-c', 'echo child'], capture_output=True, text=True)\n"
    "print(json.dumps({'proc': os.listdir('/proc'), 'cpus': os.cpu_count(), 'thread': found,\n"
    "                  'deep': deep(20000), 'child': [child.returncode, child.stdout.strip()],\n"
    "                  'pid': os.getpid()}))\n"
)


def check_without_proc(box: Runner, reason: str) -> None:
    info = box.ready["isolation"]
    assert not info["proc"] and reason in info["no_proc_reason"], info
    assert f"no /proc inside ({info['no_proc_reason']})" in box.ready["summary"]
    run = box.run(ORDINARY_PROGRAM, wall_time_s=20, memory_mb=1024)
    assert run["outcome"] == "ok", run
    seen = json.loads(run["stdout"])
    cpus = os.cpu_count()
    assert seen == {
        "proc": [],  # an empty directory: nothing of the host's processes
        "cpus": cpus,
        "thread": [45],
        "deep": 20000,
        "child": [0, "child"],
        "pid": seen["pid"],
    }, seen
    assert seen["pid"] < 10  # in the session's own pid namespace


@ROOT_ONLY
def test_userns_level_without_proc(start: Any) -> None:
    # The outer /proc, bound before the user namespace was made, is locked there: covered, not unmounted.
    box = start({**UIDS, "levels": ["userns"], "mount_proc": "off"})
    assert box.ready["isolation"]["level"] == "userns", box.ready
    assert box.ready["isolation"]["namespaces"] == ["user", "pid", "net", "mount", "ipc", "uts"]
    check_without_proc(box, "mount_proc=off")
    check_level(box, expect_uid=isolation.TEST_ID_IN_NS)  # fork bomb and kill -9 -1 swept without /proc


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3") or not isolation.real_root(), reason="needs root")
def test_unprivileged_runner_without_proc(start: Any) -> None:
    # The level a Docker worker gets under Docker's /proc masks (there the fresh proc mount is refused).
    prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    box = start({"namespaces": "require", "mount_proc": "off"}, argv_prefix=prefix, python="/usr/bin/python3")
    if box.ready["op"] == "error":
        pytest.skip(f"unprivileged user namespaces are refused here: {box.ready['message']}")
    assert box.ready["isolation"]["level"] == "userns-unprivileged", box.ready
    check_without_proc(box, "mount_proc=off")
    check_level(box, expect_uid=0)  # capabilities dropped without /proc/sys/kernel/cap_last_cap


FILTER_PROBE = (
    "import ctypes, os, subprocess, sys, threading\n"
    "from sandbox.runner import linux\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "if os.geteuid() == 0:  # a mount namespace of its own: a broken filter must not mount on the host\n"
    "    linux.unshare(linux.CLONE_NEWNS)\n"
    "    linux.mount(None, '/', None, linux.MS_REC | linux.MS_PRIVATE)\n"
    "linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)\n"
    "linux.install_filter(linux.solution_filter(block_namespaces={block}))\n"
    "def errno_of(ret):\n"
    "    return ctypes.get_errno() if ret == -1 else 0\n"
    "refused = [errno_of(libc.shmget(0, 1 << 20, 0o1600)), errno_of(libc.semget(0, 1, 0o1600)),\n"
    "           errno_of(libc.msgget(0, 0o1600)), errno_of(libc.memfd_create(b'x', 0)),\n"
    "           errno_of(libc.shmat(0, None, 0))]\n"
    "if {block}:  # (never without the filter: as root these would change this very host)\n"
    "    refused += [errno_of(libc.unshare(linux.CLONE_NEWUSER)),\n"
    "                errno_of(libc.unshare(linux.CLONE_NEWNET)),\n"
    "                errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)), errno_of(libc.setns(0, 0)),\n"
    "                errno_of(libc.syscall(435, None, 0))]  # clone3: ENOSYS, so libc falls back to clone\n"
    "thread = threading.Thread(target=print, args=('thread',))\n"
    "thread.start()\n"
    "thread.join()\n"
    "print(refused, subprocess.run(['true']).returncode, os.waitpid(os.fork() or os._exit(0), 0)[1])\n"
)


@pytest.mark.parametrize("block_namespaces", [True, False])
def test_solution_filter_refuses_hidden_memory_and_namespaces(block_namespaces: bool) -> None:
    """Every test runs under this filter: SysV IPC and memfds (memory in no process's RSS) are refused;
    namespaces and mounts too where max_user_namespaces cannot be set (Docker's read-only /proc/sys)."""
    if linux.solution_filter(block_namespaces) is None:
        pytest.skip(f"no filter for {os.uname().machine}")
    import errno

    done = subprocess.run(
        [sys.executable, "-c", FILTER_PROBE.format(block=block_namespaces)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    expected = [errno.EPERM] * 5 + ([errno.EPERM] * 4 + [errno.ENOSYS] if block_namespaces else [])
    assert done.stdout == f"thread\n{expected} 0 0\n", done.stdout + done.stderr


KERNEL_SURFACE_PROBE = (
    "import ctypes\n"
    "from sandbox.runner import linux\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)\n"
    "linux.install_filter(linux.solution_filter(block_namespaces=False))\n"
    "attr = ctypes.create_string_buffer(128)\n"
    "calls = [('add_key', 248, (b'user', b'k', b'v', 1, -4)), ('keyctl', 250, (0, -4, 0)),\n"
    "         ('io_uring_setup', 425, (8, attr)), ('bpf', 321, (0, attr, 128)),\n"
    "         ('perf_event_open', 298, (attr, 0, -1, -1, 0)), ('userfaultfd', 323, (0,)),\n"
    "         ('ptrace', 101, (0, 0, 0, 0))]  # PTRACE_TRACEME\n"
    "print([(name, ctypes.get_errno() if libc.syscall(n, *args) == -1 else 0) for name, n, args in calls])\n"
)


def test_solution_filter_refuses_kernel_surface_no_solution_needs() -> None:
    """Keyrings (a uid's keys outlive its session), io_uring, bpf, perf_event_open, userfaultfd and ptrace
    (PTRACE_TRACEME would make the session process the test's tracer) are refused with EPERM."""
    if os.uname().machine != "x86_64" or linux.solution_filter(False) is None:
        pytest.skip("the probe uses x86_64 syscall numbers")
    import errno

    done = subprocess.run(
        [sys.executable, "-c", KERNEL_SURFACE_PROBE], capture_output=True, text=True, timeout=30, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    names = ["add_key", "keyctl", "io_uring_setup", "bpf", "perf_event_open", "userfaultfd", "ptrace"]
    assert done.stdout == f"{[(name, errno.EPERM) for name in names]}\n", done.stdout + done.stderr


def test_a_test_that_made_the_session_its_tracer_is_waited_for_until_it_exits() -> None:
    """Where no filter refuses PTRACE_TRACEME, the session process is reported each ptrace-stop of its test:
    those are not exits (os.waitstatus_to_exitcode would raise, and the session fail as an infrastructure
    error)."""
    import ctypes
    import signal
    import time

    from sandbox.runner.session import _wait_for_exit

    child = os.fork()
    if child == 0:
        try:
            ctypes.CDLL(None).ptrace(0, 0, 0, 0)  # PTRACE_TRACEME: the parent, this test, is its tracer
            os.kill(os.getpid(), signal.SIGUSR1)  # a ptrace-stop (its delivery waits for the tracer)
        finally:
            os._exit(0)
    try:
        for _ in range(100):
            time.sleep(0.01)
            assert _wait_for_exit(child, os.WNOHANG) == (0, 0)  # stopped, not exited
    finally:
        os.kill(child, signal.SIGKILL)
    _, status = _wait_for_exit(child, 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL


def test_require_fails_loudly_when_no_level_works(start: Any) -> None:
    box = start({"levels": ["userns", "no-such-level"], "namespaces": "require"})  # userns lacks its uids
    assert box.ready["op"] == "error"
    assert "no isolation could be set up" in box.ready["message"]


def test_bad_requests_are_errors(start: Any) -> None:
    box = start({"namespaces": "off"})
    assert box.request({"op": "run", "stdin": ""})["op"] == "error"  # outside a session
    assert box.request({"op": "ping"}) == {"op": "pong"}


SEEN_BY_A_TEST = (
    "import json, sys\n"
    "print(json.dumps([sorted(name for name in sys.modules if name.startswith('runner')), sys.path]))"
)


@pytest.mark.parametrize("namespaces", ["auto", "off"])
def test_every_module_is_loaded_before_isolation(start: Any, namespaces: str) -> None:
    # Inside the sandbox the runner's folder is out of sight (new root) or of reach (the tests' uid): each
    # of its modules must have been imported by the entry point before, never on first use. Neither the
    # folder nor its parent stays on sys.path (at level none they would still exist).
    box = start({**UIDS, "namespaces": namespaces})  # auto: the best level this machine allows
    run = box.run(SEEN_BY_A_TEST)
    assert run["outcome"] == "ok", run
    modules, path = json.loads(run["stdout"])
    assert modules == sorted(["runner", *(f"runner.{name}" for name in entry.MODULES)])
    assert not {RUNNER_DIR, os.path.dirname(RUNNER_DIR)} & set(path), path
    box.close()
