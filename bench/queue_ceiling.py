"""The Redis job queue's dispatch ceiling: no-op jobs per second through one Redis.

A job here does nothing: each worker process runs `SandboxWorker` with an executor that answers `correct` at
once, so what is measured is the queue alone: the server enqueues (QueueExecutor.run_all), a worker takes the
job, answers it, and the server's reply reader wakes the waiting request. Every Redis command of the protocol
is real (a private redis-server, real worker processes, real sockets); only the sandbox is left out.

On a small machine the Python processes (server, workers) run out of CPU long before Redis does, so besides
jobs/s the bench reads Redis's own CPU time and command count from INFO: Redis CPU microseconds per job give
the ceiling of one Redis core (1e6 / us_per_job jobs/s), which is what sizes a deployment of thousands of
workers on paper (Redis runs commands on one thread).

    python bench/queue_ceiling.py [--label after] [--workers 1,2] [--slots 64] [--clients 16] [--batch 8]

Writes the run under its label into bench/results/queue_ceiling.json (other labels are kept), e.g. `before`
and `after` a change of the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine_info, private_redis, timestamp, worker_processes  # noqa: E402

sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench/results/queue_ceiling.json"


class NoopExecutor:
    """Answers every program `correct` at once: the worker's whole cost is the queue protocol."""

    description = "no-op executor (bench)"
    ready = True

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def run_all(self, problem: Any, codes: Sequence[str]) -> list[Any]:
        from reward_server.schemas import Status
        from reward_server.verdict import Verdict

        return [Verdict(Status.CORRECT) for _ in codes]


def worker_main() -> None:
    """`--worker`: one queue worker process with the no-op executor (settings from REWARD_*)."""
    from reward_server.queue.worker import SandboxWorker
    from reward_server.settings import RewardSettings

    async def run() -> None:
        # A version of its own: these verdicts must never pass for the code backend's.
        worker = SandboxWorker(RewardSettings(), "bench-noop", executor=NoopExecutor())  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    asyncio.run(run())


def redis_counters(client: redis.Redis) -> tuple[float, int, dict[str, tuple[int, float]]]:
    """(Redis CPU seconds, user + system, of its main process; commands processed; per command: calls and
    microseconds spent) so far."""
    cpu: Any = client.info("cpu")
    stats: Any = client.info("stats")
    commands: Any = client.info("commandstats")
    per_command = {
        name.removeprefix("cmdstat_"): (int(value["calls"]), float(value["usec"]))
        for name, value in commands.items()
    }
    return (
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        int(stats["total_commands_processed"]),
        per_command,
    )


