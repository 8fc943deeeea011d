"""A sandbox host short of memory (a worker container, a small machine): one program's memory must get
neither a neighbour nor the host itself killed by the OOM killer.

The host (a Python process running a ProcessSandbox with two slots, as a worker does) runs in a memory
cgroup of 640 MiB made here; in it, a correct neighbour holds 200 MiB while an attacker fans 8 x 48 MiB out
over processes (each under its RLIMIT_AS). Without per-program cgroups the OOM killer takes the largest
process it sees: the neighbour (or the host). Needs root and a cgroup v1 memory hierarchy, or cgroup v2 at
the root: run by CI; skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandbox.cgroups import SlotCgroups
from sandbox.runner.cgroup import own_cgroup_dir
from tests.integration.test_sandbox_attacks import FAN_OUT

REPO = Path(__file__).resolve().parents[2]
HOST_LIMIT_MB = 640

HOST = """
import asyncio, json
from sandbox.runners.process import ProcessSandbox
from sandbox.schemas import Limits, Program, TestInput
from sandbox.settings import SandboxSettings

NEIGHBOUR = (
    "import time\\n"
    "block = bytearray(200 << 20)\\n"
    "for at in range(0, len(block), 4096):\\n"
    "    block[at] = 1\\n"
    "time.sleep(3)\\n"
    "print('fine')\\n"
)


async def run(box, code, **limits):
    async with box.session(Program(code=code), Limits(**limits)) as session:
        result = await session.run(TestInput())
        return {"outcome": result.outcome.value, "stdout": result.stdout}


async def main():
    box = ProcessSandbox(SandboxSettings(slots=2))
    await box.start()
    neighbour = asyncio.create_task(run(box, NEIGHBOUR, memory_mb=512, wall_time_s=20))
    await asyncio.sleep(1.0)  # it holds its memory
    attacker = await run(box, ATTACK, memory_mb=96, wall_time_s=20, max_processes=16)
    print(json.dumps({"neighbour": await neighbour, "attacker": attacker}), flush=True)
    await box.close()

asyncio.run(main())
"""


@contextmanager
def memory_cgroup(limit_mb: int) -> Iterator[Path]:
    """A memory cgroup of `limit_mb` (no swap) under this process's own; its cgroup.procs (write "0" into it
    to join). Skips the test where no such cgroup can be made (not root, no memory controller)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a memory cgroup")
    found = own_cgroup_dir("memory")
    if found is None:
        pytest.skip("no memory cgroup controller here")
    fstype, own = found
    directory = Path(own) / f"iarl-test-host-{uuid.uuid4().hex[:8]}"
    limit = str(limit_mb << 20)
    try:
        directory.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup under {own}: {exc}")
    try:
        if fstype == "cgroup":
            (directory / "memory.limit_in_bytes").write_text(limit)
            if (directory / "memory.memsw.limit_in_bytes").exists():
                (directory / "memory.memsw.limit_in_bytes").write_text(limit)
            (directory / "memory.swappiness").write_text("0")  # (swap without memsw: no paging out either)
        elif (directory / "memory.max").exists():
            (directory / "memory.max").write_text(limit)
            (directory / "memory.swap.max").write_text("0")
        else:
            pytest.skip(f"the memory controller is not enabled below {own}")
        yield directory / "cgroup.procs"
    finally:
        for pid in (directory / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        for _ in range(100):
            try:
                directory.rmdir()
                break
            except OSError:
                time.sleep(0.1)


@pytest.fixture
def small_memory_cgroup() -> Iterator[Path]:
    with memory_cgroup(HOST_LIMIT_MB) as procs:
        yield procs


def test_a_slot_pages_nothing_out_to_swap() -> None:
    """On a host with swap but no swap accounting (no memory.memsw.*: CI's machines), a slot that could swap
    would page a program's memory above its limit out instead of killing it: a wrong program would finish
    and be graded on its output. cgroup v1 only (v2 sets memory.swap.max, see tests/unit/sandbox)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make cgroups")
    found = own_cgroup_dir("memory")
    if found is None or found[0] != "cgroup":
        pytest.skip("no cgroup v1 memory hierarchy here")
    made = SlotCgroups.create(f"test-{uuid.uuid4().hex[:8]}", slots=2)
    try:
        for slot in range(2):
            memory_dir = Path(made.runner_config(slot)["oom_kills"]).parent
            assert (memory_dir / "memory.swappiness").read_text().strip() == "0"
    finally:
        made.remove()


def test_a_memory_fan_out_does_not_get_its_neighbour_or_the_host_killed(small_memory_cgroup: Path) -> None:
    script = f"ATTACK = {FAN_OUT!r}\n{HOST}"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        preexec_fn=lambda: small_memory_cgroup.write_text("0"),  # the host process joins it at start
    )
    assert done.returncode == 0, f"the host itself was killed ({done.returncode}): {done.stderr[-2000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["neighbour"] == {"outcome": "ok", "stdout": "fine\n"}, report
    assert report["attacker"]["outcome"] == "memory" and "HELD" not in report["attacker"]["stdout"], report
