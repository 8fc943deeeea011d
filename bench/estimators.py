"""Vectorized k-sample estimators (`trainer_client.estimators`) against a plain Python loop, per group and
per sample, on random groups: B in {64, 512, 4096} prompts x n in {4, 16, 64, 256} samples.

The loop baseline is the direct definition a first implementation would write: for every group, for every
sample i, evaluate the objective without i (or the subset sums for leave-p-out and PKPO) on Python lists.
PKPO's binomial weights are computed once per call, as any sane loop would. Both sides get the same data
(binary rewards at a 30% solve rate; for majority voting, answer classes 0..5 with class 0 correct and some
abstentions), no failed samples. Each loop result is checked against the vectorized one (1e-9).

Timings: the vectorized call is the median of several runs after a warm-up, on one torch thread by default
(the loop runs on one core, and on a shared, oversubscribed machine torch's OpenMP threads make the
vectorized times erratic; `--threads 0` keeps torch's default). The loop is first timed on a
few groups; if the whole batch would take more than --loop-budget-s (20 s) it is skipped and the table shows
the extrapolated time in brackets. Prints a table and writes `bench/results/estimators.json`.

    python bench/estimators.py [--loop-budget-s 20] [--threads 1] [--out bench/results/estimators.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch

from trainer_client.estimators import compute_advantages

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results/estimators.json"
BATCHES = (64, 512, 4096)
GROUP_SIZES = (4, 16, 64, 256)
PKPO_K = 4
BETA = 1.0

LoopFn = Callable[[list[list[float]], list[list[int]]], list[list[float]]]

# --------------------------------------------------------------------------------- loop implementations


def without(xs: list[float], i: int) -> list[float]:
    return xs[:i] + xs[i + 1 :]


def loop_mean_loo(rewards: list[list[float]], classes: list[list[int]]) -> list[list[float]]:
    out = []
    for r in rewards:
        n = len(r)
        out.append([sum(r) / n - sum(without(r, i)) / (n - 1) for i in range(n)])
    return out


def loop_passk_loo(rewards: list[list[float]], classes: list[list[int]]) -> list[list[float]]:
    return [[max(r) - max(without(r, i)) for i in range(len(r))] for r in rewards]


def loop_passk_biased(rewards: list[list[float]], classes: list[list[int]]) -> list[list[float]]:
    out = []
    for delta in loop_passk_loo(rewards, classes):
        mean = sum(delta) / len(delta)
        out.append([d - mean for d in delta])
    return out


def loop_leave_2_out(rewards: list[list[float]], classes: list[list[int]]) -> list[list[float]]:
    p = 2
    out = []
    for r in rewards:
        k = len(r)
        subsets = [(a, b) for a in range(k) for b in range(a + 1, k)]
        a_s = [max(r) - max(r[j] for j in range(k) if j not in s) for s in subsets]
        a_bar = sum(a_s) / len(a_s)
        adv = [0.0] * k
        for s, a in zip(subsets, a_s, strict=True):
            for i in s:
                adv[i] += (a - a_bar) / math.comb(k - 1, p - 1)
        out.append(adv)
    return out


def softmax_value(r: list[float]) -> float:
    top = max(r)
    w = [math.exp(BETA * (x - top)) for x in r]
    return sum(wi * x for wi, x in zip(w, r, strict=True)) / sum(w)


def loop_softmax_loo(rewards: list[list[float]], classes: list[list[int]]) -> list[list[float]]:
    return [[softmax_value(r) - softmax_value(without(r, i)) for i in range(len(r))] for r in rewards]


def majority_value(values: dict[int, float], votes: list[int]) -> float:
    counts = Counter(a for a in votes if a != -1)
    if not counts:
        return values.get(-1, 0.0)
    top = max(counts.values())
    winners = [a for a, c in counts.items() if c == top]
    return sum(values[a] for a in winners) / len(winners)


def loop_maj_loo(rewards: list[list[float]], classes: list[list[int]]) -> list[list[float]]:
    out = []
    for r, a in zip(rewards, classes, strict=True):
        grouped: dict[int, list[float]] = {}
        for cls, x in zip(a, r, strict=True):
            grouped.setdefault(cls, []).append(x)
        values = {cls: sum(xs) / len(xs) for cls, xs in grouped.items()}
        full = majority_value(values, a)
        out.append([full - majority_value(values, a[:i] + a[i + 1 :]) for i in range(len(a))])
    return out


def pkpo_weights(n: int, k: int) -> tuple[list[float], list[float], list[float]]:
    """C(i-1,k-1)/C(n,k), C(i-2,k-2)/C(n,k), C(i-1,k-2)/C(n,k) for ranks i = 1..n (0 where undefined)."""
    total = math.comb(n, k)

    def ratio(top: int, bottom: int) -> float:
        return math.comb(top, bottom) / total if 0 <= bottom <= top else 0.0

    ranks = range(1, n + 1)
    return (
        [ratio(i - 1, k - 1) for i in ranks],
        [ratio(i - 2, k - 2) for i in ranks],
        [ratio(i - 1, k - 2) for i in ranks],
    )


def loop_pkpo(rewards: list[list[float]], classes: list[list[int]], loo1: bool = False) -> list[list[float]]:
    n = len(rewards[0])
    k = min(PKPO_K, n)
    own, above, below = pkpo_weights(n, k)
    out = []
    for r in rewards:
        order = sorted(range(n), key=lambda j: r[j])
        g = [r[j] for j in order]
        adv = [0.0] * n
        for i in range(n):  # sorted position
            if loo1:
                value = own[i] * g[i] - sum(below[j] * g[j] for j in range(i))
            else:
                value = own[i] * g[i] + sum(above[j] * g[j] for j in range(i + 1, n))
            adv[order[i]] = value
        out.append(adv)
    return out


def loop_pkpo_loo1(rewards: list[list[float]], classes: list[list[int]]) -> list[list[float]]:
    return loop_pkpo(rewards, classes, loo1=True)


# name, compute_advantages kwargs, loop, largest n
CASES: list[tuple[str, dict[str, float], LoopFn, int]] = [
    ("mean_loo", {}, loop_mean_loo, 256),
    ("passk_loo", {}, loop_passk_loo, 256),
    ("passk_biased", {}, loop_passk_biased, 256),
    ("maj_loo", {}, loop_maj_loo, 256),
    ("leave_p_out", {"p": 2}, loop_leave_2_out, 16),
    ("softmax_loo", {"beta": BETA}, loop_softmax_loo, 256),
    ("pkpo", {"k": PKPO_K}, loop_pkpo, 256),
    ("pkpo_loo1", {"k": PKPO_K}, loop_pkpo_loo1, 256),
]

# ------------------------------------------------------------------------------------------------ timing


def make_batch(b: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    classes = torch.randint(-1, 6, (b, n), generator=gen)
    rewards = (torch.rand((b, n), generator=gen) < 0.3).to(torch.float64)
    return rewards, classes


def time_vectorized(fn: Callable[[], torch.Tensor], min_total_s: float = 0.3, max_runs: int = 20) -> float:
    fn()  # warm-up
    runs: list[float] = []
    while len(runs) < 3 or (sum(runs) < min_total_s and len(runs) < max_runs):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def time_once(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_case(
    name: str, kwargs: dict[str, float], loop: LoopFn, b: int, n: int, loop_budget_s: float
) -> dict[str, object]:
    rewards, classes = make_batch(b, n, seed=b * 1000 + n)
    if name.startswith("maj"):
        rewards = (classes == 0).to(torch.float64)
    extra = {"classes": classes} if name.startswith("maj") else {}
    vec_s = time_vectorized(lambda: compute_advantages(rewards, name, **kwargs, **extra))  # type: ignore[arg-type]
    r_list, c_list = rewards.tolist(), classes.tolist()

    def time_loop(rows: int) -> float:
        return time_once(lambda: loop(r_list[:rows], c_list[:rows]))[0]

    # Pilot on a few groups (growing until it takes 50 ms), then the full batch if it fits the budget.
    pilot_rows = min(b, 8)
    pilot_s = time_loop(pilot_rows)
    while pilot_s < 0.05 and pilot_rows < b:
        pilot_rows = min(b, pilot_rows * 4)
        pilot_s = time_loop(pilot_rows)
    estimate_s = pilot_s * b / pilot_rows
    row: dict[str, object] = {
        "estimator": name,
        "B": b,
        "n": n,
        "kwargs": kwargs,
        "vectorized_ms": vec_s * 1e3,
    }
    if estimate_s > loop_budget_s:
        row |= {"loop": "skipped", "loop_ms": None, "loop_estimate_ms": estimate_s * 1e3}
        row["speedup"] = estimate_s / vec_s
        return row
    loop_s, result = time_once(lambda: loop(r_list, c_list))
    expected = compute_advantages(rewards, name, **kwargs, **extra)  # type: ignore[arg-type]
    if not torch.allclose(torch.tensor(result, dtype=torch.float64), expected, rtol=1e-9, atol=1e-9):
        raise AssertionError(f"loop and vectorized {name} disagree at B={b}, n={n}")
    row |= {"loop": "measured", "loop_ms": loop_s * 1e3, "loop_estimate_ms": None, "speedup": loop_s / vec_s}
    return row


def machine_info() -> dict[str, object]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
        "git_commit": commit,
    }


def format_ms(ms: float) -> str:
    return f"{ms:,.2f}" if ms < 100 else f"{ms:,.0f}"


def print_table(rows: list[dict[str, object]]) -> None:
    header = f"{'estimator':<13} {'B':>5} {'n':>4} {'vectorized ms':>14} {'loop ms':>14} {'speedup':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        vec = float(row["vectorized_ms"])  # type: ignore[arg-type]
        if row["loop"] == "measured":
            loop = format_ms(float(row["loop_ms"]))  # type: ignore[arg-type]
            speed = f"{float(row['speedup']):,.0f}x"  # type: ignore[arg-type]
        else:
            loop = f"[{format_ms(float(row['loop_estimate_ms']))}]"  # type: ignore[arg-type]
            speed = f"[{float(row['speedup']):,.0f}x]"  # type: ignore[arg-type]
        print(
            f"{row['estimator']:<13} {row['B']:>5} {row['n']:>4} {format_ms(vec):>14} {loop:>14} {speed:>9}"
        )
    print(
        "[...] = loop skipped (estimated from a pilot on a few groups exceeds the budget); speedup estimated"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--loop-budget-s", type=float, default=20.0, help="skip loops estimated above this")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1, like the loop; 0 = torch's)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    rows = []
    for name, kwargs, loop, max_n in CASES:
        for n in GROUP_SIZES:
            if n > max_n:
                continue
            for b in BATCHES:
                rows.append(bench_case(name, kwargs, loop, b, n, args.loop_budget_s))
                print(".", end="", flush=True)
    print()
    print_table(rows)
    total_s = time.perf_counter() - started
    print(f"total {total_s:.0f} s")

    payload = {
        "benchmark": "bench/estimators.py",
        "machine": machine_info(),
        "settings": {
            "batches": BATCHES,
            "group_sizes": GROUP_SIZES,
            "pkpo_k": PKPO_K,
            "beta": BETA,
            "leave_p_out": "p=2, n <= 16",
            "loop_budget_s": args.loop_budget_s,
            "rewards": "binary, 30% correct; majority: classes -1..5, class 0 correct",
        },
        "total_s": total_s,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
