"""Benchmark the code backend on the labeled dev problems with each sandbox, side by side.

Run from the repository root:

    python bench/code_grading.py [--runners process,docker,naive] [--parallel N] [--repeat 2] [--tests 200]

Runners (each behind the same `sandbox.runners.base.Sandbox` interface, graded by the same `CodeBackend`):

- **process**: `sandbox.runners.process.ProcessSandbox`, the embedded default.
- **docker**: `sandbox.runners.docker.DockerSandbox`, if a Docker engine answers and the sandbox starts
  (its image must exist); otherwise the reason it was skipped is printed and saved.
- **naive**: a fresh `python` subprocess per test with a wall-clock timeout and RLIMIT_AS, the way TACO and
  LiveCodeBench run tests (defined below; no isolation at all, a baseline only).

What it measures, per runner:

- **agreement**: verdicts on the 82 labeled solutions of `data/code/dev_problems.jsonl`
  (`pass` -> correct, `fail` -> incorrect), graded as a real request would be: one group per problem,
  groups in parallel, `--parallel` sessions at most (REWARD_CODE_MAX_PARALLEL), stop at the first failure.
- **solutions/s** and **tests/s** over the whole set (best of `--repeat` passes). The set holds two
  solutions that run into the time limit (`--time-limit`, 3 s per test by default), so wall time has a
  floor of about that on any runner; hence
  also **no-timeout sol/s**: the same set without the solutions labeled `timeout`.
- **overhead per test** (ms): one session running the trivial program `pass` on `--tests` tests in turn
  (and `def f(): return 0` for call tests): the cost the sandbox adds to every test. **session open** (ms):
  opening and closing a session with one trivial test.

It prints a table with ratios against the naive runner and writes `bench/results/code_grading.json`
(machine info, timestamp, sandbox isolation descriptions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import machine_info, timestamp  # noqa: E402
from reward_server.backends.code_sandbox import CodeBackend  # noqa: E402
from reward_server.code_execution.local import build_sandbox  # noqa: E402
from reward_server.schemas import Status  # noqa: E402
from reward_server.settings import RewardSettings  # noqa: E402
from sandbox.runners.base import Sandbox  # noqa: E402
from sandbox.schemas import Limits, Outcome, Program, TestInput, TestRun  # noqa: E402

DEV_PROBLEMS = ROOT / "data" / "code" / "dev_problems.jsonl"
RESULTS = ROOT / "bench" / "results" / "code_grading.json"

# --------------------------------------------------------------------------- naive runner (baseline)
_HARNESS = r"""
import json, resource, runpy, sys
mode, code_path, memory_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
limit = memory_mb * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
if mode == "stdin":
    runpy.run_path(code_path, run_name="__main__")
else:
    fn_name, result_path = sys.argv[4], sys.argv[5]
    args = json.loads(sys.stdin.read())
    namespace = runpy.run_path(code_path, run_name="solution")
    function = namespace.get(fn_name)
    if function is None:
        function = getattr(namespace["Solution"](), fn_name)
    result = function(*args)
    with open(result_path, "w") as out:
        json.dump(result, out)
"""


class NaiveSession:
    def __init__(self, program: Program, limits: Limits, workdir: Path) -> None:
        self.program = program
        self.limits = limits
        self.workdir = workdir
        self.code_path = workdir / "solution.py"
        self.code_path.write_text(program.code)
        (workdir / "harness.py").write_text(_HARNESS)

    async def run(self, test: TestInput) -> TestRun:
        result_path = self.workdir / "result.json"
        result_path.unlink(missing_ok=True)
        argv = [sys.executable, str(self.workdir / "harness.py"), self.program.mode, str(self.code_path)]
        argv.append(str(self.limits.memory_mb))
        if self.program.mode == "call":
            argv += [self.program.fn_name or "", str(result_path)]
        stdin = test.stdin if self.program.mode == "stdin" else json.dumps(test.args or [])
        start = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.workdir,
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(stdin.encode()), timeout=self.limits.wall_time_s
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            return TestRun(outcome=Outcome.TIMEOUT, wall_time_s=time.perf_counter() - start)
        wall = time.perf_counter() - start
        tail = stderr[-1024:].decode(errors="replace")
        if len(stdout) + len(stderr) > self.limits.max_output_bytes:
            outcome = Outcome.OUTPUT_LIMIT
        elif process.returncode == 0:
            outcome = Outcome.OK
        elif "MemoryError" in tail:
            outcome = Outcome.MEMORY
        else:
            outcome = Outcome.RUNTIME_ERROR
        result_json = None
        if self.program.mode == "call" and outcome is Outcome.OK and result_path.exists():
            result_json = result_path.read_text()
        return TestRun(
            outcome=outcome,
            stdout=stdout.decode(errors="replace"),
            stderr_tail=tail,
            result_json=result_json,
            exit_code=process.returncode,
            wall_time_s=wall,
        )


class NaiveSandbox:
    """A fresh `python` per test, wall-clock timeout, RLIMIT_AS: TACO/LiveCodeBench's way. No isolation."""

    name = "naive"
    isolation = "none: fresh python subprocess per test, RLIMIT_AS, wall-clock kill"
    ready = True

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @asynccontextmanager
    async def session(self, program: Program, limits: Limits) -> AsyncIterator[NaiveSession]:
        with tempfile.TemporaryDirectory(prefix="naive-") as workdir:
            yield NaiveSession(program, limits, Path(workdir))


