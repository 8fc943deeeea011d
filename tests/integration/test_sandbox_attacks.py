"""Adversarial programs against the sandbox: one attack per test, each written as a wrong solution.

Each program's only way to "pass" is to break out: it prints the secret (the expected output of the test)
if it manages to get it from outside the sandbox, and "WRONG" otherwise. After every attack we check that
the attack did not pass, that the host is untouched, that nothing it started is still running, and that
the sandbox still serves the next session.

The tests take a `sandbox` fixture parametrized over the backends: the process backend twice, with a /proc
of its own per session and without any /proc inside (SANDBOX_MOUNT_PROC=off, the level a Docker worker gets
under Docker's /proc masks); the Docker backend adds its own param (marked `docker`) to `BACKENDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.runners.base import Sandbox
from sandbox.runners.process import HOST_OOM_SCORE_ADJ, ProcessSandbox
from sandbox.schemas import Limits, Outcome, Program, TestInput, TestRun
from sandbox.settings import SandboxSettings

SandboxFactory = Callable[[], Sandbox]


def _process_sandbox() -> Sandbox:
    return ProcessSandbox(SandboxSettings(slots=2))


def _process_sandbox_without_proc() -> Sandbox:
    return ProcessSandbox(SandboxSettings(slots=2, mount_proc="off"))


# The Docker backend (tests marked `docker`): its image is read at import, as the autouse fixture of
# tests/conftest.py clears SANDBOX_* while a test runs.
DOCKER_IMAGE = os.environ.get("SANDBOX_DOCKER_IMAGE", "iarl/sandbox:latest")


def _docker_sandbox() -> Sandbox:
    from sandbox.runners.docker import DockerSandbox

    return DockerSandbox(SandboxSettings(docker_image=DOCKER_IMAGE, docker_pool_size=2))


BACKENDS = [
    pytest.param(_process_sandbox, id="process"),
    pytest.param(_process_sandbox_without_proc, id="process-no-proc"),
    pytest.param(_docker_sandbox, id="docker", marks=pytest.mark.docker),
]


@pytest.fixture(params=BACKENDS)
def sandbox_factory(request: pytest.FixtureRequest) -> SandboxFactory:
    factory: SandboxFactory = request.param
    return factory


@pytest.fixture
async def sandbox(sandbox_factory: SandboxFactory) -> AsyncIterator[Sandbox]:
    box = sandbox_factory()
    await box.start()
    yield box
    try:
        await assert_still_serves(box)
        assert_no_strays(box)
    finally:
        await box.close()


def needs_namespaces(box: Sandbox) -> None:
    """Filesystem, network and process-visibility attacks need namespaces in the process backend."""
    if isinstance(box, ProcessSandbox) and not box.isolation_info.get("namespaces"):
        pytest.skip(f"the process sandbox runs without namespaces here: {box.isolation}")


def uid_of_their_own(box: Sandbox) -> bool:
    """Whether tests run under a uid that no process of the runner has."""
    return bool(getattr(box, "isolation_info", {}).get("uid_switch"))


def memory_bounded_as_a_whole(box: Sandbox) -> bool:
    """Whether a cgroup counts all of a session's memory: the process backend's own per-slot cgroups, or a
    Docker container (one session at a time)."""
    if isinstance(box, ProcessSandbox):
        return bool((box.isolation_info.get("cgroup") or {}).get("joined"))
    return True


# -- checks after every attack --


def _host_processes() -> Iterator[tuple[int, int, int, str]]:
    """(pid, ppid, real uid, comm) of every process on the host."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
            uid = os.stat(f"/proc/{name}").st_uid
        except OSError:
            continue
        comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode(errors="replace")
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        yield int(name), ppid, uid, comm


def stray_processes(box: Sandbox) -> list[str]:
    """Processes a finished session left behind.

    For the process backend: beyond each runner's own 2 (setup process and zygote) and, with namespaces and
    spare sessions, 2 session processes that no program ran in yet (the one now reading requests and the
    spare behind it); a process a test left would be a descendant of these, and runs as a test uid.
    """
    if not isinstance(box, ProcessSandbox):
        return []
    own = 4 if box.settings.spare_session and box.isolation_info.get("namespaces") else 2
    processes = list(_host_processes())
    children: dict[int, list[int]] = {}
    for pid, ppid, _, _ in processes:
        children.setdefault(ppid, []).append(pid)
    strays = []
    for runner in box.runners:
        if runner.process is None or runner.broken:
            continue
        tree, todo = [], [runner.process.pid]
        while todo:
            kids = children.get(todo.pop(), [])
            tree.extend(kids)
            todo.extend(kids)
        if len(tree) > own:
            strays.append(f"runner {runner.index} has {len(tree)} descendants: {tree}")
    base = box.uid_base  # a block of uids this sandbox holds alone on the host
    assert base is not None
    test_uids = {base + 2 * i + 1 for i in range(box.settings.slots)}
    strays += [_describe(pid) for pid, _, uid, _ in processes if uid in test_uids]
    return strays


