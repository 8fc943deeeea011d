"""The trade-off's outputs: `tradeoff.json` (means and standard errors over seeds), `tradeoff.md` (a table
like the paper's Tables 1-2) and `tradeoff.png` (`trainer_client.plots.plot_tradeoff`).

tradeoff.json:

    {"config": {...},
     "initial": {"pass_at_k": {"1": x, ..., "100": x}, "pass_at_k_sampled": {...}, "maj_at_k": {...},
                 "kl": 0},
     "estimators": {NAME: {"pass_at_k": {"1": mean, ...}, "pass_at_k_se": {...},
                           "pass_at_k_sampled": ..., "pass_at_k_sampled_se": ...,
                           "maj_at_k": ..., "maj_at_k_se": ..., "kl": mean, "kl_se": se,
                           "curves": {"step": [...], "kl": [...], "pass@1": [...], ..., "<metric>_se": [...]},
                           "seeds": N, "per_seed": [...]}}}

`pass_at_k` is exact (the policy's one-token distribution, averaged over the held-out prompts with the task's
answer distribution); `pass_at_k_sampled` and `maj_at_k` are unbiased estimates from n graded samples per
held-out prompt. A standard error is the standard deviation over seeds / sqrt(seeds), null with one seed.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

__all__ = ["TABLE_PASS_KS", "TABLE_MAJ_KS", "summarise", "table_markdown", "write_report"]

TABLE_PASS_KS = (1, 4, 8, 16, 64, 100)
TABLE_MAJ_KS = (8, 64)
LABELS = {
    "mean_loo": "mean PG (mean_loo)",
    "passk_loo": "pass@k PG (passk_loo, eq. 2)",
    "passk_biased": "biased pass@k PG (passk_biased, eq. 3)",
    "maj_loo": "maj@k PG (maj_loo)",
}


def _mean_se(values: list[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return mean, se


def _over_seeds(dicts: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float | None]]:
    keys = [key for key in dicts[0] if all(key in d for d in dicts)]
    pairs = {key: _mean_se([d[key] for d in dicts]) for key in keys}
    return {key: m for key, (m, _) in pairs.items()}, {key: se for key, (_, se) in pairs.items()}


def _curves(curves: list[dict[str, list[float]]]) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {"step": curves[0]["step"]}
    for metric in curves[0]:
        if metric == "step":
            continue
        points = [_mean_se([c[metric][i] for c in curves]) for i in range(len(merged["step"]))]
        merged[metric] = [m for m, _ in points]
        merged[f"{metric}_se"] = [se for _, se in points]
    return merged


def summarise(
    config: dict[str, Any], initial: dict[str, Any], runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Means and standard errors over the seeds of each estimator's runs (the schema of the module doc)."""
    estimators: dict[str, Any] = {}
    for name, seeds in runs.items():
        entry: dict[str, Any] = {}
        for metric in ("pass_at_k", "pass_at_k_sampled", "maj_at_k"):
            entry[metric], entry[f"{metric}_se"] = _over_seeds([run[metric] for run in seeds])
        entry["kl"], entry["kl_se"] = _mean_se([run["kl"] for run in seeds])
        entry["curves"] = _curves([run["curve"] for run in seeds])
        entry["seeds"] = len(seeds)
        entry["per_seed"] = [
            {
                "seed": run["seed"],
                "pass_at_k": {str(k): run["pass_at_k"][str(k)] for k in TABLE_PASS_KS},
                "kl": run["kl"],
            }
            for run in seeds
        ]
        estimators[name] = entry
    return {"config": config, "initial": initial, "estimators": estimators}


def _cell(mean: float, se: float | None) -> str:
    return f"{100 * mean:.1f}" + ("" if se is None else f" ± {100 * se:.1f}")


