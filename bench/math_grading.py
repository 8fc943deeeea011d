"""Benchmark the MATH answer grader against Math-Verify on labeled pairs.

Run from anywhere:

    python bench/math_grading.py [--repeat 3] [--hang-s 10] [--no-holdout] [--no-formats] [--no-redteam]
        [--no-holdout2] [--cpu N]

Two graders are compared in the same run:

- **ours**: `reward_server.math_grading.grade_completion(gold, completion) -> bool`.
- **math_verify**: `verify(parse("\\boxed{" + gold + "}"), parse(response))`. The gold is wrapped in
  `\\boxed{}` because Math-Verify does not parse bare LaTeX.

They run on these datasets, reported separately:

- `data/math/dev_pairs.jsonl`;
- `tests/data/math_holdout_pairs.jsonl` (holdout is on by default; turn it off with `--no-holdout`);
- `data/math/format_cases.jsonl`: the answer formats of other harnesses and models (GSM8K, minerva-math,
  Qwen2.5-Math, DeepSeek-Math, simple-evals, chat tokens; on by default, `--no-formats` to skip);
- `data/math/redteam_cases.jsonl`: hand-written red-team pairs over every MATH answer type, near misses
  and hedges (on by default, `--no-redteam` to skip);
- `data/math/holdout2_cases.jsonl`: a second hand-labeled set over MATH-500 golds, written without sight of
  the red-team set or the grader's tests (on by default, `--no-holdout2` to skip).

How it runs:

- Each (grader, dataset) runs in a fresh child process pinned to one CPU with
  `os.sched_setaffinity`. The grader is imported and called in the child's main thread, which
  Math-Verify needs for its `signal.alarm` timeouts.
- The parent sends one pair at a time and makes `--repeat` passes over the dataset.
- Pass 1 is the cold pass: the modules are imported, but the caches (gold parses, sympy) are
  empty. Passes 2..R are warm. They re-grade the same texts, so a grader that caches whole
  results is timed on cache hits there; the cold pass is the rate for unseen completions.
- If a pair takes longer than `--hang-s`, the parent kills the child and starts a new one. That
  pair counts as a hang, and therefore as misjudged, and is skipped in later passes.

What it reports, per grader and dataset:

- accuracy against the labels;
- false positives and false negatives, with their ids in the JSON;
- hangs and errors;
- throughput in pairs/s: the pairs done divided by the summed time inside the grader calls, so
  inter-process overhead is excluded. Given for the cold pass and for the warm passes (median
  and best).
- p50/p99 latency per pair, in ms.

It also reports the throughput ratio ours/Math-Verify, prints a table, and writes everything,
plus machine info and a timestamp, to `bench/results/math_grading.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
DATASETS = {
    "dev": DATA / "math" / "dev_pairs.jsonl",
    "holdout": ROOT / "tests" / "data" / "math_holdout_pairs.jsonl",
    "formats": DATA / "math" / "format_cases.jsonl",
    "redteam": DATA / "math" / "redteam_cases.jsonl",
    "holdout2": DATA / "math" / "holdout2_cases.jsonl",
}
RESULTS = ROOT / "bench" / "results" / "math_grading.json"
OURS = "reward_server.math_grading:grade_completion"
GRADERS = ("ours", "math_verify")
IMPORT_TIMEOUT_S = 300.0

if str(ROOT) not in sys.path:  # so that the spawned children can import reward_server
    sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- child side
def load_grader(name: str, ours: str) -> Any:
    """Return a callable grade(gold, response) -> bool for the named grader."""
    if name == "math_verify":
        from math_verify import parse, verify

        def grade_mv(gold: str, response: str) -> bool:
            return bool(verify(parse("\\boxed{" + gold + "}"), parse(response)))

        return grade_mv
    module, func = ours.split(":")
    return getattr(importlib.import_module(module), func)


def worker(name: str, ours: str, cpu: int, conn: Any) -> None:
    """Child process: pin to one CPU, import the grader, grade pairs sent by the parent."""
    os.sched_setaffinity(0, {cpu})
    t0 = time.perf_counter()
    try:
        grade = load_grader(name, ours)
    except BaseException as exc:  # report and exit; the parent marks the grader unavailable
        conn.send(("import_error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", time.perf_counter() - t0))
    while (msg := conn.recv()) is not None:
        gold, response = msg
        t0 = time.perf_counter()
        try:
            verdict, err = bool(grade(gold, response)), None
        except Exception as exc:
            verdict, err = None, f"{type(exc).__name__}: {exc}"[:300]
        conn.send((verdict, time.perf_counter() - t0, err))


# --------------------------------------------------------------------------- parent side
class Child:
    """A pinned worker process, killed and restarted on a hang."""

    def __init__(self, name: str, ours: str, cpu: int) -> None:
        self.args = (name, ours, cpu)
        self.import_s: list[float] = []
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=worker, args=(*self.args, child_conn), daemon=True)
        self.proc.start()
        child_conn.close()
        if not self.conn.poll(IMPORT_TIMEOUT_S):
            self.close()
            raise RuntimeError(f"grader import took longer than {IMPORT_TIMEOUT_S:.0f} s")
        status, value = self.conn.recv()
        if status != "ready":
            self.close()
            raise RuntimeError(value)
        self.import_s.append(value)

    def grade(self, gold: str, response: str, hang_s: float) -> tuple[bool | None, float | None, str | None]:
        """(verdict, seconds, error); seconds is None on a hang or a crash."""
        self.conn.send((gold, response))
        if self.conn.poll(hang_s):
            try:
                verdict, seconds, err = self.conn.recv()
                return verdict, seconds, err
            except EOFError:  # the child died (segfault, os._exit, ...)
                outcome = "crash: grader process died"
        else:
            outcome = "hang"
        self.close()
        self.restarts += 1
        self._start()
        return None, None, outcome

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(0.5)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def load_pairs(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def percentile(xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile, p in [0, 100]."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def run_passes(child: Child, pairs: list[dict[str, Any]], repeat: int, hang_s: float) -> list[dict[str, Any]]:
    """Grade every pair `repeat` times; return one record per pass."""
    hung: set[str] = set()
    passes = []
    for _ in range(repeat):
        verdicts: dict[str, bool | None] = {}
        times: list[float] = []
        errors: dict[str, str] = {}
        for pair in pairs:
            if pair["id"] in hung:
                verdicts[pair["id"]] = None
                continue
            verdict, seconds, err = child.grade(pair["gold"], pair["response"], hang_s)
            verdicts[pair["id"]] = verdict
            if err == "hang":
                hung.add(pair["id"])
            elif err is not None:
                errors[pair["id"]] = err
            if seconds is not None:
                times.append(seconds)
        passes.append({"verdicts": verdicts, "times": times, "errors": errors})
    return passes


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def throughput(p: dict[str, Any]) -> float | None:
    total = sum(p["times"])
    return round(len(p["times"]) / total, 2) if total > 0 else None


def summarize(pairs: list[dict[str, Any]], passes: list[dict[str, Any]], child: Child) -> dict[str, Any]:
    """Accuracy from the cold pass; speed from the cold pass and from the warm passes."""
    first = passes[0]["verdicts"]
    hang_ids = sorted(
        {i for p in passes for i, v in p["verdicts"].items() if v is None and i not in p["errors"]}
    )
    error_ids = sorted({i for p in passes for i in p["errors"]})
    fp_ids = [x["id"] for x in pairs if first[x["id"]] is True and not x["equivalent"]]
    fn_ids = [x["id"] for x in pairs if first[x["id"]] is False and x["equivalent"]]
    bad = set(hang_ids) | set(error_ids)  # a hang or error in any pass counts as misjudged
    misjudged = [x["id"] for x in pairs if first[x["id"]] is not bool(x["equivalent"]) or x["id"] in bad]
    unstable = [x["id"] for x in pairs if len({p["verdicts"][x["id"]] for p in passes}) > 1]
    warm = passes[1:]
    warm_tp = [t for t in map(throughput, warm) if t is not None]
    warm_times = [t for p in warm for t in p["times"]]
    lat = warm_times or passes[0]["times"]
    return {
        "n": len(pairs),
        "correct": len(pairs) - len(misjudged),
        "accuracy": round((len(pairs) - len(misjudged)) / len(pairs), 4),
        "false_positives": len(fp_ids),
        "false_negatives": len(fn_ids),
        "hangs": len(hang_ids),
        "errors": len(error_ids),
        "misjudged_ids": misjudged,
        "fp_ids": fp_ids,
        "fn_ids": fn_ids,
        "hang_ids": hang_ids,
        "error_ids": error_ids,
        "error_examples": {i: e for p in passes for i, e in p["errors"].items()},
        "unstable_ids": unstable,
        "cold_pairs_per_s": throughput(passes[0]),
        "warm_pairs_per_s_median": statistics.median(warm_tp) if warm_tp else None,
        "warm_pairs_per_s_best": max(warm_tp) if warm_tp else None,
        "latency_ms": {
            "over": "warm passes" if warm_times else "cold pass",
            "p50": ms(percentile(lat, 50)),
            "p99": ms(percentile(lat, 99)),
            "max": ms(max(lat) if lat else None),
            "cold_p50": ms(percentile(passes[0]["times"], 50)),
            "cold_p99": ms(percentile(passes[0]["times"], 99)),
        },
        "import_s": [round(s, 3) for s in child.import_s],
        "child_restarts": child.restarts,
    }


def bench_one(grader: str, pairs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    try:
        child = Child(grader, args.ours, args.cpu)
    except RuntimeError as exc:
        return {"unavailable": str(exc)}
    try:
        passes = run_passes(child, pairs, args.repeat, args.hang_s)
    except RuntimeError as exc:  # the restart after a hang failed
        return {"unavailable": f"restart failed: {exc}"}
    finally:
        child.close()
    return summarize(pairs, passes, child)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def machine_info(cpu: int) -> dict[str, Any]:
    def version(pkg: str) -> str | None:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "pinned_cpu": cpu,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sympy": version("sympy"),
        "math_verify": version("math-verify"),
        "latex2sympy2_extended": version("latex2sympy2_extended"),
    }


# --------------------------------------------------------------------------- output
def fmt(v: Any, spec: str = "", suffix: str = "") -> str:
    return "-" if v is None else format(v, spec) + suffix


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for ds, per in results.items():
        for g in GRADERS:
            r = per[g]
            if "unavailable" in r:
                rows.append([ds, g, "unavailable: " + r["unavailable"][:60]] + [""] * 7)
                continue
            lat = r["latency_ms"]
            rows.append(
                [
                    ds,
                    g,
                    f"{r['accuracy']:.1%} ({r['correct']}/{r['n']})",
                    str(r["false_positives"]),
                    str(r["false_negatives"]),
                    str(r["hangs"] + r["errors"]),
                    fmt(r["cold_pairs_per_s"], ".1f"),
                    fmt(r["warm_pairs_per_s_median"], ".1f"),
                    fmt(lat["p50"], ".2f"),
                    fmt(lat["p99"], ".2f"),
                ]
            )
        ratios = per["ratio_ours_over_math_verify"]
        rows.append(
            [
                ds,
                "ours/MV",
                "",
                "",
                "",
                "",
                fmt(ratios["cold"], ".2f", "x"),
                fmt(ratios["warm"], ".2f", "x"),
                "",
                "",
            ]
        )
    return rows


HEADER = [
    "dataset",
    "grader",
    "accuracy",
    "FP",
    "FN",
    "hang+err",
    "cold pairs/s",
    "warm pairs/s",
    "p50 ms",
    "p99 ms",
]


def print_table(results: dict[str, Any], meta: dict[str, Any]) -> None:
    rows = table_rows(results)
    title = (
        f"MATH grading: 1 core (cpu {meta['machine']['pinned_cpu']}), {meta['repeat']} passes, "
        f"hang > {meta['hang_s']} s"
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *rows, strict=True)]
        print(title)
        for row in [HEADER, ["-" * w for w in widths], *rows]:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    else:
        table = Table(title=title)
        for h in HEADER:
            table.add_column(h, justify="left" if h in ("dataset", "grader", "accuracy") else "right")
        for row in rows:
            table.add_row(*row)
        Console(width=None if sys.stdout.isatty() else 140).print(table)
    print(
        "cold = pass 1 in a fresh process; warm pairs/s = median over passes 2..R, which re-grade the "
        "same texts,\nso a grader that caches whole results is timed on cache hits there. Latency "
        "percentiles are over the warm passes (cold if --repeat 1)."
    )
    for ds, per in results.items():
        for g in GRADERS:
            ids = per[g].get("misjudged_ids")
            if ids:
                print(f"{ds}/{g} misjudged: {', '.join(ids)}")


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="passes over each dataset; pass 1 is cold, passes 2..R are warm (default 3)",
    )
    ap.add_argument(
        "--hang-s",
        type=float,
        default=10.0,
        help="seconds after which a pair counts as a hang and the child is killed (default 10)",
    )
    for name, path in DATASETS.items():
        if name != "dev":  # dev always runs
            ap.add_argument(
                f"--{name}",
                action=argparse.BooleanOptionalAction,
                default=True,
                help=f"also run on {path.relative_to(ROOT)} (default: on)",
            )
    ap.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="CPU to pin the grader children to (default: the last CPU this process may use)",
    )
    ap.add_argument("--ours", default=OURS, help=f"module:function of our grader (default {OURS})")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output path (default {RESULTS})")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.cpu is None:
        args.cpu = max(os.sched_getaffinity(0))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [name for name in DATASETS if name == "dev" or getattr(args, name)]
    results: dict[str, Any] = {}
    for ds in names:
        pairs = load_pairs(DATASETS[ds])
        per: dict[str, Any] = {}
        for g in GRADERS:
            print(f"[{ds}] {g}: {len(pairs)} pairs x {args.repeat} passes ...", file=sys.stderr, flush=True)
            per[g] = bench_one(g, pairs, args)
        ours, mv = per["ours"], per["math_verify"]
        per["ratio_ours_over_math_verify"] = {
            "cold": ratio(ours.get("cold_pairs_per_s"), mv.get("cold_pairs_per_s")),
            "warm": ratio(ours.get("warm_pairs_per_s_median"), mv.get("warm_pairs_per_s_median")),
        }
        results[ds] = per
    meta = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "repeat": args.repeat,
        "hang_s": args.hang_s,
        "ours": args.ours,
        "datasets": {ds: str(DATASETS[ds]) for ds in names},
        "machine": machine_info(args.cpu),
        "notes": "pairs/s = pairs done / summed in-grader time on one pinned core; pass 1 is cold "
        "(fresh process, empty caches), passes 2..R warm. Warm passes re-grade the same texts, "
        "so result-level caches are hit there; cold is the rate for unseen completions. "
        "Accuracy is from the cold pass; hangs and errors count as misjudged.",
    }
    print_table(results, meta)
    write_json({**meta, "results": results}, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