def _describe(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pidns = os.readlink(f"/proc/{pid}/ns/pid")
        name, state, ppid = fields["Name"].strip(), fields["State"].strip(), fields["PPid"].strip()
        return f"pid {pid} {name} state {state} ppid {ppid} uid {fields['Uid'].split()[0]} {pidns}"
    except OSError:
        return f"pid {pid} (gone)"


def assert_no_strays(box: Sandbox) -> None:
    for _ in range(50):  # the kernel may need a moment to reap a namespace
        strays = stray_processes(box)
        if not strays:
            return
        import time

        time.sleep(0.02)
    raise AssertionError(f"left running: {strays}")


async def assert_still_serves(box: Sandbox) -> None:
    run = await run_program(box, "print(sum(map(int, input().split())))", "2 3\n")
    assert (run.outcome, run.stdout) == (Outcome.OK, "5\n"), run


async def run_program(box: Sandbox, code: str, stdin: str = "", **limits: Any) -> TestRun:
    async with box.session(Program(code=code), Limits(**limits)) as session:
        return await session.run(TestInput(stdin=stdin))


def assert_not_passed(run: TestRun, secret: str) -> None:
    """The attack is a wrong solution: it must not come out as a pass with the right answer."""
    assert not (run.outcome is Outcome.OK and secret in run.stdout), run
    assert secret not in run.stdout, run
    assert secret not in (run.result_json or ""), run


@pytest.fixture
def secret() -> str:
    return f"SECRET-{uuid.uuid4().hex}"


@pytest.fixture
def public_file() -> Iterator[Path]:
    """A world-readable file directly in the host's /tmp (not in pytest's private tmp dir)."""
    fd, name = tempfile.mkstemp(prefix="sbx-expected-output-", suffix=".txt", dir="/tmp")
    os.close(fd)
    path = Path(name)
    path.chmod(0o644)
    yield path
    path.unlink(missing_ok=True)


# -- resource exhaustion --


async def test_fork_bomb(sandbox: Sandbox, secret: str) -> None:
    code = (
        "import os, time\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "def alive(pid):\n"
        "    try:\n"
        "        os.kill(pid, 0)\n"
        "    except PermissionError:\n"
        "        return True\n"
        "    except OSError:\n"
        "        return False\n"
        "    return True\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "pids = pids or [p for p in range(1, 1 << 15) if alive(p)]  # (without /proc)\n"
        "print(len(pids), flush=True)\n"
        "time.sleep(60)\n"
    )
    run = await run_program(sandbox, code, max_processes=16, wall_time_s=3)
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.TIMEOUT
    counts = [int(line) for line in run.stdout.split()]
    # The session's init may be visible too; in a Docker container the runner's own four processes are.
    visible_extra = 4 if sandbox.name == "docker" else 1
    assert counts and max(counts) <= 16 + visible_extra
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still fork


async def test_thread_bomb(sandbox: Sandbox, secret: str) -> None:
    code = (
        "import threading, time\n"
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "        n += 1\n"
        "except RuntimeError:\n"
        "    print(n, flush=True)\n"
        "time.sleep(60)\n"
    )
    run = await run_program(sandbox, code, max_processes=16, wall_time_s=3, memory_mb=1024)
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.TIMEOUT
    # 15 threads beside the main one; one more where tests share the runner's uid (the runner's own
    # processes are counted in with a margin for the one it starts briefly between sessions).
    assert 0 < int(run.stdout) < (16 if uid_of_their_own(sandbox) else 17)


async def test_memory_bomb(sandbox: Sandbox, secret: str) -> None:
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 2**20))\n"
    run = await run_program(sandbox, code, memory_mb=256, wall_time_s=10)
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.MEMORY


async def test_memory_bomb_in_many_processes(sandbox: Sandbox, secret: str) -> None:
    code = (
        "import os, time\n"
        "for _ in range(3):\n"
        "    os.fork()\n"
        "try:\n"
        "    blocks = [bytearray(16 * 2**20) for _ in range(100)]\n"
        "except MemoryError:\n"
        "    print('capped', flush=True)\n"
        "time.sleep(60)\n"
    )
    run = await run_program(sandbox, code, memory_mb=128, wall_time_s=3)
    assert_not_passed(run, secret)
    if memory_bounded_as_a_whole(sandbox):
        assert run.outcome is Outcome.MEMORY, run  # 8 x 128 MiB do not fit in one program's cgroup
        assert run.certain
    else:
        assert run.outcome is Outcome.TIMEOUT
        assert run.stdout.split() == ["capped"] * 8  # each process stops at its own address-space limit


async def test_output_flood(sandbox: Sandbox, secret: str) -> None:
    code = "import sys\nwhile True:\n    sys.stdout.write('W' * 65536)\n"
    run = await run_program(sandbox, code, max_output_bytes=1 << 20, wall_time_s=10)
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.OUTPUT_LIMIT
    assert len(run.stdout) <= 1 << 20


async def test_sleep_forever(sandbox: Sandbox, secret: str) -> None:
    run = await run_program(sandbox, "import time\ntime.sleep(10**6)", wall_time_s=1)
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.TIMEOUT
    assert run.wall_time_s < 3


async def test_sigterm_ignored(sandbox: Sandbox, secret: str) -> None:
    code = (
        "import signal\n"
        "for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):\n"
        "    signal.signal(sig, signal.SIG_IGN)\n"
        "while True:\n"
        "    pass\n"
    )
    run = await run_program(sandbox, code, wall_time_s=1)
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.TIMEOUT


async def test_double_fork_orphan_does_not_survive(sandbox: Sandbox, secret: str) -> None:
    marker = f"orph{uuid.uuid4().hex[:10]}"
    code = (
        "import ctypes, os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        ctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)  # PR_SET_NAME\n"
        "        time.sleep(600)\n"
        "    os._exit(0)\n"
        "time.sleep(0.3)\n"
        "print('WRONG')\n"
    )
    run = await run_program(sandbox, code, wall_time_s=5)
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.OK and run.stdout == "WRONG\n"
    await asyncio.sleep(0.1)
    assert not [p for p in _host_processes() if p[3] == marker], "the orphan outlived its test"


async def test_disk_fill(sandbox: Sandbox, secret: str) -> None:
    before = shutil.disk_usage("/").used
    code = (
        "import os\n"
        "n = 0\n"
        "for where in ('.', '/tmp', '/var/tmp', '/dev/shm', os.path.expanduser('~')):\n"
        "    try:\n"
        "        for i in range(1000):\n"
        "            with open(os.path.join(where, f'fill{n}'), 'wb') as f:\n"
        "                f.write(b'x' * 2**20 * 8)\n"
        "            n += 8\n"
        "    except OSError as exc:\n"
        "        print(where, type(exc).__name__)\n"
        "print('WRONG', n)\n"
    )
    run = await run_program(sandbox, code, wall_time_s=20, max_file_bytes=8 << 20)
    assert_not_passed(run, secret)
    written_mb = int(run.stdout.split()[-1])
    assert written_mb <= 128, run.stdout  # the session's work dir is a small tmpfs (64 MiB by default)
    assert shutil.disk_usage("/").used - before < 64 << 20


