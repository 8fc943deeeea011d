"""The sandbox's attack classes through the job queue: a real redis-server, `reward-server serve` and a
`reward-server worker` (whose process sandbox runs the programs), over real sockets.

Each attack is a wrong solution graded beside correct ones in one request: it must come out `incorrect`
(its own failure), never `error` (a dropped sample is better for a wrong program than a negative reward);
its correct neighbours `correct`; and the worker must serve on, never restarted. The worker runs in a
memory cgroup of 800 MiB, as in a container: memory an attack holds outside its limits (SysV shared
memory, memfds: 1 GiB asked) would get the OOM killer to take the largest process it sees, a correct
neighbour holding 150 MiB or the worker itself. Needs root for the cgroup (CI); skipped elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_queue import ADD, Stack, fenced
from tests.integration.test_sandbox_attacks import CPU_HOG, FAN_OUT, MEMFD_HOLD, SYSV_HOLD
from tests.integration.test_sandbox_memory_pressure import memory_cgroup

pytestmark = [pytest.mark.redis, pytest.mark.slow]

WORKER_MEMORY_MB = 800
# A correct solution that holds 150 MiB for 2 s while its neighbours attack.
NEIGHBOUR = (
    "import time\n"
    "block = bytearray(150 << 20)\n"
    "for at in range(0, len(block), 4096):\n"
    "    block[at] = 1\n"
    "time.sleep(2)\n" + ADD
)
KILL_PARENT = (
    "import os, signal\n"
    "for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):\n"
    "    try:\n"
    "        os.kill(os.getppid(), sig)\n"
    "    except OSError:\n"
    "        pass\n"
    "os.kill(-1, signal.SIGKILL)\n"
)
ATTACKS = {
    "sysv": SYSV_HOLD.replace("want, held = 256 << 20", "want, held = 1024 << 20"),
    "memfd": MEMFD_HOLD.replace("want, held, fds = 256 << 20", "want, held, fds = 1024 << 20"),
    "fan-out": FAN_OUT,
    "kill-parent": KILL_PARENT,
    "cpu-hog": CPU_HOG,
}


def test_attacks_through_the_queue_are_their_own_failures(tmp_path: Path) -> None:
    stack = Stack(tmp_path, REWARD_CODE_MAX_PARALLEL="2", SANDBOX_SLOTS="2")
    try:
        with memory_cgroup(WORKER_MEMORY_MB) as worker_cgroup:
            stack.start_server()
            worker = stack.start_worker("w1", preexec_fn=lambda: worker_cgroup.write_text("0"))
            reference = {
                "tests": [{"input": "1 2\n", "output": "3\n"}],
                "time_limit_s": 4,
                "memory_limit_mb": 200,
            }
            # Each attack runs beside a neighbour (2 slots, jobs taken in order).
            completions: list[str] = []
            for index, attack in enumerate(ATTACKS.values()):
                completions += [fenced(NEIGHBOUR + f"# {index}\n"), fenced(attack)]
            response = stack.grade(completions, reference=reference, timeout=300)
            assert response.status_code == 200, response.text
            results = response.json()["groups"][0]["results"]
            for index, name in enumerate(ATTACKS):
                neighbour, attack = results[2 * index], results[2 * index + 1]
                assert neighbour["status"] == "correct", (name, neighbour)
                assert attack["status"] == "incorrect", (name, attack)  # its own failure, never `error`
            kinds = {
                name: results[2 * index + 1]["tests"]["failure_kind"] for index, name in enumerate(ATTACKS)
            }
            assert kinds["cpu-hog"] == "timeout" and kinds["fan-out"] == "memory", kinds
            assert worker.process.poll() is None  # the worker serves on
            again = stack.grade([fenced(ADD)], reference=reference, timeout=60)
            assert again.json()["groups"][0]["results"][0]["status"] == "correct"
    finally:
        stack.close()
