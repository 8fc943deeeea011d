"""The Docker backend against a real engine: the pool, the programs, the hardening, replacement and clean-up.

Needs a Docker engine and the sandbox image (`bash services/build_sandbox_image.sh`; `.ci/run` builds both
and exports SANDBOX_DOCKER_IMAGE). Without an engine these tests fail rather than skip: deselect them with
`-m "not docker"`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import docker  # type: ignore[import-untyped]
import pytest

from sandbox.errors import SandboxCrashed, SandboxUnavailable
from sandbox.runners.docker import LABEL, OWNER_LABEL, DockerSandbox, _seccomp_profile
from sandbox.schemas import Limits, Outcome, Program, TestInput
from sandbox.settings import SandboxSettings

pytestmark = pytest.mark.docker

# Read at import: the autouse fixture of tests/conftest.py clears SANDBOX_* while a test runs.
IMAGE = os.environ.get("SANDBOX_DOCKER_IMAGE", "iarl/sandbox:latest")
UID_BASE = 961_000


def settings(**overrides: Any) -> SandboxSettings:
    values: dict[str, Any] = {"docker_image": IMAGE, "docker_pool_size": 2, "docker_uid_base": UID_BASE}
    values.update(overrides)
    return SandboxSettings(**values)


@pytest.fixture
def engine() -> Iterator[Any]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
async def pool() -> AsyncIterator[DockerSandbox]:
    sandbox = DockerSandbox(settings())
    await sandbox.start()
    yield sandbox
    await sandbox.close()


async def run_one(sandbox: DockerSandbox, code: str, test: TestInput | None = None, **limits: Any) -> Any:
    async with sandbox.session(Program(code=code), Limits(**limits)) as session:
        return await session.run(test or TestInput())


async def wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_pool_starts_and_runs_stdin_programs(pool: DockerSandbox) -> None:
    assert pool.ready
    assert len(pool.container_ids) == 2
    assert "network none" in pool.isolation and "cap-drop ALL" in pool.isolation
    code = "a, b = map(int, input().split())\nprint(a + b)"
    async with pool.session(Program(code=code), Limits(wall_time_s=2)) as session:
        runs = [await session.run(TestInput(stdin=f"{i} {i * 10}\n")) for i in range(5)]
    assert [r.outcome for r in runs] == [Outcome.OK] * 5
    assert [r.stdout for r in runs] == [f"{11 * i}\n" for i in range(5)]


async def test_call_programs_and_verdicts(pool: DockerSandbox) -> None:
    call = Program(
        code="class Solution:\n    def twice(self, xs):\n        return [2 * x for x in xs]\n",
        mode="call",
        fn_name="twice",
    )
    async with pool.session(call, Limits()) as session:
        run = await session.run(TestInput(args=[[1, 2, 3]]))
    assert run.outcome is Outcome.OK and json.loads(run.result_json or "null") == [2, 4, 6]

    assert (await run_one(pool, "raise ValueError('boom')")).outcome is Outcome.RUNTIME_ERROR
    assert (await run_one(pool, "while True: pass", wall_time_s=1)).outcome is Outcome.TIMEOUT
    assert (await run_one(pool, "x = bytearray(1 << 30)", memory_mb=128)).outcome is Outcome.MEMORY
    assert (await run_one(pool, "def broken(:\n")).outcome is Outcome.RUNTIME_ERROR
    big = await run_one(pool, "import sys\nsys.stdout.write('x' * 3_000_000)")  # many Docker stream frames
    assert big.outcome is Outcome.OK and len(big.stdout) == 3_000_000


async def test_hardening_is_in_force(pool: DockerSandbox, engine: Any) -> None:
    for container_id in pool.container_ids:
        attrs = engine.containers.get(container_id).attrs
        host, config = attrs["HostConfig"], attrs["Config"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
        assert "no-new-privileges" in host["SecurityOpt"]
        # The shipped profile (Docker's default plus the runner's namespace calls), and nothing unconfined.
        assert [opt for opt in host["SecurityOpt"] if opt.startswith("seccomp=")] == [
            f"seccomp={_seccomp_profile()}"
        ]
        assert not any("unconfined" in opt for opt in host["SecurityOpt"])
        assert host["Privileged"] is False
        assert host["PidsLimit"] == 256
        assert host["Memory"] == host["MemorySwap"] == 2048 << 20
        assert host["IpcMode"] == "none"
        assert host["LogConfig"]["Type"] == "none"
        assert "noexec" in host["Tmpfs"]["/tmp"]
        assert not host["Binds"] and attrs["Mounts"] == []
        assert config["User"] in {f"{UID_BASE + i}:{UID_BASE + i}" for i in range(2)}
        assert config["Labels"][LABEL] == "runner" and config["Labels"][OWNER_LABEL]

    # And from inside, as a program sees it: root of a user namespace of its own (the container's uid
    # outside), with no capability, no /proc, no network, no /dev/shm, and no way to make namespaces.
    probe = r"""
