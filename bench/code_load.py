"""Code groups through a real server: embedded sandbox vs the Redis job queue with 1, 2, 4... workers.

Run as `python bench/server_load.py --workers 1,2,4` (see its docstring); this module holds the code mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from contextlib import nullcontext
from typing import Any

import httpx
from common import ROOT, machine_info, private_redis, start_server, timestamp, worker_processes
from server_load import run_phase

DEV_PROBLEMS = ROOT / "data/code/dev_problems.jsonl"
RESULTS = ROOT / "bench/results/server_load_code.json"
TRIVIAL_REFERENCE = {"tests": [{"input": "", "output": "ok\n"}], "time_limit_s": 2}

WORKER = [sys.executable, "-m", "reward_server", "worker", "--log-level", "warning"]


def code_requests(count: int, tag: str) -> list[dict[str, Any]]:
    """`count` requests, each one group per dev problem with its labeled solutions (all new to the cache).

    Solutions labeled `timeout` are left out: they only sleep out the time limit, which adding workers
    cannot shorten on a 2-core machine.
    """
    problems = [json.loads(line) for line in DEV_PROBLEMS.read_text().splitlines()]
    requests = []
    for r in range(count):
        groups = [
            {
                "group_id": problem["id"],
                "backend": "code",
                "reference": {"problem_id": problem["id"]},
                "completions": [
                    f"```python\n{solution['code']}\n# {tag}-{r}-{i}\n```"
                    for i, solution in enumerate(problem["solutions"])
                    if solution["kind"] != "timeout"
                ],
            }
            for problem in problems
        ]
        requests.append({"request_id": f"{tag}-{r}", "groups": groups})
    return requests


def job_overhead(url: str, jobs: int) -> dict[str, float]:
    """Latency of one request holding one trivial one-test program, sent one at a time."""
    latencies = []
    with httpx.Client(timeout=60) as http:
        for n in range(jobs + 3):
            body = {
                "groups": [
                    {
                        "group_id": "g",
                        "backend": "code",
                        "reference": TRIVIAL_REFERENCE,
                        "completions": [f"```python\nprint('ok')  # {uuid.uuid4().hex}\n```"],
                    }
                ]
            }
            started = time.perf_counter()
            response = http.post(url + "/v1/grade", json=body)
            if n >= 3:  # the first ones warm up the sandbox
                latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            assert response.json()["groups"][0]["results"][0]["status"] == "correct", response.text
    return {
        "jobs": jobs,
        "mean_ms": round(1000 * statistics.mean(latencies), 2),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
    }


def run_code_load(args: argparse.Namespace) -> None:
    count = args.requests if args.requests is not None else 4
    common_env = {
        "REWARD_CODE_PROBLEMS_PATH": str(DEV_PROBLEMS),
        "REWARD_CODE_MAX_PARALLEL": str(args.parallel),
        "REWARD_MATH_WORKERS": "1",
    }
    rows: list[dict[str, Any]] = []
    overhead: dict[str, dict[str, float]] = {}

    process, url = start_server({**common_env, "REWARD_CODE_EXECUTOR": "local"})
    try:
        overhead["embedded"] = job_overhead(url, 30)
        phase = asyncio.run(run_phase(url, code_requests(count, uuid.uuid4().hex), args.clients))
        rows.append({"mode": "embedded", "workers": 0, **phase})
    finally:
        process.terminate()
        process.wait(timeout=30)

    with nullcontext(args.redis_url) if args.redis_url else private_redis() as redis_url:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        queue_env = {**common_env, "REWARD_REDIS_URL": redis_url, "REWARD_QUEUE_PREFIX": prefix}
        process, url = start_server(queue_env)
        try:
            for n in args.workers:
                with worker_processes(WORKER, n, queue_env, redis_url):
                    if "queue" not in overhead:
                        overhead["queue"] = job_overhead(url, 30)
                    phase = asyncio.run(run_phase(url, code_requests(count, uuid.uuid4().hex), args.clients))
                    rows.append({"mode": "queue", "workers": n, **phase})
        finally:
            process.terminate()
            process.wait(timeout=30)

    embedded = rows[0]["samples_per_s"]
    header = f"{'mode':<9} {'workers':>7} {'samples':>8} {'samples/s':>10} {'vs embedded':>12} {'p50 ms':>9} "
    print(header + f"{'p99 ms':>9} {'errors':>7}")
    for row in rows:
        print(
            f"{row['mode']:<9} {row['workers']:>7} {row['samples']:>8} {row['samples_per_s']:>10} "
            f"{row['samples_per_s'] / embedded:>11.2f}x {row['p50_ms']:>9} {row['p99_ms']:>9} "
            f"{row['errors']:>7}"
        )
    extra = overhead["queue"]["mean_ms"] - overhead["embedded"]["mean_ms"]
    print(
        f"one trivial job alone: embedded {overhead['embedded']['mean_ms']} ms, queue "
        f"{overhead['queue']['mean_ms']} ms -> queue overhead {extra:.2f} ms per job"
    )
    result = {
        "bench": "server_load_code",
        "timestamp": timestamp(),
        "machine": machine_info(),
        "config": {
            "requests": count,
            "clients": args.clients,
            "parallel": args.parallel,
            "workers": args.workers,
        },
        "phases": rows,
        "job_overhead": {**overhead, "queue_minus_embedded_ms": round(extra, 2)},
    }
    out = RESULTS if args.out == ROOT / "bench/results/server_load.json" else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
