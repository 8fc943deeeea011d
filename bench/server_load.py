"""Load on a real reward-server process, for math groups or (with `--workers`) code groups.

Math (default): the paper's batch shape (64 prompts x k=4) from concurrent clients. Starts `reward-server
serve` on a free port (or uses `--url`), sends requests whose completions are a mix of right answers (in
other notations), wrong answers and malformed text drawn from MATH-500, and reports samples/s and p50/p99
request latency with the cache cold (every completion new) and warm (the same requests again). Writes
`bench/results/server_load.json`.

    python bench/server_load.py [--clients 4] [--requests 8] [--prompts 64] [--k 4] [--redis-url URL]

Code (`--workers 1,2,4`): the labeled solutions of data/code/dev_problems.jsonl as code groups
(one per problem, every completion new), graded by the embedded default (the server's own process sandbox)
and then through the Redis job queue by 1, 2, 4 `reward-server worker` processes, in one run; plus the
queue's overhead per job: the latency of a one-test trivial program, sent alone, embedded vs queued.
Every sandbox (embedded, each worker) runs `--parallel` solutions at once. Uses `--redis-url` or starts a
private redis-server. Writes `bench/results/server_load_code.json` (see `bench/code_load.py`).

    python bench/server_load.py --workers 1,2,4 [--parallel 1] [--requests 8] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine_info, start_server, timestamp  # noqa: E402

MATH_500 = ROOT / "data/math/math_test_500.jsonl"
RESULTS = ROOT / "bench/results/server_load.json"


def completion_for(gold: str, kind: str, nonce: str, rng: random.Random) -> str:
    """A model-like completion whose final answer is right, wrong or missing."""
    steps = f"Let me work through this carefully ({nonce}). Simplifying step by step gives the value."
    if kind == "right":
        return rng.choice(
            [
                f"{steps} So the answer is $\\boxed{{{gold}}}$.",
                f"{steps}\n\nFinal Answer: The final answer is ${gold}$. I hope it is correct.",
                f"{steps}\n\n**Answer:** ${gold}$",
            ]
        )
    if kind == "wrong":
        wrong = rng.choice([f"{gold}+1", "2", "\\frac{7}{3}", f"-({gold})", "x^2", "(1, 2)"])
        return f"{steps} Therefore $\\boxed{{{wrong}}}$."
    return rng.choice([f"{steps} The answer is $\\boxed{{{gold}", f"{steps} I could not finish.", ""])


def build_requests(count: int, prompts: int, k: int, seed: int, tag: str) -> list[dict[str, object]]:
    problems = [json.loads(line) for line in MATH_500.read_text().splitlines()]
    rng = random.Random(seed)
    requests = []
    for r in range(count):
        groups = []
        for p, problem in enumerate(rng.sample(problems, prompts)):
            kinds = rng.choices(["right", "wrong", "malformed"], weights=[0.5, 0.4, 0.1], k=k)
            completions = [
                completion_for(problem["answer"], kind, f"{tag}-{r}-{p}-{i}", rng)
                for i, kind in enumerate(kinds)
            ]
            groups.append(
                {
                    "group_id": f"{r}-{p}",
                    "backend": "math",
                    "reference": {"answer": problem["answer"]},
                    "completions": completions,
                }
            )
        requests.append({"request_id": f"{tag}-{r}", "groups": groups})
    return requests


async def run_phase(url: str, requests: list[dict[str, object]], clients: int) -> dict[str, float]:
    """Send every request once, `clients` at a time; return throughput and latency figures."""
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            response = await http.post(url + "/v1/grade", json=body)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            for group in response.json()["groups"]:
                for result in group["results"]:
                    statuses[result["status"]] = statuses.get(result["status"], 0) + 1

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    samples = sum(statuses.values())
    latencies.sort()
    return {
        "requests": len(requests),
        "samples": samples,
        "seconds": round(elapsed, 3),
        "samples_per_s": round(samples / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "errors": statuses.get("error", 0),
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="An already running server; by default one is started.")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent clients.")
    parser.add_argument("--requests", type=int, help="Requests per phase (math 32, code 4).")
    parser.add_argument("--prompts", type=int, default=64, help="Groups per request (B).")
    parser.add_argument("--k", type=int, default=4, help="Completions per group.")
    parser.add_argument("--math-workers", type=int, default=os.cpu_count() or 1, help="REWARD_MATH_WORKERS.")
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        help="Code mode: numbers of queue workers to compare with the embedded default, e.g. 1,2,4.",
    )
    parser.add_argument("--parallel", type=int, default=1, help="Code mode: solutions at once per sandbox.")
    parser.add_argument(
        "--redis-url", help="Use a Redis cache (REWARD_REDIS_URL) instead of the in-memory one."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.workers:
        from code_load import run_code_load

        run_code_load(args)
        return

    env = {"REWARD_MATH_WORKERS": str(args.math_workers)}
    if args.redis_url:
        env["REWARD_REDIS_URL"] = args.redis_url
    process, url = (None, args.url) if args.url else start_server(env)
    try:
        tag = f"{time.time_ns():x}"  # fresh completions: nothing of an earlier run is in the cache
        requests = build_requests(args.requests or 32, args.prompts, args.k, args.seed, tag)
        phases = {"cold": asyncio.run(run_phase(url, requests, args.clients))}
        phases["warm"] = asyncio.run(run_phase(url, requests, args.clients))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)

    print(f"{'phase':<6} {'samples':>8} {'samples/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for name, phase in phases.items():
        print(
            f"{name:<6} {phase['samples']:>8} {phase['samples_per_s']:>10} {phase['p50_ms']:>9} "
            f"{phase['p99_ms']:>9} {phase['errors']:>7}"
        )
    result = {
        "bench": "server_load",
        "timestamp": timestamp(),
        "machine": machine_info(),
        "config": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in {"url", "redis_url", "out", "workers", "parallel"}
        }
        | {"cache": "redis" if args.redis_url else "memory"},
        "phases": phases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