async def test_fd_exhaustion(sandbox: Sandbox, secret: str) -> None:
    code = (
        "import os\nfds = []\n"
        "try:\n    while True:\n        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
        "except OSError:\n    pass\n"
        "try:\n    while True:\n        fds.extend(os.pipe())\nexcept OSError:\n    pass\n"
        "print('WRONG', len(fds))\n"
    )
    run = await run_program(sandbox, code, max_open_files=64)
    assert_not_passed(run, secret)
    assert int(run.stdout.split()[1]) <= 64


async def test_segfault(sandbox: Sandbox, secret: str) -> None:
    run = await run_program(sandbox, "import ctypes\nctypes.string_at(0)")
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.RUNTIME_ERROR
    assert run.signal == 11


# -- reaching outside --


async def test_network_to_a_loopback_port_of_the_host(sandbox: Sandbox, secret: str) -> None:
    needs_namespaces(sandbox)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    abstract = f"\0sbx-{uuid.uuid4().hex}"
    unix_server = socket.socket(socket.AF_UNIX)
    unix_server.bind(abstract)
    unix_server.listen()
    unix_server.setblocking(False)

    async def serve(listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            with conn:
                await loop.sock_sendall(conn, secret.encode() + b"\n")

    servers = [asyncio.create_task(serve(server)), asyncio.create_task(serve(unix_server))]
    code = (
        "import socket\n"
        "def grab(family, address):\n"
        "    try:\n"
        "        with socket.socket(family) as s:\n"
        "            s.settimeout(2)\n"
        "            s.connect(address)\n"
        "            return s.recv(100).decode()\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
        f"print(grab(socket.AF_INET, ('127.0.0.1', {port})))\n"
        f"print(grab(socket.AF_INET, ('localhost', {port})))\n"
        f"print(grab(socket.AF_UNIX, {abstract!r}))\n"
        "print(grab(socket.AF_INET, ('1.1.1.1', 53)))\n"
        "print('WRONG')\n"
    )
    try:
        run = await run_program(sandbox, code, wall_time_s=10)
    finally:
        for task in servers:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*servers)
        server.close()
        unix_server.close()
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.OK, run
    assert run.stdout.endswith("WRONG\n")


async def test_writing_or_deleting_host_files(
    sandbox: Sandbox, secret: str, tmp_path: Path, public_file: Path
) -> None:
    needs_namespaces(sandbox)
    private = tmp_path / "host-file.txt"
    private.write_text("original")
    public_file.write_text("original")
    tmp_path.chmod(0o755)  # even where the host's permissions would let anyone in
    tmp_path.parent.chmod(0o755)
    created = Path("/tmp") / f"sbx-created-{uuid.uuid4().hex}"
    targets = [
        str(private),
        str(public_file),
        "/etc/passwd",
        "/usr/bin/python3",
        str(created),
        f"/etc/sbx-created-{uuid.uuid4().hex}",
        str(Path.cwd() / "sbx-created"),
    ]
    code = (
        "import os\n"
        f"targets = {targets!r}\n"
        "for path in targets:\n"
        "    for attempt in (lambda: open(path, 'a').write('PWNED'), lambda: os.unlink(path),\n"
        "                    lambda: os.chmod(path, 0o777), lambda: os.rename(path, path + '.moved')):\n"
        "        try:\n"
        "            attempt()\n"
        "            print('did', path)\n"
        "        except OSError:\n"
        "            pass\n"
        "os.system('mount -o remount,rw / 2>/dev/null; touch /sbx-root-touch 2>/dev/null')\n"
        "print('WRONG')\n"
    )
    try:
        run = await run_program(sandbox, code, wall_time_s=10)
    finally:
        tmp_path.parent.chmod(0o700)
    assert_not_passed(run, secret)
    assert private.read_text() == "original"
    assert public_file.read_text() == "original"
    assert oct(public_file.stat().st_mode & 0o777) == "0o644"
    assert not created.exists() and not Path("/sbx-root-touch").exists()
    assert not (Path.cwd() / "sbx-created").exists()
    for path in targets:
        assert not Path(path + ".moved").exists()
    # What it managed to change lives in its own private copies (its tmpfs), never on the host.
    assert "did /etc" not in run.stdout and "did /usr" not in run.stdout


