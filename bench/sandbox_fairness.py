"""Can a neighbour make a correct program miss its time limit? Four policies of the process sandbox, measured.

Run from the repository root (as root, for the cgroup policies):

    python bench/sandbox_fairness.py [--rounds 6] [--hog-processes 16]

An honest, CPU-bound program (it needs C seconds of CPU alone, measured first) gets a time limit of
1.5 x C and runs `--rounds` times in one slot while the other slot runs a hog: `--hog-processes` busy
processes, each in a session of its own, allowed 60 s of CPU. Policies (the issue's two remedies, alone
and together, against what we had):

- **wall**: the limit is wall-clock time, no cgroups (the sandbox before): what the hog leaves it decides.
- **cpu-time**: the limit is the program's own CPU time (all its processes), the wall clock only stops
  it at 2 x the limit + 1 s; no cgroups.
- **cpu-share**: a CPU cgroup per slot (equal weights), the limit is wall-clock time.
- **both** (the default now): a cgroup per slot and the limit on CPU time.

Per policy: false timeouts of the honest program (of `--rounds`), how many of them were certain (a
certain timeout is cached as the program's verdict: the harm), its median wall time and CPU time. The
machine is shared: absolute times are noisy, the comparison is in one run. Writes
`bench/results/sandbox_fairness.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import machine_info, timestamp  # noqa: E402
from sandbox.runners.process import ProcessSandbox  # noqa: E402
from sandbox.schemas import Limits, Outcome, Program, TestInput, TestRun  # noqa: E402
from sandbox.settings import SandboxSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sandbox_fairness.json"
HONEST = "n = 0\nfor i in range(10_000_000):\n    n += i\nprint(n)\n"
POLICIES = {  # name: (cgroups, limit on CPU time)
    "wall": ("off", False),
    "cpu-time": ("off", True),
    "cpu-share": ("require", False),
    "both": ("require", True),
}


def hog(processes: int) -> str:
    return (
        "import os\n"
        f"for _ in range({processes - 1}):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        break\n"
        "while True:\n"
        "    pass\n"
    )


async def run(box: ProcessSandbox, code: str, limits: Limits) -> TestRun:
    async with box.session(Program(code=code), limits) as session:
        return await session.run(TestInput())


async def bench_policy(name: str, need_s: float, args: argparse.Namespace) -> dict[str, Any]:
    cgroups, on_cpu_time = POLICIES[name]
    box = ProcessSandbox(SandboxSettings(slots=2, cgroups=cgroups))  # type: ignore[arg-type]
    try:
        await box.start()
    except Exception as exc:  # noqa: BLE001 - e.g. no cgroups here: reported, not fatal
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    limit = 1.5 * need_s
    honest_limits = (
        Limits(cpu_time_s=limit, wall_time_s=2 * limit + 1) if on_cpu_time else Limits(wall_time_s=limit)
    )
    # The hog outlasts the honest program whatever happens to it (its wall clock runs out just after).
    hog_wall_s = 0.3 + honest_limits.wall_time_s + 0.5
    hog_limits = Limits(cpu_time_s=60, wall_time_s=hog_wall_s, max_processes=args.hog_processes + 8)
    runs: list[TestRun] = []
    try:
        for _ in range(args.rounds):
            hogging = asyncio.create_task(run(box, hog(args.hog_processes), hog_limits))
            await asyncio.sleep(0.3)
            runs.append(await run(box, HONEST, honest_limits))
            await hogging
    finally:
        await box.close()
    missed = [r for r in runs if r.outcome is not Outcome.OK]
    return {
        "limit_s": round(limit, 3),
        "false_timeouts": len(missed),
        "certain_false_timeouts": sum(r.certain for r in missed),
        "rounds": len(runs),
        "median_wall_s": round(statistics.median(r.wall_time_s for r in runs), 3),
        "median_cpu_s": round(statistics.median(r.cpu_time_s for r in runs), 3),
        "isolation": box.isolation,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--hog-processes", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    alone_box = ProcessSandbox(SandboxSettings(slots=1))
    await alone_box.start()
    alone = [await run(alone_box, HONEST, Limits(wall_time_s=60)) for _ in range(3)]
    await alone_box.close()
    need_s = statistics.median(r.cpu_time_s for r in alone)
    print(f"the honest program alone: {need_s:.2f} s of CPU; its limit: {1.5 * need_s:.2f} s")

    results = {name: await bench_policy(name, need_s, args) for name in POLICIES}
    header = (
        f"{'policy':10} {'false timeouts':>15} {'of them certain':>16} {'median wall s':>14} "
        f"{'median cpu s':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        if "skipped" in row:
            print(f"{name:10} skipped: {row['skipped']}")
            continue
        print(
            f"{name:10} {row['false_timeouts']:>9}/{row['rounds']:<5} {row['certain_false_timeouts']:>16} "
            f"{row['median_wall_s']:>14.2f} {row['median_cpu_s']:>13.2f}"
        )
    report = {
        "timestamp": timestamp(),
        "machine": {**machine_info(), "cpus_available": len(os.sched_getaffinity(0))},
        "honest_cpu_alone_s": round(need_s, 3),
        "hog_processes": args.hog_processes,
        "notes": "honest program limit 1.5 x its CPU time alone, beside a hog of busy processes in the other "
        "slot; a certain false timeout would be cached as the program's verdict.",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