async def drive(env: dict[str, str], clients: int, batch: int, seconds: float, url: str) -> dict[str, Any]:
    """`clients` concurrent callers of run_all, `batch` distinct no-op programs each, for `seconds`."""
    from reward_server.code_grading import CodeProblem
    from reward_server.queue.client import QueueExecutor
    from reward_server.settings import RewardSettings

    settings = RewardSettings(**{k.removeprefix("REWARD_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    executor = QueueExecutor(settings)
    await executor.start()
    problem = CodeProblem(tests=[{"input": "", "output": "ok\n"}], time_limit_s=1, memory_limit_mb=64)
    latencies: list[float] = []
    done = 0
    errors = 0

    async def client(stop_at: float) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop_at:
            codes = [f"print('ok')  # {uuid.uuid4().hex}" for _ in range(batch)]
            started = time.perf_counter()
            verdicts = await executor.run_all(problem, codes)
            latencies.append(time.perf_counter() - started)
            done += len(verdicts)
            errors += sum(v.status.value != "correct" for v in verdicts)

    try:
        await asyncio.gather(*(client(time.perf_counter() + 2) for _ in range(clients)))  # warm-up
        latencies.clear()
        done = errors = 0
        stats = redis.Redis.from_url(url)
        cpu0, commands0, per_command0 = redis_counters(stats)
        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(clients)))
        elapsed = time.perf_counter() - started
        cpu1, commands1, per_command1 = redis_counters(stats)
        stats.close()
    finally:
        # Bounded: redis-py can swallow the cancellation of a blocked XREAD, and close() awaits that read.
        await asyncio.wait({asyncio.ensure_future(executor.close())}, timeout=5)
    latencies.sort()
    redis_us_per_job = 1e6 * (cpu1 - cpu0) / max(done, 1)
    per_job = {}  # per command: calls per job, and Redis microseconds per job spent in it
    for name, (calls, usec) in sorted(per_command1.items()):
        calls0, usec0 = per_command0.get(name, (0, 0.0))
        if calls > calls0:
            per_job[name] = {
                "calls_per_job": round((calls - calls0) / max(done, 1), 3),
                "us_per_job": round((usec - usec0) / max(done, 1), 2),
            }
    return {
        "jobs": done,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "jobs_per_s": round(done / elapsed, 1),
        "batch_p50_ms": round(1000 * statistics.median(latencies), 1),
        "batch_p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "redis_cpu_share": round((cpu1 - cpu0) / elapsed, 3),
        "redis_us_per_job": round(redis_us_per_job, 1),
        "redis_commands_per_job": round((commands1 - commands0) / max(done, 1), 2),
        "one_redis_core_ceiling_jobs_per_s": round(1e6 / redis_us_per_job) if redis_us_per_job else None,
        "commands": per_job,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="run", help="Key of this run in the results file.")
    parser.add_argument(
        "--workers", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2],
        help="Worker processes, one measurement per number.",
    )  # fmt: skip
    parser.add_argument("--slots", type=int, default=64, help="REWARD_CODE_MAX_PARALLEL of each worker.")
    parser.add_argument("--clients", type=int, default=16, help="Concurrent run_all callers (requests).")
    parser.add_argument("--batch", type=int, default=8, help="Distinct programs per run_all call.")
    parser.add_argument("--seconds", type=float, default=15.0, help="Measured time per configuration.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        worker_main()
        return

    rows = []
    for count in args.workers:
        with private_redis() as url:
            env = {
                "REWARD_REDIS_URL": url,
                "REWARD_QUEUE_PREFIX": f"ceiling-{uuid.uuid4().hex[:6]}",
                "REWARD_CODE_MAX_PARALLEL": str(args.slots),
                "REWARD_QUEUE_MAX_DEPTH": "1000000",
            }
            with worker_processes([sys.executable, __file__, "--worker"], count, env, url):
                # A loop of our own that is never closed: a reader task stuck in redis-py may be left behind.
                loop = asyncio.new_event_loop()
                result = loop.run_until_complete(drive(env, args.clients, args.batch, args.seconds, url))
                row = {"workers": count, **result}
        rows.append(row)

    print(
        f"{'workers':>7} {'jobs/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'redis cpu':>9} {'us/job':>7} "
        f"{'cmds/job':>8} {'1-core ceiling':>14} {'errors':>6}"
    )
    for row in rows:
        print(
            f"{row['workers']:>7} {row['jobs_per_s']:>8} {row['batch_p50_ms']:>7} {row['batch_p99_ms']:>7} "
            f"{row['redis_cpu_share']:>9} {row['redis_us_per_job']:>7} {row['redis_commands_per_job']:>8} "
            f"{row['one_redis_core_ceiling_jobs_per_s']:>14} {row['errors']:>6}"
        )
    existing = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = existing.get("runs", {})
    runs[args.label] = {
        "timestamp": timestamp(),
        "machine": machine_info(),
        "load_average": os.getloadavg()[0],
        "git_commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "config": {k: v for k, v in vars(args).items() if k in {"slots", "clients", "batch", "seconds"}},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bench": "queue_ceiling", "runs": runs}, indent=2) + "\n")
    print(f"wrote {args.out} ({args.label})")


if __name__ == "__main__":
    main()