async def test_reading_the_servers_environment(
    sandbox_factory: SandboxFactory, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REWARD_API_TOKEN", secret)
    monkeypatch.setenv("SBX_TEST_SECRET", secret)
    box = sandbox_factory()
    await box.start()  # started with the secret in its own environment
    try:
        code = (
            "import os\n"
            "found = [v for v in os.environ.values()]\n"
            "for pid in os.listdir('/proc'):\n"
            "    for name in ('environ', 'cmdline'):\n"
            "        try:\n"
            "            found.append(open(f'/proc/{pid}/{name}', 'rb').read().decode(errors='replace'))\n"
            "        except OSError:\n"
            "            pass\n"
            "print(''.join(found) if any('SECRET-' in f for f in found) else 'WRONG')\n"
        )
        run = await run_program(box, code)
        assert_not_passed(run, secret)
        assert run.stdout == "WRONG\n"
        await assert_still_serves(box)
        assert_no_strays(box)
    finally:
        await box.close()


async def test_searching_the_filesystem_for_the_expected_output(
    sandbox: Sandbox, secret: str, public_file: Path
) -> None:
    needs_namespaces(sandbox)
    public_file.write_text(secret + "\n")  # world-readable on the host, by name easy to find
    var_tmp = Path("/var/tmp") / public_file.name
    var_tmp.write_text(secret + "\n")
    var_tmp.chmod(0o644)
    code = (
        "import os\n"
        "hits = []\n"
        "for root in ('/',):\n"
        "    for top, dirs, files in os.walk(root):\n"
        "        if top in ('/proc', '/sys'):\n"
        "            dirs[:] = []\n"
        "            continue\n"
        "        for name in files:\n"
        "            if name.startswith('sbx-expected-output-'):\n"
        "                try:\n"
        "                    hits.append(open(os.path.join(top, name)).read())\n"
        "                except OSError:\n"
        "                    pass\n"
        "print(''.join(hits) or 'WRONG')\n"
    )
    try:
        run = await run_program(sandbox, code, wall_time_s=60, cpu_time_s=60)
    finally:
        var_tmp.unlink(missing_ok=True)
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.OK, run
    assert run.stdout == "WRONG\n"


async def test_killing_the_server(sandbox: Sandbox, secret: str) -> None:
    code = (
        "import os, signal\n"
        "for target in (os.getppid(), 1, -1, -os.getppid()):\n"
        "    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):\n"
        "        try:\n"
        "            os.kill(target, sig)\n"
        "        except OSError:\n"
        "            pass\n"
        "for pid in range(2, 40000):\n"
        "    if pid != os.getpid():\n"
        "        try:\n"
        "            os.kill(pid, signal.SIGKILL)\n"
        "        except OSError:\n"
        "            pass\n"
        "print('WRONG')\n"
    )
    # Whatever a program does to its own session is its own outcome: never SandboxCrashed (status `error`).
    run = await run_program(sandbox, code, wall_time_s=20)
    assert_not_passed(run, secret)
    assert run.stdout == "WRONG\n" and run.outcome is Outcome.OK
    # `kill -9 -1` reaches every process the test may signal: only its own, itself included.
    run = await run_program(sandbox, "import os\nos.system('kill -9 -1')\nprint('WRONG')")
    assert_not_passed(run, secret)
    assert run.outcome is Outcome.RUNTIME_ERROR and run.signal == 9
    # We are still alive (this test runs), and the sandbox's own processes are checked by the fixture.


async def test_privilege_escalation_attempts_fail(sandbox: Sandbox, secret: str) -> None:
    needs_namespaces(sandbox)
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "did = []\n"
        "for name, attempt in [\n"
        # (a test that is root of its user namespace already gains nothing from setuid(0))
        "    ('setuid', lambda: os.setuid(0) if os.getuid() else 1 / 0),\n"
        "    ('unshare_user', lambda: libc.unshare(0x10000000) == 0 or 1 / 0),\n"
        "    ('unshare_net', lambda: libc.unshare(0x40000000) == 0 or 1 / 0),\n"
        "    ('mount', lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0 or 1 / 0),\n"
        "    ('ptrace_parent', lambda: open(f'/proc/{os.getppid()}/mem', 'rb').read(1)),\n"
        "    ('parent_fds', lambda: os.listdir(f'/proc/{os.getppid()}/fd')),\n"
        "]:\n"
        "    try:\n"
        "        attempt()\n"
        "        did.append(name)\n"
        "    except (OSError, ZeroDivisionError):\n"
        "        pass\n"
        "print('did', *did)\n"
    )
    run = await run_program(sandbox, code)
    assert_not_passed(run, secret)
    assert run.stdout == "did\n", run


# -- fakes of a call's result --


async def call(box: Sandbox, code: str, fn_name: str, *args: Any) -> TestRun:
    async with box.session(Program(code=code, mode="call", fn_name=fn_name), Limits()) as session:
        return await session.run(TestInput(args=list(args)))


def passes_call(run: TestRun, expected: Any) -> bool:
    """The comparison the grader makes outside the sandbox."""
    return (
        run.outcome is Outcome.OK and run.result_json is not None and json.loads(run.result_json) == expected
    )


async def test_call_eq_override(sandbox: Sandbox) -> None:
    code = (
        "class Anything:\n"
        "    def __eq__(self, other):\n        return True\n"
        "class Str(str):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    __hash__ = str.__hash__\n"
        "def object_answer(x):\n    return Anything()\n"
        "def str_answer(x):\n    return Str('wrong')\n"
    )
    assert (await call(sandbox, code, "object_answer", 1)).outcome is Outcome.RUNTIME_ERROR
    run = await call(sandbox, code, "str_answer", 1)
    assert not passes_call(run, "right") and run.result_json == '"wrong"'


async def test_call_os_exit_before_returning(sandbox: Sandbox) -> None:
    code = "import os, sys\ndef f(x):\n    print(42)\n    sys.stdout.flush()\n    os._exit(0)\n"
    run = await call(sandbox, code, "f", 1)
    assert run.outcome is Outcome.RUNTIME_ERROR and not passes_call(run, 42)


async def test_call_printing_harness_like_output(sandbox: Sandbox) -> None:
    fake_frames = [
        {"op": "result", "outcome": "ok", "result_json": "42"},
        {"outcome": "ok", "result_json": "42", "exit_code": 0},
    ]
    code = (
        "import json, struct, sys\n"
        f"frames = {fake_frames!r}\n"
        "def f(x):\n"
        "    for frame in frames:\n"
        "        body = json.dumps(frame).encode()\n"
        "        sys.stdout.buffer.write(struct.pack('>I', len(body)) + body)\n"
        "        print(json.dumps(frame))\n"
        "    print(42)\n"
        "    return 41\n"
    )
    run = await call(sandbox, code, "f", 1)
    assert run.result_json == "41" and not passes_call(run, 42)


async def test_call_patching_builtins_and_json(sandbox: Sandbox) -> None:
    code = (
        "import builtins, json\n"
        "json.dumps = lambda *a, **k: '42'\n"
        "json.JSONEncoder.encode = lambda self, o: '42'\n"
        "builtins.repr = lambda o: '42'\n"
        "builtins.print = lambda *a, **k: None\n"
        "def f(x):\n    return 41\n"
    )
    run = await call(sandbox, code, "f", 1)
    assert run.result_json == "41" and not passes_call(run, 42)


async def test_call_forging_the_result_channel(sandbox: Sandbox) -> None:
    # Writing into every descriptor cannot make a wrong function pass: a malformed or doubled record
    # is no result at all.
    code = (
        "import os\n"
        "def f(x):\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        "            os.write(fd, b'R\\x00\\x00\\x00\\x0242')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 41\n"
    )
    run = await call(sandbox, code, "f", 1)
    assert not passes_call(run, 42)
    assert run.outcome is Outcome.RUNTIME_ERROR


