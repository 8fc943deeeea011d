"""Plot helpers for the trainer's experiment outputs (non-interactive, PNG only).

The bandit figure (paper Figure 1, :func:`plot_bandit`) and the pass@1 / pass@k trade-off of
`trainer-client reproduce tradeoff` (:func:`plot_tradeoff`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

__all__ = ["BANDIT_PANELS", "Panel", "plot_bandit", "plot_tradeoff"]

# Readable names for the estimator keys of compute_advantages, as the paper's legend puts them.
LABELS = {
    "mean_loo": "mean PG (leave-one-out)",
    "passk_loo": "pass@k PG (eq. 2)",
    "passk_biased": "biased pass@k PG (eq. 3)",
    "maj_loo": "maj@k PG (leave-one-out)",
}

KL_LABEL = "$KL(\\pi_\\theta, \\pi_{{ref}})$"
MEAN_LABEL = "mean reward $E_\\pi[r]$"
PASSK_LABEL = "pass@{k} = E[max of {k} draws]"


@dataclass(frozen=True)
class Panel:
    """One subplot: ``y`` against ``x`` (a metric of the curves, or None for the learning step)."""

    stem: str
    x: str | None
    y: str
    x_label: str
    y_label: str
    title: str


BANDIT_PANELS = (
    Panel("bandit_mean_reward", None, "mean_reward", "learning step", MEAN_LABEL, "Mean reward"),
    Panel("bandit_mean_reward_vs_kl", "kl", "mean_reward", KL_LABEL, MEAN_LABEL, "KL efficiency"),
    Panel("bandit_pass_at_k", None, "pass_at_k", "learning step", PASSK_LABEL, "Pass@{k}"),
)
# Not one of the paper's panels, but the KL curve over time is what the middle panel is built from.
EXTRA_PANELS = (Panel("bandit_kl", None, "kl", "learning step", KL_LABEL, "KL to the initial policy"),)


def _draw(ax: Axes, result: dict[str, Any], panel: Panel) -> None:
    x_metric, y_metric = panel.x, panel.y
    k = result["config"]["k"]
    stderr = result.get("stderr", {})
    for name, curve in result["curves"].items():
        y = curve[y_metric]
        x = curve[x_metric] if x_metric else list(range(len(y)))
        (line,) = ax.plot(x, y, label=LABELS.get(name, name), linewidth=1.6)
        band = stderr.get(name, {}).get(y_metric)
        if band and x_metric is None:  # a band over a curve that moves in x as well would mislead
            lo = [m - s for m, s in zip(y, band, strict=True)]
            hi = [m + s for m, s in zip(y, band, strict=True)]
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(panel.x_label.format(k=k))
    ax.set_ylabel(panel.y_label.format(k=k))
    ax.set_title(panel.title.format(k=k))
    ax.grid(alpha=0.3)


def _mean_scale_text(config: dict[str, Any]) -> str:
    """How the mean PG's advantages were scaled; a result without `mean_scale` predates it (literal)."""
    explicit = (config.get("advantage_scale") or {}).get("mean_loo")
    if explicit is not None:
        return f"mean PG: mean_loo × {explicit:g}"
    if config.get("mean_scale", "literal") == "rloo":
        return "mean PG at RLOO scale (mean_loo × k, as appendix A.4)"
    return "mean PG at the literal 1/k scale of §3.1 (mean_loo = RLOO/k)"


def _suptitle(config: dict[str, Any]) -> str:
    others = {n: v for n, v in (config.get("advantage_scale") or {}).items() if n != "mean_loo"}
    scaled = "".join(f", {n} × {v:g}" for n, v in others.items())
    return (
        f"Softmax bandit: {config['arms']} arms, r ~ N(0,1), k = {config['k']}, "
        f"{config['groups_per_step']} group(s) of k per step, lr = {config['lr']:g}, "
        f"{config['seeds']} seeds (mean ± s.e.)\n{_mean_scale_text(config)}{scaled}"
    )