# --------------------------------------------------------------------------- measurements
def load_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEV_PROBLEMS.read_text().splitlines() if line.strip()]


async def grade_all(
    backend: CodeBackend, rows: list[dict[str, Any]]
) -> tuple[float, list[dict[str, Any]], int]:
    """Grade every labeled solution (one group per problem, all groups at once)."""
    start = time.perf_counter()
    verdict_lists = await asyncio.gather(
        *(backend.grade(backend.problems[row["id"]], [s["code"] for s in row["solutions"]]) for row in rows)
    )
    elapsed = time.perf_counter() - start
    records, tests_run = [], 0
    for row, verdicts in zip(rows, verdict_lists, strict=True):
        for index, (solution, verdict) in enumerate(zip(row["solutions"], verdicts, strict=True)):
            summary = verdict.tests or {}
            tests_run += summary.get("passed", 0) + (summary.get("first_failure") is not None)
            wanted = Status.CORRECT if solution["expected"] == "pass" else Status.INCORRECT
            records.append(
                {
                    "id": f"{row['id']}[{index}]",
                    "kind": solution["kind"],
                    "expected": wanted.value,
                    "got": verdict.status.value,
                    "failure_kind": summary.get("failure_kind"),
                    "detail": verdict.detail,
                }
            )
    return elapsed, records, tests_run


async def trivial_overhead(sandbox: Sandbox, tests: int) -> dict[str, float]:
    """Per-test cost of the trivial program, and the cost of opening a session."""
    limits = Limits(wall_time_s=10, memory_mb=1024)
    figures: dict[str, float] = {}
    for mode, program, test in (
        ("stdin", Program(code="pass\n"), TestInput(stdin="")),
        ("call", Program(code="def f():\n    return 0\n", mode="call", fn_name="f"), TestInput(args=[])),
    ):
        async with sandbox.session(program, limits) as session:
            await session.run(test)  # warm-up
            start = time.perf_counter()
            for _ in range(tests):
                run = await session.run(test)
                assert run.outcome is Outcome.OK, run
            figures[f"per_test_ms_{mode}"] = (time.perf_counter() - start) / tests * 1000
    opens = []
    for _ in range(10):
        start = time.perf_counter()
        async with sandbox.session(Program(code="pass\n"), limits) as session:
            await session.run(TestInput())
        opens.append((time.perf_counter() - start) * 1000)
    figures["session_open_ms"] = statistics.median(opens)
    return figures


def docker_unavailable() -> str | None:
    """Why the Docker runner cannot run here, or None: a client, an engine that answers, the image."""
    if shutil.which("docker") is None:
        return "no `docker` client on PATH (no Docker engine installed)"
    info = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True
    )
    if info.returncode != 0:
        return f"no Docker engine answers: {info.stderr.strip().splitlines()[-1:] or info.returncode}"
    from sandbox.settings import SandboxSettings

    image = SandboxSettings().docker_image
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        return f"sandbox image {image} is not built (bash services/build_sandbox_image.sh)"
    return None


def make_sandbox(runner: str) -> tuple[Sandbox | None, str | None]:
    if runner == "naive":
        return NaiveSandbox(), None
    if runner == "docker" and (reason := docker_unavailable()) is not None:
        return None, reason
    try:
        return build_sandbox(runner), None
    except Exception as exc:  # the runner's module or settings are unusable here
        return None, f"cannot build the {runner} sandbox: {type(exc).__name__}: {exc}"