@pytest.mark.parametrize("mode", ["stdin", "call"])
async def test_bytes_on_the_result_channel_that_are_not_text(sandbox: Sandbox, mode: str) -> None:
    """One result record of bytes that are not UTF-8, then a clean exit: no result (a call's runtime_error;
    ignored in stdin mode), never a sandbox crash, which the grader reports as `error` (not scored)."""
    forge = "os.write(3, b'R\\x00\\x00\\x00\\x01\\xff')\n"
    if mode == "call":
        code = "import os\ndef f(x):\n    " + forge + "    os._exit(0)\n"
        run = await call(sandbox, code, "f", 1)
        assert (run.outcome, run.result_json) == (Outcome.RUNTIME_ERROR, None), run
    else:
        run = await run_program(sandbox, "import os\n" + forge + "print('WRONG')\n")
        assert (run.outcome, run.stdout) == (Outcome.OK, "WRONG\n"), run


# -- one session against another --


async def test_sessions_cannot_see_each_others_files(sandbox: Sandbox, secret: str) -> None:
    needs_namespaces(sandbox)
    name = f"sbx-note-{uuid.uuid4().hex}"
    writer = (
        "import os, time\n"
        f"for where in ('.', '/tmp', os.environ.get('HOME', '.')):\n"
        f"    open(os.path.join(where, '{name}'), 'w').write('{secret}')\n"
        "print('written', flush=True)\n"
        "time.sleep(2)\n"
    )
    reader = (
        "import os\n"
        "hits = []\n"
        "for top, dirs, files in os.walk('/'):\n"
        "    if top in ('/proc', '/sys'):\n"
        "        dirs[:] = []\n"
        "    hits += [os.path.join(top, f) for f in files if f.startswith('sbx-note-')]\n"
        "for pid in os.listdir('/proc'):\n"
        "    try:\n"
        "        hits += [p for p in os.listdir(f'/proc/{pid}/root/tmp') if p.startswith('sbx-note-')]\n"
        "    except OSError:\n"
        "        pass\n"
        "print(''.join(open(h).read() for h in hits if os.path.isfile(h)) or 'WRONG')\n"
    )

    async def read_later() -> TestRun:
        await asyncio.sleep(0.7)
        return await run_program(sandbox, reader, wall_time_s=30, cpu_time_s=30)

    written, read = await asyncio.gather(run_program(sandbox, writer, wall_time_s=5), read_later())
    assert written.outcome is Outcome.OK and written.stdout == "written\n"
    assert_not_passed(read, secret)
    assert read.stdout == "WRONG\n"
    after = await run_program(sandbox, reader, wall_time_s=30, cpu_time_s=30)  # and not afterwards
    assert after.stdout == "WRONG\n"


async def test_sessions_cannot_share_sysv_shared_memory(sandbox: Sandbox, secret: str) -> None:
    needs_namespaces(sandbox)
    key = random.randrange(1, 2**30)
    prelude = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.shmat.restype = ctypes.c_void_p\n"
        f"KEY = {key}\n"
    )
    writer = prelude + (
        "seg = libc.shmget(KEY, 4096, 0o1666)  # IPC_CREAT | rw for all\n"
        "if seg < 0:\n"
        "    print('refused', ctypes.get_errno())\n"
        "    raise SystemExit\n"
        "addr = libc.shmat(seg, None, 0)\n"
        f"ctypes.memmove(addr, {secret.encode()!r}, {len(secret)})\n"
        "print('written' if addr not in (None, 2**64 - 1) else 'failed')\n"
    )
    reader = prelude + (
        "seg = libc.shmget(KEY, 0, 0)\n"
        "if seg < 0:\n"
        "    print('WRONG')\n"
        "else:\n"
        f"    print(ctypes.string_at(libc.shmat(seg, None, 0), {len(secret)}).decode())\n"
    )
    written = await run_program(sandbox, writer)
    assert written.stdout == f"refused {errno.EPERM}\n", written  # SysV IPC is off for solutions altogether
    for _ in range(3):  # later sessions, whichever slot they get
        read = await run_program(sandbox, reader)
        assert_not_passed(read, secret)
        assert read.stdout == "WRONG\n", read


# -- a program's failures are the program's: what it does to its session, and memory no limit counted --


@pytest.mark.parametrize("mode", ["stdin", "call"])
async def test_killing_or_stopping_its_parent_is_its_own_failure(sandbox: Sandbox, mode: str) -> None:
    """SIGKILL, SIGTERM or SIGSTOP to its parent, or kill(-1): the program's runtime error (or its own
    timeout), never an infrastructure error; and the slot serves on without being replaced."""
    attacks = [
        "os.kill(os.getppid(), signal.SIGKILL)",
        "os.kill(os.getppid(), signal.SIGTERM)",
        "os.kill(os.getppid(), signal.SIGSTOP)",
        "os.kill(-1, signal.SIGSTOP)",
        "os.kill(-1, signal.SIGKILL)",
    ]
    before = _slot_ids(sandbox)
    for attack in attacks:
        body = f"import os, signal, time\ntry:\n    {attack}\nexcept OSError:\n    pass\ntime.sleep(0.2)\n"
        if mode == "call":
            code = "def f():\n" + "".join(f"    {line}\n" for line in body.splitlines()) + "    return 1\n"
            async with sandbox.session(
                Program(code=code, mode="call", fn_name="f"), Limits(wall_time_s=3)
            ) as s:
                run = await s.run(TestInput(args=[]))
        else:
            run = await run_program(sandbox, body + "print('done')", wall_time_s=3)
        assert run.outcome in (Outcome.OK, Outcome.RUNTIME_ERROR), (attack, run)
    assert (await run_program(sandbox, "print('next')")).stdout == "next\n"
    assert _slot_ids(sandbox) == before  # no runner or container was replaced


def _slot_ids(box: Sandbox) -> list[Any]:
    if isinstance(box, ProcessSandbox):
        return [runner.process.pid if runner.process else None for runner in box.runners]
    return list(getattr(box, "container_ids", []))


HOLD = "import os, sys\nprint('HELD' if held >= want else f'only {held >> 20} MiB', flush=True)\n"


SYSV_HOLD = (
    "import ctypes, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.shmat.restype = ctypes.c_void_p\n"
    "want, held = 256 << 20, 0\n"
    "while held < want:\n"
    "    seg = libc.shmget(0, 32 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT\n"
    "    if seg < 0:\n"
    "        break\n"
    "    addr = libc.shmat(seg, None, 0)\n"
    "    ctypes.memset(addr, 1, 32 << 20)\n"
    "    libc.shmdt(ctypes.c_void_p(addr))\n"
    "    held += 32 << 20\n"
) + HOLD
MEMFD_HOLD = (
    "import os\n"
    "want, held, fds = 256 << 20, 0, []\n"
    "try:\n"
    "    while held < want:\n"
    "        fd = os.memfd_create('x')\n"
    "        os.write(fd, bytes(8 << 20))\n"
    "        fds.append(fd)\n"
    "        held += 8 << 20\n"
    "except OSError as exc:\n"
    "    print(exc)\n"
) + HOLD


