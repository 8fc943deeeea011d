"""The process backend as a service: start-up report, slots, failures of runners, overhead."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import pytest

from sandbox.errors import SandboxCrashed, SandboxError, SandboxUnavailable
from sandbox.runners.base import Sandbox
from sandbox.runners.process import ProcessSandbox
from sandbox.schemas import Limits, Outcome, Program, TestInput
from sandbox.settings import SandboxSettings
from tests.unit.sandbox.conftest import run_one

ECHO = Program(code="print(input())")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_SLOTS", "3")
    monkeypatch.setenv("SANDBOX_USE_NAMESPACES", "off")
    monkeypatch.setenv("SANDBOX_EXPOSE_PATHS", '["/usr"]')
    settings = SandboxSettings()
    assert (settings.slots, settings.use_namespaces, settings.expose_paths) == (3, "off", ["/usr"])


def test_process_sandbox_implements_the_protocol() -> None:
    box: Sandbox = ProcessSandbox(SandboxSettings(slots=1))
    assert box.name == "process" and not box.ready


async def test_start_reports_the_isolation(caplog: pytest.LogCaptureFixture) -> None:
    box = ProcessSandbox(SandboxSettings(slots=1))
    with caplog.at_level(logging.INFO, logger="sandbox"):
        await box.start()
    try:
        assert box.ready
        info = box.isolation_info
        assert box.isolation in caplog.text
        if info["namespaces"]:
            assert {"user", "pid", "net", "mount"} <= set(info["namespaces"]) or {
                "pid",
                "net",
                "mount",
            } <= set(info["namespaces"])
            assert "namespaces" in box.isolation
        else:
            assert "WITHOUT NAMESPACES" in caplog.text
        if os.geteuid() == 0:
            assert info["uid_switch"]  # root: the tests run under a uid of their own, so NPROC applies
    finally:
        await box.close()
    assert not box.ready


async def test_without_namespaces_it_warns_loudly_and_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    box = ProcessSandbox(SandboxSettings(slots=1, use_namespaces="off"))
    with caplog.at_level(logging.WARNING, logger="sandbox"):
        await box.start()
    try:
        assert "WITHOUT NAMESPACES" in caplog.text
        assert box.isolation_info["namespaces"] == []
        run = await run_one(box, "print(input()[::-1])", "abc\n")
        assert (run.outcome, run.stdout) == (Outcome.OK, "cba\n")
        timeout = await run_one(box, "while True:\n    pass", wall_time_s=0.3)
        assert timeout.outcome is Outcome.TIMEOUT
    finally:
        await box.close()


async def test_session_starts_the_sandbox_lazily() -> None:
    box = ProcessSandbox(SandboxSettings(slots=1))
    try:
        assert (await run_one(box, "print(1)")).stdout == "1\n"
    finally:
        await box.close()


async def test_sessions_run_in_parallel_up_to_the_slots(sandbox: ProcessSandbox) -> None:
    code = "import time\nprint(time.time())\ntime.sleep(0.6)"
    runs = await asyncio.gather(*(run_one(sandbox, code) for _ in range(4)))
    starts = sorted(float(r.stdout) for r in runs)
    assert starts[1] - starts[0] < 0.5  # two slots: two programs at once...
    assert starts[2] - starts[0] >= 0.55  # ...and the next two only when those are done


async def test_a_killed_runner_is_a_crash_and_is_replaced(sandbox: ProcessSandbox) -> None:
    async with sandbox.session(ECHO, Limits()) as session:
        assert (await session.run(TestInput(stdin="a\n"))).stdout == "a\n"
        runner = session.channel
        assert runner.process is not None
        os.killpg(runner.process.pid, signal.SIGKILL)
        with pytest.raises(SandboxCrashed):
            await session.run(TestInput(stdin="b\n"))
    for _ in range(3):  # every slot works again, the replaced one included
        runs = await asyncio.gather(*(run_one(sandbox, "print(input())", "ok\n") for _ in range(2)))
        assert [r.stdout for r in runs] == ["ok\n", "ok\n"]


async def test_cancelling_a_test_discards_the_slot_cleanly(sandbox: ProcessSandbox) -> None:
    async def slow() -> None:
        async with sandbox.session(Program(code="import time\ntime.sleep(30)"), Limits(wall_time_s=30)) as s:
            await s.run(TestInput())

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    runs = await asyncio.gather(*(run_one(sandbox, "print(2)") for _ in range(3)))
    assert all(r.stdout == "2\n" for r in runs)


async def test_a_closed_session_refuses_tests(sandbox: ProcessSandbox) -> None:
    async with sandbox.session(ECHO, Limits()) as session:
        pass
    with pytest.raises(SandboxError):
        await session.run(TestInput())


async def test_per_test_overhead(sandbox: ProcessSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    n = 200
    async with sandbox.session(ECHO, Limits()) as session:
        await session.run(TestInput(stdin="warm\n"))
        start = time.perf_counter()
        for i in range(n):
            run = await session.run(TestInput(stdin=f"{i}\n"))
            assert run.stdout == f"{i}\n"
        per_test_ms = (time.perf_counter() - start) / n * 1000
    with capsys.disabled():
        print(f"\nprocess sandbox: {per_test_ms:.2f} ms per test (print(input()), {n} tests, one session)")
    assert per_test_ms < 25  # a sanity bound (a shared CI machine); the target on an idle one is ~2 ms


async def test_a_runner_that_cannot_start_is_unavailable() -> None:
    box = ProcessSandbox(SandboxSettings(slots=1, python="/nonexistent/python3"))
    with pytest.raises(SandboxUnavailable):
        await box.start()
    assert not box.ready
    await box.close()


async def test_require_starts_where_namespaces_work() -> None:
    box = ProcessSandbox(SandboxSettings(slots=1, use_namespaces="require"))
    try:
        await box.start()
    except SandboxUnavailable as exc:
        assert "no isolation could be set up" in str(exc)
        return
    try:
        assert box.isolation_info["namespaces"]
        assert (await run_one(box, "print(7)")).stdout == "7\n"
    finally:
        await box.close()


@pytest.mark.parametrize("spare_session", [True, False])
async def test_each_session_gets_fresh_namespaces(spare_session: bool) -> None:
    """With or without a spare session process made ahead: nothing of one session reaches the next."""
    box = ProcessSandbox(SandboxSettings(slots=1, spare_session=spare_session))
    await box.start()
    code = (
        "import os\n"
        "print(os.getpid(), sorted(os.listdir('/tmp')))\n"
        "open('/tmp/left-behind', 'w').write('x')\n"
    )
    try:
        if not box.isolation_info.get("namespaces"):
            pytest.skip("no namespaces here")
        pids = set()
        for _ in range(4):
            run = await run_one(box, code)
            assert run.outcome is Outcome.OK, run
            pid, listing = run.stdout.split(" ", 1)
            assert listing == "[]\n"  # a fresh /tmp
            pids.add(int(pid))
            runner = box.runners[0]
            assert (await runner.request({"op": "ping"}, 5.0))["op"] == "pong"  # served between sessions
        assert len(pids) == 1 and pids.pop() < 10  # a fresh pid namespace each time: the same low pid
    finally:
        await box.close()


async def test_a_cgroup_per_slot_is_made_sized_per_session_and_removed() -> None:
    box = ProcessSandbox(SandboxSettings(slots=2))
    await box.start()
    try:
        cgroups = box.cgroups
        if cgroups is None:
            pytest.skip(f"no cgroups of the sandbox's own here: {box.isolation}")
        assert "cgroup" in box.isolation and box.isolation_info["cgroup"]["joined"]
        assert all(base.is_dir() for base in cgroups.bases)
        run = await run_one(box, "print(open('/proc/self/cgroup').read())", memory_mb=100)
        assert "iarl-sandbox-" in run.stdout  # the test process is in its slot's cgroup
        memory = cgroups.bases[0]
        limits = [  # (a slot no session used yet reads "max" on cgroup v2)
            p.read_text().strip()
            for p in memory.glob("slot-*/memory.*")
            if p.name in ("memory.limit_in_bytes", "memory.max")
        ]
        assert str((100 + box.settings.workdir_mb + 64) << 20) in limits
    finally:
        await box.close()
    assert not any(base.exists() for base in cgroups.bases)


async def test_cgroups_required_but_refused_fails_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import cgroups

    monkeypatch.setattr(cgroups, "own_cgroup_dir", lambda controller: None)
    box = ProcessSandbox(SandboxSettings(slots=1, cgroups="require"))
    with pytest.raises(SandboxUnavailable, match="SANDBOX_CGROUPS=require: no memory cgroup"):
        await box.start()
    box = ProcessSandbox(SandboxSettings(slots=1))  # auto: falls back, and says so
    await box.start()
    try:
        assert not (box.isolation_info.get("cgroup") or {}).get("joined")
        assert (await run_one(box, "print(1)")).stdout == "1\n"
    finally:
        await box.close()