async def bench_runner(runner: str, rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    sandbox, skipped = make_sandbox(runner)
    if sandbox is None:
        return {"skipped": skipped}
    settings = RewardSettings(
        code_max_parallel=args.parallel,
        code_problems_path=DEV_PROBLEMS,
        code_default_time_limit_s=args.time_limit,
    )
    backend = CodeBackend(settings, sandbox=sandbox)
    try:
        await backend.start()
    except Exception as exc:
        return {"skipped": f"the {runner} sandbox did not start: {type(exc).__name__}: {exc}"}
    try:
        passes = [await grade_all(backend, rows) for _ in range(args.repeat)]
        # The same set without the solutions labeled `timeout`: their time limit floors every runner's time.
        quick_rows = [
            {**row, "solutions": [s for s in row["solutions"] if s["kind"] != "timeout"]} for row in rows
        ]
        quick_rows = [row for row in quick_rows if row["solutions"]]
        quick = [await grade_all(backend, quick_rows) for _ in range(args.repeat)]
        overhead = await trivial_overhead(sandbox, args.tests)
    except Exception as exc:  # e.g. the Docker engine went away mid-run: report it, bench the others
        return {"skipped": f"the {runner} sandbox failed mid-run: {type(exc).__name__}: {exc}"}
    finally:
        try:
            await backend.close()
        except Exception as exc:
            print(f"closing the {runner} sandbox failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    elapsed = min(p[0] for p in passes)
    records, tests_run = passes[0][1], passes[0][2]
    disagreements = [r for p in passes for r in p[1] if r["got"] != r["expected"]]
    agree = sum(r["got"] == r["expected"] for r in records)
    return {
        "isolation": sandbox.isolation,
        "solutions": len(records),
        "agree": agree,
        "agreement": agree / len(records),
        "disagreements": disagreements,
        "errors": sum(r["got"] == "error" for r in records),
        "elapsed_s": [round(p[0], 3) for p in passes],
        "solutions_per_s": len(records) / elapsed,
        "solutions_per_s_without_timeouts": len(quick[0][1]) / min(p[0] for p in quick),
        "tests_run": tests_run,
        "tests_per_s": tests_run / elapsed,
        **overhead,
    }


def print_table(results: dict[str, dict[str, Any]]) -> None:
    naive = results.get("naive", {})
    header = (
        f"{'runner':8} {'agree':>7} {'sol/s':>7} {'tests/s':>8} {'ms/test':>8} {'ms/call':>8} "
        f"{'open ms':>8} {'sol/s vs naive':>15} {'no-timeout sol/s':>17} {'vs naive':>9} "
        f"{'ms/test vs naive':>17}"
    )
    print(header)
    print("-" * len(header))
    for runner, row in results.items():
        if "skipped" in row:
            print(f"{runner:8} skipped: {row['skipped']}")
            continue
        speed = row["solutions_per_s"] / naive.get("solutions_per_s", math.nan)
        cost = row["per_test_ms_stdin"] / naive.get("per_test_ms_stdin", math.nan)
        quick = row["solutions_per_s_without_timeouts"]
        quick_speed = quick / naive.get("solutions_per_s_without_timeouts", math.nan)
        print(
            f"{runner:8} {row['agree']:>3}/{row['solutions']:<3} {row['solutions_per_s']:>7.2f} "
            f"{row['tests_per_s']:>8.1f} {row['per_test_ms_stdin']:>8.2f} {row['per_test_ms_call']:>8.2f} "
            f"{row['session_open_ms']:>8.1f} {speed:>14.2f}x {quick:>17.2f} {quick_speed:>8.2f}x "
            f"{cost:>16.3f}x"
        )
        for miss in row["disagreements"]:
            print(f"         disagreement: {miss['id']} ({miss['kind']}): {miss['got']} {miss['detail']}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runners", default="process,docker,naive")
    parser.add_argument("--parallel", type=int, default=os.cpu_count() or 1, help="REWARD_CODE_MAX_PARALLEL")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the dev set (best is reported)")
    parser.add_argument("--tests", type=int, default=200, help="trivial tests for the overhead figure")
    # 3 s, as tests/integration/test_code_backend.py: the labeled `timeout` solution 1198A[1] needs 3.5-5 s
    # on this machine, so at TACO's 4 s it is sometimes a timeout and sometimes correct (for every runner).
    parser.add_argument(
        "--time-limit", type=float, default=3.0, help="seconds per test (no limit in the data)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = load_rows()
    results = {runner: await bench_runner(runner, rows, args) for runner in args.runners.split(",")}
    print_table(results)
    naive = results.get("naive", {})
    for row in results.values():
        if "solutions_per_s" in row and "solutions_per_s" in naive:
            row["solutions_per_s_vs_naive"] = row["solutions_per_s"] / naive["solutions_per_s"]
            row["per_test_ms_vs_naive"] = row["per_test_ms_stdin"] / naive["per_test_ms_stdin"]
    report = {
        "timestamp": timestamp(),
        "machine": {**machine_info(), "cpus_available": len(os.sched_getaffinity(0))},
        "dataset": str(DEV_PROBLEMS),
        "parallel": args.parallel,
        "repeat": args.repeat,
        "trivial_tests": args.tests,
        "time_limit_s": args.time_limit,
        "notes": "solutions/s and tests/s: best pass over the 82 dev solutions graded as one request per "
        "problem, all at once, stop at first failure; two solutions hit the time limit (time_limit_s), so "
        "wall time has a floor of about that. ms/test: mean cost of one test of the trivial program in one "
        "session (stdin `pass`, call `def f(): return 0`); open ms: median cost of opening a session and "
        "running one test.",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