async def test_sysv_shared_memory_cannot_hold_memory_outside_the_limits(
    sandbox: Sandbox, secret: str
) -> None:
    """Attach, fill, detach, repeat: segments that no process maps are in nobody's RSS or address space."""
    run = await run_program(sandbox, SYSV_HOLD, memory_mb=64, wall_time_s=10)
    assert_not_passed(run, secret)
    assert "HELD" not in run.stdout, run  # SysV IPC is refused to solutions


async def test_memfds_cannot_hold_memory_outside_the_limits(sandbox: Sandbox, secret: str) -> None:
    run = await run_program(sandbox, MEMFD_HOLD, memory_mb=64, wall_time_s=10, max_open_files=64)
    assert_not_passed(run, secret)
    assert "HELD" not in run.stdout, run


FAN_OUT = (
    "import os, time\n"
    "ready_r, ready_w = os.pipe()\n"
    "children = []\n"
    "for _ in range(7):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        block = bytearray(48 << 20)\n"
    "        for at in range(0, len(block), 4096):\n"
    "            block[at] = 1\n"
    "        os.write(ready_w, b'.')\n"
    "        time.sleep(30)\n"
    "        os._exit(0)\n"
    "    children.append(pid)\n"
    "block = bytearray(48 << 20)\n"
    "for at in range(0, len(block), 4096):\n"
    "    block[at] = 1\n"
    "got = b''\n"
    "while len(got) < 7:\n"
    "    got += os.read(ready_r, 7)\n"
    "print('HELD', flush=True)  # 8 x 48 MiB at once\n"
    "for pid in children:\n"
    "    os.kill(pid, 9)\n"
)


async def test_memory_fanned_out_over_processes_is_one_programs_memory(sandbox: Sandbox, secret: str) -> None:
    """8 processes of 48 MiB each stay under RLIMIT_AS one by one; together they are the program's memory."""
    if not memory_bounded_as_a_whole(sandbox):
        pytest.skip(f"no memory cgroup of the sandbox's own here: {sandbox.isolation}")
    run = await run_program(sandbox, FAN_OUT, memory_mb=96, wall_time_s=20, max_processes=16)
    assert_not_passed(run, secret)
    assert "HELD" not in run.stdout and run.outcome is Outcome.MEMORY and run.certain, run


CPU_HOG = (
    "import os\n"
    "for _ in range(15):\n"
    "    if os.fork() == 0:\n"
    "        os.setsid()  # each in a session of its own\n"
    "        while True:\n"
    "            pass\n"
    "while True:\n"
    "    pass\n"
)
HONEST = "n = 0\nfor i in range(12_000_000):\n    n += i\nprint(n)\n"


async def test_busy_neighbours_do_not_make_a_program_miss_its_time_limit(sandbox: Sandbox) -> None:
    """A program beside 16 busy processes of another: judged on its own CPU time, with a fair CPU share."""
    honest_cpu = await run_program(sandbox, HONEST, wall_time_s=60)  # what it needs alone
    assert honest_cpu.outcome is Outcome.OK
    limit = max(1.0, 2.5 * honest_cpu.cpu_time_s)
    hog = asyncio.create_task(run_program(sandbox, CPU_HOG, wall_time_s=20, max_processes=32))
    await asyncio.sleep(0.3)  # the hog is running
    run = await run_program(sandbox, HONEST, cpu_time_s=limit, wall_time_s=2 * limit + 1)
    hogged = await hog
    assert hogged.outcome is Outcome.TIMEOUT
    if isinstance(sandbox, ProcessSandbox) and not memory_bounded_as_a_whole(sandbox):
        # Without cgroups the share is not guaranteed: a miss may happen, but never as a certain verdict.
        assert run.outcome is Outcome.OK or (run.outcome is Outcome.TIMEOUT and not run.certain), run
    else:
        assert run.outcome is Outcome.OK, (limit, run)


@pytest.mark.parametrize("sandbox_factory", BACKENDS[::2], indirect=False)
async def test_a_huge_program_is_compiled_once_within_its_limits(sandbox_factory: SandboxFactory) -> None:
    """A multi-MB program is compiled in a limited child, under its time limit, and never again outside any
    deadline: with a limit of 1.5 x its compile time it is graded on its merits, not an infrastructure error
    (compiling twice would take 2 x, past the limit plus the protocol's margin)."""
    source = "".join(f"v{i} = {i} * 2 + 1\n" for i in range(200_000)) + "print('ran')\n"
    started = time.process_time()
    compile(source, "<solution>", "exec", dont_inherit=True)
    compile_s = time.process_time() - started
    box = sandbox_factory()
    box.settings.protocol_margin_s = 0.2 * compile_s
    await box.start()
    try:
        run = await run_program(box, source, wall_time_s=1.5 * compile_s + 0.2, memory_mb=1024)
    finally:
        await box.close()
    # On a loaded machine the wall-clock backstop may end it first: an uncertain timeout, never a certain
    # one (graded again, never cached), with no more CPU time than one compile and run.
    if run.outcome is Outcome.TIMEOUT and not run.certain:
        assert run.cpu_time_s < 1.5 * compile_s + 0.2, (compile_s, run)
    else:
        assert run.outcome is Outcome.OK and run.stdout == "ran\n", (compile_s, run)


async def test_tests_are_the_oom_killers_first_choice_and_the_host_its_last(sandbox: Sandbox) -> None:
    if not isinstance(sandbox, ProcessSandbox) or not sandbox.isolation_info.get("proc", True):
        pytest.skip("a program sees no /proc of its own here")
    run = await run_program(sandbox, "print(open('/proc/self/oom_score_adj').read().strip())")
    assert run.stdout == "1000\n", run
    # The host lowers its own where it may (CAP_SYS_RESOURCE; this project's CI machine lacks it).
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    if int(status["CapEff"], 16) & 1 << 24:
        assert int(Path("/proc/self/oom_score_adj").read_text()) == HOST_OOM_SCORE_ADJ


