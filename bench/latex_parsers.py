"""Measure LaTeX -> sympy parsers for the MATH grader: parse success, time, and dev-pair accuracy.

Candidates:
- sympy `parse_latex`, lark backend (ships with sympy >= 1.13);
- sympy `parse_latex`, antlr backend (needs antlr4-python3-runtime 4.11 exactly);
- latex2sympy2_extended (the parser behind Math-Verify);
- ours: `reward_server.math_grading` (normalize + structure + parse).

For each: how many of the 500 MATH-500 gold answers parse without an exception (raw, and after our
`normalize`), the time per gold answer (mean, p50, p99), and accuracy on `dev_pairs.jsonl` of a grader
made of our extraction + that parser + `a == b or simplify(a - b) == 0`. For ours the full `judge` runs.

Run from the repository root:
    python bench/latex_parsers.py
It prints a table and writes bench/results/latex_parsers.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reward_server.math_grading import extract_answer, judge  # noqa: E402
from reward_server.math_grading.normalize import normalize  # noqa: E402
from reward_server.math_grading.structure import Unparsed, read_answer  # noqa: E402

DATA = ROOT / "data" / "math"
RESULTS = ROOT / "bench" / "results" / "latex_parsers.json"


def _sympy_lark(text: str) -> Any:
    from sympy.parsing.latex import parse_latex

    return parse_latex(text, backend="lark")


def _sympy_antlr(text: str) -> Any:
    from sympy.parsing.latex import parse_latex

    return parse_latex(text, backend="antlr")


def _latex2sympy2(text: str) -> Any:
    from latex2sympy2_extended import latex2sympy

    return latex2sympy(text)


def _ours(text: str) -> Any:
    answer = read_answer(normalize(text))
    if isinstance(answer, Unparsed):
        raise ValueError("unparsed")
    return answer


def _ours_to_sympy(text: str) -> Any:
    from reward_server.math_grading.structure import Scalar
    from reward_server.math_grading.symbolic import to_sympy

    answer = _ours(text)
    # Convert scalars too, for a like-for-like time (grading itself converts only when it needs sympy).
    return to_sympy.__wrapped__(answer.node) if isinstance(answer, Scalar) else answer


PARSERS: dict[str, Callable[[str], Any]] = {
    "sympy parse_latex (lark)": _sympy_lark,
    "sympy parse_latex (antlr)": _sympy_antlr,
    "latex2sympy2_extended": _latex2sympy2,
    "ours (normalize+structure+parse)": _ours,
    "ours + sympy conversion": _ours_to_sympy,
}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def _parse_stats(parse: Callable[[str], Any], texts: list[str]) -> dict[str, Any]:
    ok = 0
    times: list[float] = []
    errors: dict[str, int] = {}
    for text in texts:
        start = time.perf_counter()
        try:
            parse(text)
            ok += 1
        except Exception as error:  # noqa: BLE001 - counting failures of third-party parsers
            errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
        times.append((time.perf_counter() - start) * 1000)
    return {
        "parsed": ok,
        "total": len(texts),
        "mean_ms": statistics.fmean(times),
        "p50_ms": _percentile(times, 0.5),
        "p99_ms": _percentile(times, 0.99),
        "errors": errors,
    }


def _naive_equal(parse: Callable[[str], Any], gold: str, answer: str) -> bool:
    import sympy

    try:
        a, b = parse(gold), parse(answer)
        if a == b:
            return True
        if isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr):
            return bool(sympy.simplify(a - b) == 0)
    except Exception:  # noqa: BLE001 - a parser failure is a "not equal" verdict
        return False
    return False


def _dev_accuracy(name: str, parse: Callable[[str], Any], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    correct = 0
    times: list[float] = []
    for pair in pairs:
        start = time.perf_counter()
        answer = extract_answer(pair["response"])
        if answer is None:
            verdict = False
        elif name.startswith("ours ("):
            verdict = judge(pair["gold"], answer).equivalent
        else:
            verdict = _naive_equal(parse, pair["gold"], answer)
        times.append((time.perf_counter() - start) * 1000)
        correct += verdict == pair["equivalent"]
    return {
        "accuracy": correct / len(pairs),
        "mean_ms": statistics.fmean(times),
        "p99_ms": _percentile(times, 0.99),
    }


def main() -> None:
    warnings.simplefilter("ignore")
    golds = [json.loads(line)["answer"] for line in (DATA / "math_test_500.jsonl").open()]
    pairs = [json.loads(line) for line in (DATA / "dev_pairs.jsonl").open()]
    normalized = [normalize(gold) for gold in golds]
    results: dict[str, Any] = {}
    for name, parse in PARSERS.items():
        try:
            parse("x")  # warm up imports so they do not count as parse time
        except Exception:  # noqa: BLE001 - a parser that cannot even import is reported below
            pass
        raw = _parse_stats(parse, golds)
        norm = _parse_stats(parse, normalized)
        dev = _dev_accuracy(name, parse, pairs) if raw["parsed"] else None
        results[name] = {"gold_raw": raw, "gold_normalized": norm, "dev_pairs": dev}
    header = (
        f"{'parser':34} {'raw ok':>8} {'norm ok':>8} {'mean ms':>8} {'p99 ms':>8} "
        f"{'dev acc':>8} {'dev ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        raw, norm, dev = row["gold_raw"], row["gold_normalized"], row["dev_pairs"]
        acc = f"{dev['accuracy']:.1%}" if dev else "-"
        dev_ms = f"{dev['mean_ms']:.2f}" if dev else "-"
        print(
            f"{name:34} {raw['parsed']:>4}/{raw['total']:<3} {norm['parsed']:>4}/{norm['total']:<3} "
            f"{raw['mean_ms']:>8.2f} {raw['p99_ms']:>8.2f} {acc:>8} {dev_ms:>7}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