def table_markdown(result: dict[str, Any]) -> str:
    """The Tables 1-2 style table: one row per policy, exact pass@k and sampled maj@k in percent."""
    maj_ks = [k for k in TABLE_MAJ_KS if str(k) in result["initial"]["maj_at_k"]]
    header = ["policy", *(f"pass@{k}" for k in TABLE_PASS_KS), *(f"maj@{k}" for k in maj_ks), "KL"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    initial = result["initial"]
    cells = [_cell(initial["pass_at_k"][str(k)], None) for k in TABLE_PASS_KS]
    cells += [_cell(initial["maj_at_k"][str(k)], None) for k in maj_ks]
    lines.append("| warm start (SFT) | " + " | ".join([*cells, "0"]) + " |")
    for name, entry in result["estimators"].items():
        cells = [_cell(entry["pass_at_k"][str(k)], entry["pass_at_k_se"][str(k)]) for k in TABLE_PASS_KS]
        cells += [_cell(entry["maj_at_k"][str(k)], entry["maj_at_k_se"][str(k)]) for k in maj_ks]
        kl = f"{entry['kl']:.2f}" + ("" if entry["kl_se"] is None else f" ± {entry['kl_se']:.2f}")
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join([*cells, kl]) + " |")
    return "\n".join(lines) + "\n"


def _sampled_check(result: dict[str, Any]) -> str:
    ks = [k for k in (1, 8, 100) if str(k) in result["initial"]["pass_at_k_sampled"]]
    header = ["policy", *(f"pass@{k} sampled / exact" for k in ks)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    rows = [("warm start (SFT)", result["initial"])] + [
        (LABELS.get(name, name), entry) for name, entry in result["estimators"].items()
    ]
    for label, entry in rows:
        cells = [
            f"{100 * entry['pass_at_k_sampled'][str(k)]:.1f} / {100 * entry['pass_at_k'][str(k)]:.1f}"
            for k in ks
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write tradeoff.json, tradeoff.md and tradeoff.png to `out_dir`; returns their paths."""
    from trainer_client.plots import plot_tradeoff

    out_dir.mkdir(parents=True, exist_ok=True)
    config = result["config"]
    task = config["task"]
    seeds = {entry["seeds"] for entry in result["estimators"].values()}
    sampled_prompts = min(config.get("sampled_prompts") or 10**9, 10 * task["eval_items"])
    text = [
        "# pass@1 / pass@k trade-off at toy scale",
        "",
        f"Offset task: hidden offset distribution Q = {task['offset_probs']}, warm start (SFT, "
        f"{config['sft_steps']} steps) towards {task['sft_probs']} (+{task['sft_smoothing']:g} uniform). "
        f"RL: policy gradient, k = {config['k']} samples per prompt, {config['prompts_per_step']} prompts "
        f"per step, {config['steps']} steps, lr {config['lr']:g}, no KL penalty; "
        f"{', '.join(str(s) for s in sorted(seeds))} seed(s) per estimator. "
        f"Held-out prompts: {10 * task['eval_items']}.",
        "",
        "pass@k: exact (the one-token output distribution); maj@k: unbiased estimate from "
        f"n = {config['eval_samples']} graded samples per prompt; percent, mean ± standard error over seeds. "
        "KL: exact KL(π‖π_SFT) on the held-out prompts.",
        "",
        table_markdown(result),
        f"Optima of this task: always answering the most likely offset maximises pass@1 at "
        f"{100 * max(task['offset_probs']):.1f} (and then pass@k = pass@1 for every k).",
        "",
        f"Sampled (n = {config['eval_samples']} samples on {sampled_prompts} held-out prompts, one reference "
        "each) against exact (all held-out prompts, every reference):",
        "",
        _sampled_check(result),
        f"Wall time: {config.get('wall_s', 0):.0f} s.",
        "",
    ]
    paths = [out_dir / "tradeoff.json", out_dir / "tradeoff.md", out_dir / "tradeoff.png"]
    paths[0].write_text(json.dumps(result, indent=2))
    paths[1].write_text("\n".join(text))
    plot_tradeoff(result, paths[2])
    return paths