# -- kernel state that outlives a session, and neighbours that talk --

KEYRING = (
    "import ctypes\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "USER_KEYRING = -4  # KEY_SPEC_USER_KEYRING: the uid's, not the process's\n"
)


async def test_sessions_cannot_leave_notes_in_the_kernel_keyring(sandbox: Sandbox, secret: str) -> None:
    """A uid's keyring outlives its processes: a session of the slot could leave a note for the next one."""
    if os.uname().machine != "x86_64":
        pytest.skip("the program below uses x86_64 syscall numbers")
    writer = KEYRING + (
        f"key = libc.syscall(248, b'user', b'note', {secret.encode()!r}, {len(secret)}, USER_KEYRING)\n"
        "print('refused' if key < 0 else 'written')\n"
    )
    reader = KEYRING + (
        "key = libc.syscall(250, 10, USER_KEYRING, b'user', b'note', 0)  # KEYCTL_SEARCH\n"
        "buffer = ctypes.create_string_buffer(200)\n"
        "size = libc.syscall(250, 11, key, buffer, 200) if key >= 0 else -1  # KEYCTL_READ\n"
        "print(buffer.value.decode() if size > 0 else 'WRONG')\n"
    )
    written = await run_program(sandbox, writer)
    assert written.stdout == "refused\n", written  # keyrings are refused to solutions
    for _ in range(3):  # later sessions, whichever slot they get
        read = await run_program(sandbox, reader)
        assert_not_passed(read, secret)
        assert read.stdout == "WRONG\n", read


async def test_kernel_interfaces_no_solution_needs_are_refused(sandbox: Sandbox) -> None:
    """io_uring, bpf, perf_event_open, userfaultfd and the keyrings: kernel surface, refused (the call fails
    and the program goes on: its own outcome)."""
    if os.uname().machine != "x86_64":
        pytest.skip("the program below uses x86_64 syscall numbers")
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "attr = ctypes.create_string_buffer(128)\n"
        "for name, number, args in [\n"
        "    ('io_uring_setup', 425, (8, attr)),\n"
        "    ('bpf', 321, (0, attr, 128)),\n"
        "    ('perf_event_open', 298, (attr, 0, -1, -1, 0)),\n"
        "    ('userfaultfd', 323, (0,)),\n"
        "    ('keyctl', 250, (0, -4, 0)),  # KEYCTL_GET_KEYRING_ID of the user keyring\n"
        "]:\n"
        "    if libc.syscall(number, *args) >= 0:\n"
        "        print('did', name)\n"
        "print('WRONG')\n"
    )
    run = await run_program(sandbox, code)
    assert (run.outcome, run.stdout) == (Outcome.OK, "WRONG\n"), run


async def test_neighbours_cannot_talk_over_abstract_unix_sockets(sandbox: Sandbox, secret: str) -> None:
    """Two sessions at once: an abstract socket (no file to hide) is in the network namespace of one only."""
    needs_namespaces(sandbox)
    name = f"\0sbx-neighbour-{uuid.uuid4().hex}"
    listener = (
        "import socket\n"
        "with socket.socket(socket.AF_UNIX) as server:\n"
        f"    server.bind({name!r})\n"
        "    server.listen()\n"
        "    server.settimeout(3)\n"
        "    print('listening', flush=True)\n"
        "    try:\n"
        "        conn, _ = server.accept()\n"
        f"        conn.sendall({secret.encode()!r})\n"
        "        print('served')\n"
        "    except OSError:\n"
        "        print('nobody came')\n"
    )
    caller = (
        "import socket, time\n"
        "got = ''\n"
        "for _ in range(20):\n"
        "    try:\n"
        "        with socket.socket(socket.AF_UNIX) as s:\n"
        f"            s.connect({name!r})\n"
        "            got = s.recv(200).decode()\n"
        "            break\n"
        "    except OSError:\n"
        "        time.sleep(0.1)\n"
        "print(got or 'WRONG')\n"
    )
    served, called = await asyncio.gather(
        run_program(sandbox, listener, wall_time_s=10), run_program(sandbox, caller, wall_time_s=10)
    )
    assert_not_passed(called, secret)
    assert called.stdout == "WRONG\n", called
    assert served.stdout == "listening\nnobody came\n", served


@pytest.mark.parametrize("mode", ["stdin", "call"])
async def test_making_the_session_its_tracer_is_its_own_outcome(sandbox: Sandbox, mode: str) -> None:
    """PTRACE_TRACEME would make the session process the test's tracer: each signal the test then gets
    stops it and is reported to the session as a stop, which must never become an infrastructure error (a
    policy would learn that `error` is dropped rather than scored). ptrace is refused to solutions; the
    session waits for exits only where it is not (see session._wait_for_exit)."""
    body = (
        "import ctypes, os, signal\n"
        "traced = ctypes.CDLL(None).ptrace(0, 0, 0, 0) == 0  # PTRACE_TRACEME\n"
        "signal.signal(signal.SIGUSR1, lambda *_: None)\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "os.kill(os.getpid(), signal.SIGUSR2)  # (default action: it dies of it)\n"
    )
    if mode == "call":
        code = "def f():\n" + "".join(f"    {line}\n" for line in body.splitlines()) + "    return 1\n"
        async with sandbox.session(Program(code=code, mode="call", fn_name="f"), Limits(wall_time_s=3)) as s:
            run = await s.run(TestInput(args=[]))
    else:
        run = await run_program(sandbox, body, wall_time_s=3)
    # Refused: it dies of SIGUSR2. Elsewhere (no filter) it stays stopped until its deadline.
    assert run.outcome in (Outcome.RUNTIME_ERROR, Outcome.TIMEOUT), run
    if isinstance(sandbox, ProcessSandbox) and sandbox.isolation_info.get("ipc_and_memfd_blocked"):
        assert (run.outcome, run.signal) == (Outcome.RUNTIME_ERROR, signal.SIGUSR2), run