import ctypes, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
caps = (ctypes.c_uint32 * 6)()
libc.syscall(125, (ctypes.c_uint32 * 2)(0x20080522, 0), caps)  # capget
def denied(action):
    try:
        action()
    except OSError as exc:
        return type(exc).__name__
    return "allowed"
print(json.dumps({
    "uid": os.getuid(), "caps": list(caps),
    "no_new_privs": libc.prctl(39, 0, 0, 0, 0), "seccomp": libc.prctl(21, 0, 0, 0, 0),
    "write_root": denied(lambda: open("/etc/owned", "w")),
    "network": denied(lambda: socket.create_connection(("1.1.1.1", 53), timeout=2)),
    "unshare": libc.unshare(0x10000000) == 0,
    "proc": os.listdir("/proc"),
    "shm": os.path.exists("/dev/shm"),
    "interfaces": sorted(name for _, name in socket.if_nameindex()),
}))
"""
    report = json.loads((await run_one(pool, probe)).stdout)
    assert report["uid"] == 0 and report["caps"] == [0] * 6
    assert report["no_new_privs"] == 1 and report["seccomp"] == 2
    assert report["write_root"] != "allowed"
    assert report["network"] != "allowed"
    assert report["unshare"] is False
    assert report["proc"] == []
    assert report["shm"] is False
    assert report["interfaces"] == ["lo"]


async def test_container_killed_from_outside_is_replaced(pool: DockerSandbox, engine: Any) -> None:
    victim = pool.container_ids[0]
    engine.containers.get(victim).kill()
    # Sessions keep working (the dead one is skipped), and the pool heals to its full size.
    for _ in range(4):
        assert (await run_one(pool, "print('alive')")).stdout == "alive\n"
    await wait_for(lambda: victim not in pool.container_ids and len(pool.container_ids) == 2 and pool.ready)


async def test_container_killed_mid_session_is_an_infrastructure_error(
    pool: DockerSandbox, engine: Any
) -> None:
    async with pool.session(Program(code="import time\ntime.sleep(30)"), Limits(wall_time_s=20)) as session:
        task = asyncio.create_task(session.run(TestInput()))
        await asyncio.sleep(0.5)
        busy = session.channel.id
        engine.containers.get(busy).kill()
        with pytest.raises(SandboxCrashed):
            await task
    await wait_for(lambda: busy not in pool.container_ids and len(pool.container_ids) == 2)
    assert (await run_one(pool, "print(1)")).stdout == "1\n"


async def test_a_program_cannot_kill_its_runner() -> None:
    # Its session is the init of its pid namespace (no signal from inside reaches it) and the runner lies
    # outside: whatever it tries is its own runtime error, and the container serves on.
    sandbox = DockerSandbox(settings(docker_pool_size=1))
    await sandbox.start()
    try:
        first = sandbox.container_ids
        for attack in (
            "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
            "os.kill(os.getppid(), signal.SIGSTOP)\nos.kill(1, signal.SIGTERM)\nprint('survived')",
            "import os, signal\nos.kill(-1, signal.SIGKILL)",
        ):
            run = await run_one(sandbox, attack)
            assert run.outcome in (Outcome.OK, Outcome.RUNTIME_ERROR), run
        assert (await run_one(sandbox, "print('next')")).stdout == "next\n"
        assert sandbox.container_ids == first  # the same container, never replaced
    finally:
        await sandbox.close()


async def test_nothing_outlives_a_session() -> None:
    sandbox = DockerSandbox(settings(docker_pool_size=1))
    await sandbox.start()
    try:
        first = sandbox.container_ids
        litter = (
            "import os, subprocess\nopen('/tmp/planted', 'w').write('x')\nos.makedirs('/tmp/d/e')\n"
            "os.chmod('/tmp/d', 0)\nsubprocess.Popen(['sleep', '300'], start_new_session=True)"
        )
        assert (await run_one(sandbox, litter)).outcome is Outcome.OK
        look = await run_one(sandbox, "import os\nprint(sorted(os.listdir('/tmp')))")
        assert look.stdout == "[]\n"  # each session has a /tmp of its own
        shm = "import ctypes\nlibc = ctypes.CDLL(None)\nassert libc.shmget(0, 4096, 0o1600) >= 0"
        assert (await run_one(sandbox, shm)).outcome is Outcome.RUNTIME_ERROR  # SysV IPC is refused
        assert sandbox.container_ids == first
    finally:
        await sandbox.close()


async def test_memory_limit_follows_the_session(pool: DockerSandbox, engine: Any) -> None:
    program = Program(code="print(len(bytearray(3000 << 20)))")
    async with pool.session(program, Limits(memory_mb=4096, wall_time_s=30)) as session:
        run = await session.run(TestInput())
        container_id = session.channel.id
    assert run.outcome is Outcome.OK and run.stdout == f"{3000 << 20}\n"
    host = engine.containers.get(container_id).attrs["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] >= (4096 + 64) << 20


async def test_more_sessions_than_containers(pool: DockerSandbox) -> None:
    code = "import time\ntime.sleep(0.2)\nprint(input())"
    runs = await asyncio.gather(*(run_one(pool, code, TestInput(stdin=f"{i}\n")) for i in range(6)))
    assert [r.stdout for r in runs] == [f"{i}\n" for i in range(6)]


async def test_close_removes_every_container(engine: Any) -> None:
    sandbox = DockerSandbox(settings())
    await sandbox.start()
    ids = sandbox.container_ids
    assert (await run_one(sandbox, "print(1)")).stdout == "1\n"
    await sandbox.close()
    assert not sandbox.ready
    left = engine.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={sandbox._owner}"})
    assert left == []
    for container_id in ids:
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(container_id)


async def test_leftovers_of_a_crashed_server_are_removed_at_start(engine: Any) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = engine.containers.create(
        IMAGE,
        entrypoint=["sleep", "300"],
        network_mode="none",
        read_only=True,
        labels={LABEL: "runner", OWNER_LABEL: f"{socket.gethostname()}/{dead.pid}/deadbeef0000"},
    )
    orphan.start()
    other_host = engine.containers.create(
        IMAGE,
        entrypoint=["sleep", "300"],
        network_mode="none",
        labels={LABEL: "runner", OWNER_LABEL: "some-other-host/1/deadbeef0000"},
    )
    try:
        sandbox = DockerSandbox(settings(docker_pool_size=1))
        await sandbox.start()
        await sandbox.close()
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(orphan.id)
        engine.containers.get(other_host.id)  # another host's pool is left alone
    finally:
        for container in (orphan, other_host):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


async def test_missing_image_is_unavailable_not_a_crash() -> None:
    sandbox = DockerSandbox(settings(docker_image="iarl/no-such-image:never"))
    with pytest.raises(SandboxUnavailable, match="build_sandbox_image"):
        await sandbox.start()
    assert not sandbox.ready
    await sandbox.close()


@pytest.mark.slow
async def test_per_test_overhead(pool: DockerSandbox) -> None:
    """200 trivial tests through one session; the figure is printed (pytest -s) and loosely bounded."""
    async with pool.session(Program(code="print(input())"), Limits()) as session:
        await session.run(TestInput(stdin="warm\n"))
        start = time.perf_counter()
        for i in range(200):
            assert (await session.run(TestInput(stdin=f"{i}\n"))).stdout == f"{i}\n"
        per_test_ms = (time.perf_counter() - start) / 200 * 1000
    print(f"docker sandbox: {per_test_ms:.2f} ms per trivial test")
    assert per_test_ms < 50