def plot_bandit(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Draw paper Figure 1 from a :func:`trainer_client.bandit.run_bandit` result.

    ``bandit.png`` has the three panels (mean reward vs step, mean reward vs KL to the initial policy,
    pass@k vs step); each panel, and KL vs step, is also written on its own.

    Args:
        result: ``{"config": ..., "curves": ..., "stderr": ...}`` from ``run_bandit``.
        out_dir: An existing folder.

    Returns:
        The PNG paths, ``bandit.png`` first.
    """
    config = result["config"]
    fig, axes = plt.subplots(1, len(BANDIT_PANELS), figsize=(15, 4.4), constrained_layout=True)
    for ax, panel in zip(axes, BANDIT_PANELS, strict=True):
        _draw(ax, result, panel)
    axes[0].legend(loc="lower right", fontsize=9)
    fig.suptitle(_suptitle(config), fontsize=11)
    paths = [out_dir / "bandit.png"]
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)

    for panel in (*BANDIT_PANELS, *EXTRA_PANELS):
        fig, ax = plt.subplots(figsize=(5.5, 4.2), constrained_layout=True)
        _draw(ax, result, panel)
        ax.legend(fontsize=8)
        fig.suptitle(_suptitle(config), fontsize=7)
        path = out_dir / f"{panel.stem}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def _band(
    ax: Axes, x: Sequence[float], y: Sequence[float], se: Sequence[float | None] | None, color: str
) -> None:
    """A ± one standard error band, where there is one (none with a single seed)."""
    if se is None or any(s is None for s in se):
        return
    lo = [m - s for m, s in zip(y, se, strict=True) if s is not None]
    hi = [m + s for m, s in zip(y, se, strict=True) if s is not None]
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)


def plot_tradeoff(result: dict[str, Any], path: Path) -> Path:
    """Draw the trade-off of a :func:`trainer_client.reproduce.tradeoff.run_tradeoff` result.

    Top row: exact pass@k against k after training, then held-out pass@1 and pass@k (k of training) against
    the training step. Bottom row: sampled maj@k against k, then the same two metrics against the KL to the
    warm start. One line per estimator, ± one standard error over seeds; the warm start dashed.

    Args:
        result: The content of tradeoff.json.
        path: The PNG to write.

    Returns:
        `path`.
    """
    config = result["config"]
    k_train = config["k"]
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5), constrained_layout=True)
    for row, metric, title in ((0, "pass_at_k", "pass@k (exact)"), (1, "maj_at_k", "maj@k (sampled)")):
        ax = axes[row][0]
        initial = result["initial"][metric]
        ks = sorted(int(k) for k in initial)
        ax.plot(ks, [initial[str(k)] for k in ks], "k--", label="warm start (SFT)", linewidth=1.2)
        for name, entry in result["estimators"].items():
            ks = sorted(int(k) for k in entry[metric])
            y = [entry[metric][str(k)] for k in ks]
            (line,) = ax.plot(ks, y, label=LABELS.get(name, name), linewidth=1.6)
            _band(ax, ks, y, [entry[f"{metric}_se"][str(k)] for k in ks], line.get_color())
        ax.set_xscale("log")
        ax.set_xlabel("k (samples at inference)")
        ax.set_ylabel(title)
        ax.set_title(f"Held-out {title} after training")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower right")
    for col, curve_metric in ((1, "pass@1"), (2, f"pass@{k_train}")):
        for row, x_metric in ((0, "step"), (1, "kl")):
            ax = axes[row][col]
            for name, entry in result["estimators"].items():
                curves = entry["curves"]
                x, y = curves[x_metric], curves[curve_metric]
                (line,) = ax.plot(x, y, label=LABELS.get(name, name), linewidth=1.6, marker=".")
                if x_metric == "step":  # a band over a curve that moves in x as well would mislead
                    _band(ax, x, y, curves.get(f"{curve_metric}_se"), line.get_color())
            ax.set_xlabel("RL step" if x_metric == "step" else KL_LABEL.replace("ref", "SFT"))
            ax.set_ylabel(f"held-out {curve_metric}")
            ax.set_title(f"Held-out {curve_metric} against {'step' if x_metric == 'step' else 'KL'}")
            ax.grid(alpha=0.3)
    task = config["task"]
    seeds = sorted({entry["seeds"] for entry in result["estimators"].values()})
    fig.suptitle(
        f"Offset task Q = {task['offset_probs']}: RL from one SFT warm start, k = {k_train}, "
        f"{config['steps']} steps, {'/'.join(map(str, seeds))} seed(s) per estimator (mean ± s.e.)",
        fontsize=11,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
