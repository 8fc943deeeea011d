"""Trainer integrations against a live reward server: verl's per-sample reward calls vs one batched request.

verl 0.9 calls the reward function once per sample, concurrently, as rollouts finish. This bench grades the
same kind of batch (`--prompts` MATH-500 prompts x `--k` completions: right answers in other notations, wrong
and malformed ones) four ways, each with fresh completions so the server's cache is cold:

- batched: one `POST /v1/grade` holding every group (what our own trainer sends);
- verl async: `--prompts * --k` concurrent `compute_score` calls on one event loop, in shuffled order (as
  verl's reward loop awaits them), through the coalescer (5 ms window, up to 4096 samples per request);
- verl async, max_batch 256: the same with at most 256 samples per request, so that a prompt's samples
  are split across requests (and groups);
- verl threads: the same with `compute_score_sync` from a pool of `--threads` threads (verl's `remote`
  manager and any sync caller);
- verl uncoalesced: the async calls with the coalescer off (window 0, one sample per request): what a
  plain per-sample HTTP reward function costs.

Each way runs `--repeat` times (interleaved); the table shows the median samples/s and its ratio to
batched (goal: verl async >= 0.7x). Starts `reward-server serve` on a free port (or uses `--url`). Writes
`bench/results/integrations.json`.

    python bench/integrations.py [--prompts 500] [--k 4] [--repeat 5] [--threads 32]
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine_info, start_server, timestamp  # noqa: E402
from server_load import completion_for  # noqa: E402

from reward_server.schemas import GradeGroup  # noqa: E402
from trainer_client.client import AsyncRewardClient  # noqa: E402
from trainer_client.integrations import verl_reward  # noqa: E402

MATH_500 = ROOT / "data/math/math_test_500.jsonl"
RESULTS = ROOT / "bench/results/integrations.json"
Sample = tuple[str, str, str]  # (prompt id, gold, completion)


def build_batch(prompts: int, k: int, seed: int, tag: str) -> list[Sample]:
    """`prompts` x `k` samples; the completions carry `tag`, so no earlier phase has them in the cache."""
    problems = [json.loads(line) for line in MATH_500.read_text().splitlines()]
    rng = random.Random(seed)
    samples = []
    for p, problem in enumerate(rng.sample(problems, prompts)):
        kinds = rng.choices(["right", "wrong", "malformed"], weights=[0.5, 0.4, 0.1], k=k)
        for i, kind in enumerate(kinds):
            text = completion_for(problem["answer"], kind, f"{tag}-{p}-{i}", rng)
            samples.append((f"p{p}", problem["answer"], text))
    return samples


async def batched(url: str, samples: list[Sample]) -> dict[str, Any]:
    groups: dict[str, GradeGroup] = {}
    for prompt, gold, text in samples:
        group = groups.setdefault(
            prompt, GradeGroup(group_id=prompt, backend="math", reference={"answer": gold}, completions=[])
        )
        group.completions.append(text)
    async with AsyncRewardClient(url, max_groups_per_request=len(groups)) as client:
        start = time.perf_counter()
        response = await client.grade(list(groups.values()))
        elapsed = time.perf_counter() - start
    statuses = [result.status.value for group in response.groups for result in group.results]
    return {"elapsed_s": elapsed, "requests": 1, "statuses": statuses}


def shuffled(samples: list[Sample], seed: int) -> list[Sample]:
    order = list(samples)
    random.Random(seed).shuffle(order)
    return order


async def verl_async(url: str, samples: list[Sample], window_ms: float, max_batch: int) -> dict[str, Any]:
    kwargs = {"url": url, "window_ms": window_ms, "max_batch": max_batch}
    coalescer = verl_reward.get_coalescer(url, window_ms=window_ms, max_batch=max_batch)
    start = time.perf_counter()
    results = await asyncio.gather(
        *(verl_reward.compute_score("lighteval/MATH", text, gold, {}, **kwargs) for _, gold, text in samples)
    )
    elapsed = time.perf_counter() - start
    await verl_reward.aclose_coalescers()
    statuses = [result["status"] for result in results]
    return {"elapsed_s": elapsed, "requests": coalescer.requests_sent, "statuses": statuses}


def verl_threads(url: str, samples: list[Sample], threads: int) -> dict[str, Any]:
    def one(sample: Sample) -> dict[str, Any]:
        return verl_reward.compute_score_sync("lighteval/MATH", sample[2], sample[1], {}, url=url)

    def requests_so_far() -> int:
        async def count() -> int:
            return verl_reward.get_coalescer(url).requests_sent

        return verl_reward._loop_thread().run(count())

    sent = requests_so_far()
    with ThreadPoolExecutor(threads) as pool:
        # Start the threads before timing, as verl's executor's are (the pool starts one per submit).
        list(pool.map(time.sleep, [0.01] * threads))
        start = time.perf_counter()
        results = list(pool.map(one, samples))
        elapsed = time.perf_counter() - start
    statuses = [result["status"] for result in results]
    return {"elapsed_s": elapsed, "requests": requests_so_far() - sent, "statuses": statuses}


def print_table(rows: list[list[str]], title: str) -> None:
    header = ["way", "samples", "requests", "samples/s (median)", "runs", "x batched"]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        for row in [header, *rows]:
            print("  ".join(f"{cell:>18}" for cell in row))
        return
    table = Table(title=title)
    for name in header:
        table.add_column(name, justify="left" if name == "way" else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 140).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="An already running server; by default one is started.")
    parser.add_argument("--prompts", type=int, default=500, help="Prompts per batch (MATH-500: 500 at most).")
    parser.add_argument("--k", type=int, default=4, help="Completions per prompt.")
    parser.add_argument("--repeat", type=int, default=5, help="Runs of each way (fresh completions each).")
    parser.add_argument(
        "--threads", type=int, default=32, help="Threads of the sync way (verl's default executor: <= 32)."
    )
    parser.add_argument("--math-workers", type=int, default=os.cpu_count() or 1, help="REWARD_MATH_WORKERS.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    ways: dict[str, Callable[[str, list[Sample], int], dict[str, Any]]] = {
        "batched": lambda url, s, seed: asyncio.run(batched(url, s)),
        "verl async (coalesced)": lambda url, s, seed: asyncio.run(
            verl_async(url, shuffled(s, seed), verl_reward.DEFAULT_WINDOW_MS, verl_reward.DEFAULT_MAX_BATCH)
        ),
        "verl async, max_batch 256": lambda url, s, seed: asyncio.run(
            verl_async(url, shuffled(s, seed), verl_reward.DEFAULT_WINDOW_MS, 256)
        ),
        "verl threads (coalesced)": lambda url, s, seed: verl_threads(url, shuffled(s, seed), args.threads),
        "verl async, uncoalesced": lambda url, s, seed: asyncio.run(verl_async(url, shuffled(s, seed), 0, 1)),
    }
    process, url = (
        (None, args.url) if args.url else start_server({"REWARD_MATH_WORKERS": str(args.math_workers)})
    )
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ways}
    try:
        # Warm up the connection pools and the workers (not timed).
        ways["batched"](url, build_batch(8, args.k, args.seed, f"warmup-{time.time_ns():x}"), 0)
        for r in range(args.repeat):
            for w, (name, way) in enumerate(ways.items()):
                tag = f"{time.time_ns():x}-{r}-{w}"  # fresh completions: a cold cache for every run
                samples = build_batch(args.prompts, args.k, args.seed + r, tag)
                run = way(url, samples, args.seed + r)
                run["samples"] = len(samples)
                run["samples_per_s"] = round(len(samples) / run["elapsed_s"], 1)
                run["statuses"] = {s: run["statuses"].count(s) for s in sorted(set(run["statuses"]))}
                runs[name].append(run)
                print(f"run {r + 1}/{args.repeat} {name}: {run['samples_per_s']} samples/s", file=sys.stderr)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)

    summary = {}
    for name, way_runs in runs.items():
        summary[name] = {
            "samples_per_s_median": statistics.median(run["samples_per_s"] for run in way_runs),
            "requests_median": statistics.median(run["requests"] for run in way_runs),
            "runs": way_runs,
        }
    base = summary["batched"]["samples_per_s_median"]
    for entry in summary.values():
        entry["ratio_to_batched"] = round(entry["samples_per_s_median"] / base, 3)
    samples = args.prompts * args.k
    rows = [
        [
            name,
            str(samples),
            f"{entry['requests_median']:g}",
            f"{entry['samples_per_s_median']:.1f}",
            ", ".join(f"{run['samples_per_s']:.0f}" for run in entry["runs"]),
            f"{entry['ratio_to_batched']:.2f}",
        ]
        for name, entry in summary.items()
    ]
    print_table(
        rows,
        f"verl per-sample reward calls vs one batched request: {args.prompts} MATH-500 prompts x {args.k}, "
        f"{args.math_workers} math workers, cold cache",
    )
    result = {
        "bench": "integrations",
        "timestamp": timestamp(),
        "machine": machine_info(),
        "config": {k: v for k, v in vars(args).items() if k not in {"url", "out"}}
        | {"window_ms": verl_reward.DEFAULT_WINDOW_MS, "max_batch": verl_reward.DEFAULT_MAX_BATCH},
        "verl": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