# -- a program's own misbehaviour is classed as its own (never an infrastructure error) --

OWN_FAILURES = [
    # C-stack recursion past the raised limit (lru_cache is C): a segfault, not a sandbox crash.
    pytest.param(
        "import sys, functools\nsys.setrecursionlimit(10**7)\n"
        "@functools.lru_cache(None)\ndef r(n):\n    return 0 if n == 0 else r(n - 1) + 1\nprint(r(10**6))\n",
        {},
        {Outcome.RUNTIME_ERROR},
        id="deep-c-recursion-segfault",
    ),
    # Python-frame recursion with no effective limit: out of time or memory, or Python gives up.
    pytest.param(
        "import sys\nsys.setrecursionlimit(10**8)\ndef r(n):\n    return r(n + 1) + 1\nr(0)\n",
        {"cpu_time_s": 2, "wall_time_s": 6},
        {Outcome.TIMEOUT, Outcome.MEMORY, Outcome.RUNTIME_ERROR},
        id="deep-python-recursion",
    ),
    # Reading past the end of stdin: EOF at once (stdin is a file), never a wait until the deadline.
    pytest.param("print(input())\nprint(input())\n", {}, {Outcome.RUNTIME_ERROR}, id="input-past-eof"),
    pytest.param(
        "import os, sys\nsys.stdin.read()\nassert os.read(0, 10) == b''\nprint('WRONG')\n",
        {},
        {Outcome.OK},
        id="read-after-eof",
    ),
    # Every signal blocked (SIGXCPU included) in a busy loop: its CPU time still ends it.
    pytest.param(
        "import signal\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))\n"
        "while True:\n    pass\n",
        {"cpu_time_s": 1, "wall_time_s": 10},
        {Outcome.TIMEOUT},
        id="signals-blocked",
    ),
    # Its own standard streams closed or swapped: its output is lost, its exit status says so.
    pytest.param("import os\nos.close(1)\nprint('WRONG')\n", {}, {Outcome.RUNTIME_ERROR}, id="stdout-closed"),
    pytest.param(
        "import os\n"
        "for fd in range(64):\n    try:\n        os.close(fd)\n    except OSError:\n        pass\n",
        {},
        {Outcome.OK},
        id="every-fd-closed",
    ),
    pytest.param("import os\nos.dup2(2, 1)\nprint('WRONG')\n", {}, {Outcome.OK}, id="stdout-onto-stderr"),
    # Output that is not text: decoded with U+FFFD, judged as a wrong answer by the grader.
    pytest.param(
        "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe\\x00WRONG')\n", {}, {Outcome.OK}, id="binary-output"
    ),
    # A subreaper of its own whose orphan keeps stdout open: ended with it, not awaited to the deadline.
    pytest.param(
        "import ctypes, os, time\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER\n"
        "if os.fork() == 0:\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "print('WRONG')\n",
        {},
        {Outcome.OK},
        id="subreaper-orphan-holds-stdout",
    ),
    # An argument list or environment past the kernel's limit: exec fails (E2BIG), its own error.
    pytest.param(
        "import os\nos.execv('/bin/true', ['true'] + ['x' * 100_000] * 100)\n",
        {},
        {Outcome.RUNTIME_ERROR},
        id="exec-huge-argv",
    ),
    pytest.param(
        "import os\nos.execve('/bin/true', ['true'], {'A': 'x' * 10**7})\n",
        {"memory_mb": 1024},
        {Outcome.RUNTIME_ERROR},
        id="exec-huge-env",
    ),
    # A non-daemon thread outliving the main one: waited for, as Python does.
    pytest.param(
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('late', flush=True))).start()\n",
        {},
        {Outcome.OK},
        id="thread-outlives-main",
    ),
]


@pytest.mark.parametrize(("code", "limits", "outcomes"), OWN_FAILURES)
async def test_a_programs_own_misbehaviour_is_its_own_outcome(
    sandbox: Sandbox, code: str, limits: dict[str, Any], outcomes: set[Outcome]
) -> None:
    run = await run_program(sandbox, code, **{"wall_time_s": 5, **limits})
    assert run.outcome in outcomes, run
    assert "WRONG" not in run.stdout or run.outcome is Outcome.OK


CALL_EDGES = [
    # A module-level function wins over a method of class Solution of the same name.
    pytest.param(
        "class Solution:\n    def f(self, x):\n        return 1\ndef f(x):\n    return 2\n",
        "2",
        id="fn-over-class",
    ),
    # fn_name naming a class: no function to call.
    pytest.param("class f:\n    def __init__(self, x):\n        pass\n", None, id="fn-is-a-class"),
    # Prints at exit (atexit, __del__) and a thread still running: the returned value stands.
    pytest.param(
        "import atexit\natexit.register(print, 'atexit')\n"
        "class Noisy:\n    def __del__(self):\n        print('del')\nkeep = Noisy()\n"
        "def f(x):\n    return 5\n",
        "5",
        id="prints-at-exit",
    ),
    pytest.param(
        "import atexit, os\natexit.register(os._exit, 0)\ndef f(x):\n    return 5\n",
        "5",
        id="os-exit-at-exit",
    ),
    # The result channel (fd 3) closed or replaced by stdout: no result, its own runtime_error.
    pytest.param("import os\ndef f(x):\n    os.close(3)\n    return 5\n", None, id="result-channel-closed"),
    pytest.param(
        "import os\ndef f(x):\n    os.dup2(1, 3)\n    return 5\n", None, id="result-channel-replaced"
    ),
    # A value with no JSON form (recursion in the encoder): its runtime_error.
    pytest.param(
        "def f(x):\n    a = []\n    for _ in range(10**5):\n        a = [a]\n    return a\n",
        None,
        id="deep-list",
    ),
]


@pytest.mark.parametrize(("code", "result_json"), CALL_EDGES)
async def test_call_mode_edges_are_the_programs_own(
    sandbox: Sandbox, code: str, result_json: str | None
) -> None:
    run = await call(sandbox, code, "f", 1)
    if result_json is None:
        assert run.outcome is Outcome.RUNTIME_ERROR and run.result_json is None, run
    else:
        assert (run.outcome, run.result_json) == (Outcome.OK, result_json), run
