"""Figure 1 of the paper: k-sample policy-gradient estimators on a 100-armed Gaussian bandit.

Setup (paper §3.3, "Empirical study on a bandit case", and the Figure 1 caption):

- ``arms`` actions, each with a fixed (deterministic) reward drawn once from N(0, 1); one bandit per seed.
- A softmax policy pi(y) ∝ exp(theta_y) over the arms, initialised uniform (theta = 0).
- Every update draws ``groups_per_step`` groups of k = 4 i.i.d. arms (the paper: "k = 4 samples per update",
  so one group), scores them with an advantage estimator from :mod:`trainer_client.estimators`
  (``mean_loo``, ``passk_loo``, ``passk_biased`` in the figure), and takes a plain gradient-ascent step with
  learning rate 1.0 on the logits along the score-function estimate sum_i A_i ∇ log pi(y_i).
- After every step the curves are the EXACT expectations under the current policy (no Monte Carlo):
  mean reward E_pi[r], pass@k = E[max of k i.i.d. draws], and KL(pi_theta || pi_ref) to the initial uniform
  policy (the direction the paper names), each averaged over seeds.

All seeds run at once as a batch of independent bandits, in float64. Every estimator sees the same bandits
and the same sampler seed (common random numbers), so the curves coincide at step 0.

Where the paper is silent: the number of steps (300 here) and of seeds (30); one group of k per update (the
caption's "k = 4 samples per update"); the middle panel is mean reward against KL(pi_theta || pi_ref), the
"KL-efficiency" the text describes for the mean performance; the advantages enter the update as the paper's
sum over the k samples, unnormalised.

The scale of the mean estimator. The paper's §3.1 algebra gives the mean policy gradient as
(1/k) Σ_i (r_i - mean_{j!=i} r_j) ∇log pi(y_i), i.e. RLOO/k (``compute_advantages(..., "mean_loo")``, kept
literal there). Its appendix A.4, which puts r_i beside max - max_{-i} in one loss, implies the per-sample
RLOO advantage, k times larger. Only at that RLOO scale does every claim of the caption hold: the mean PG
improves mean reward fastest, yet is less KL-efficient, moves further from pi_ref ("the k-sample gradient
estimates have more conservative updates"), and improves pass@k slower. At the literal scale its steps are k
times smaller: early on it gains mean reward and moves away from pi_ref slower than the pass@k estimators,
so "fastest on mean reward" and "more conservative updates" (at every step) fail. Figure 1 is therefore
reproduced at ``mean_scale="rloo"`` (the default, also of ``trainer-client bandit``); ``mean_scale="literal"``
gives the §3.1 scale.
tests/unit/trainer_client/test_bandit.py asserts each claim (they held for 60/60 base seeds at 100 steps x 32
bandits, and 10/10 at 300 x 30).

Run it with ``trainer-client bandit`` or from Python::

    result = run_bandit(BanditConfig(steps=300, seeds=30))
    write_bandit(result, "runs/bandit")   # bandit.json, bandit.png and one PNG per panel
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from trainer_client.estimators import compute_advantages

__all__ = [
    "BanditConfig",
    "MeanScale",
    "exact_kl_to_uniform",
    "exact_mean_reward",
    "exact_pass_at_k",
    "run_bandit",
    "score_function_gradient",
    "write_bandit",
]

EstimatorKwargs = dict[str, int | float]


class MeanScale(StrEnum):
    """Scale of the mean estimator ``mean_loo`` in the bandit (module docstring)."""

    RLOO = "rloo"  # k x mean_loo: the per-sample RLOO advantage r_i - mean_{j!=i} r_j (appendix A.4)
    LITERAL = "literal"  # mean_loo as §3.1 writes it: RLOO/k


@dataclass(frozen=True)
class BanditConfig:
    """Figure 1 hyperparameters; the defaults are the paper's where it gives them.

    Attributes:
        arms: Number of actions |Y| (paper: 100).
        k: Samples per group, and the k of the pass@k curve (paper: 4).
        steps: Gradient steps (the paper does not say; 300 reaches the plateau of the mean-trained policy).
        seeds: Independent bandits (reward draws and sampling noise) averaged per curve.
        lr: Learning rate of plain gradient ascent on the logits (paper: 1.0).
        groups_per_step: Groups of k samples per update. The paper uses k = 4 samples per update, i.e. one
            group; with more groups the per-group estimates are averaged, so ``lr`` keeps its meaning.
        estimators: Names passed to :func:`trainer_client.estimators.compute_advantages`.
        estimator_kwargs: Extra keyword arguments per estimator name, e.g. ``{"leave_p_out": {"p": 2}}``.
            ``k=config.k`` is always passed (the paper's estimators use the whole group, n = k).
        mean_scale: ``rloo`` (default) multiplies ``mean_loo``'s advantages by k, turning the paper's
            literal RLOO/k into plain RLOO, the scale at which every claim of the caption holds; ``literal``
            keeps RLOO/k (module docstring).
        advantage_scale: Multiplier per estimator name on its advantages (default 1, the paper's equations);
            an entry for ``mean_loo`` takes precedence over ``mean_scale``.
        seed: Base seed for the reward draws and the sampler.
    """

    arms: int = 100
    k: int = 4
    steps: int = 300
    seeds: int = 30
    lr: float = 1.0
    groups_per_step: int = 1
    estimators: tuple[str, ...] = ("mean_loo", "passk_loo", "passk_biased")
    estimator_kwargs: dict[str, EstimatorKwargs] = field(default_factory=dict)
    mean_scale: MeanScale = MeanScale.RLOO
    advantage_scale: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arms < 2 or self.k < 2 or self.seeds < 1 or self.steps < 0 or self.groups_per_step < 1:
            raise ValueError(f"invalid bandit config: {self}")
        if not self.estimators:
            raise ValueError("at least one estimator is needed")
        object.__setattr__(self, "mean_scale", MeanScale(self.mean_scale))  # also from a plain string

    def scale_of(self, name: str) -> float:
        """The multiplier on estimator ``name``'s advantages (``advantage_scale``, then ``mean_scale``)."""
        if name in self.advantage_scale:
            return self.advantage_scale[name]
        return float(self.k) if name == "mean_loo" and self.mean_scale is MeanScale.RLOO else 1.0


def exact_mean_reward(probs: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """E_pi[r] per bandit. ``probs``, ``rewards``: [..., A]; returns [...]."""
    return (probs * rewards).sum(-1)


def exact_pass_at_k(probs: torch.Tensor, rewards: torch.Tensor, k: int) -> torch.Tensor:
    """E[max of k i.i.d. draws from pi] per bandit, exactly.

    With the rewards sorted ascending r_(1) <= ... <= r_(A) and F_j = P(r <= r_(j)) = sum_{l<=j} pi_(l),
    P(max = r_(j)) = F_j^k - F_{j-1}^k. Tied rewards are harmless: their terms add up to the same value.

    Args:
        probs: [..., A] policy probabilities (rows sum to 1).
        rewards: [..., A] arm rewards, same shape.
        k: Number of draws.

    Returns:
        [...] expected maximum reward.

    Example:
        >>> exact_pass_at_k(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, 1.0]]), 2)
        tensor([0.7500])
    """
    sorted_r, order = rewards.sort(dim=-1)
    cdf = probs.gather(-1, order).cumsum(-1).clamp(max=1.0)  # [..., A]
    cdf_k = cdf**k
    pmf_max = torch.diff(cdf_k, dim=-1, prepend=torch.zeros_like(cdf_k[..., :1]))  # P(max = r_(j))
    return (pmf_max * sorted_r).sum(-1)


def exact_kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(pi_theta || pi_ref) to the uniform initial policy, sum_y pi log pi + log A: [..., A] -> [...]."""
    log_p = torch.log_softmax(logits, dim=-1)
    return (log_p.exp() * log_p).sum(-1) + math.log(logits.shape[-1])


def score_function_gradient(probs: torch.Tensor, arm: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """sum_i A_i ∇_theta log pi(y_i) for a softmax policy, using ∇ log softmax(theta)_y = onehot(y) - pi.

    Args:
        probs: [S, A] policy probabilities.
        arm: [S, m] sampled arms (int64).
        adv: [S, m] their advantages.

    Returns:
        [S, A] gradient with respect to the logits.
    """
    return torch.zeros_like(probs).scatter_add_(1, arm, adv) - adv.sum(1, keepdim=True) * probs


def _train_one(config: BanditConfig, name: str, rewards: torch.Tensor, bar: Any) -> dict[str, torch.Tensor]:
    """Train every seed's policy with one estimator; returns each metric as a [steps+1, S] tensor."""
    seeds, arms = rewards.shape
    k, groups = config.k, config.groups_per_step
    kwargs: dict[str, Any] = {"k": k, **config.estimator_kwargs.get(name, {})}
    scale = config.scale_of(name) / groups  # per-group estimates are averaged
    # Same sampler seed for every estimator: the comparison is paired (common random numbers).
    gen = torch.Generator().manual_seed(config.seed + 1)
    logits = torch.zeros(seeds, arms, dtype=torch.float64)
    history = [logits]
    for _ in range(config.steps):
        probs = torch.softmax(logits, dim=-1)  # [S, A]
        arm = torch.multinomial(probs, groups * k, replacement=True, generator=gen)  # [S, G*k]
        group_rewards = rewards.gather(1, arm).reshape(seeds * groups, k)  # [S*G, k]
        adv = compute_advantages(group_rewards, name, **kwargs).reshape(seeds, groups * k) * scale  # [S, G*k]
        logits = logits + config.lr * score_function_gradient(probs, arm, adv)
        history.append(logits)
        bar.update(1)
    # The metrics of all steps at once: [steps+1, S, A] logits is at most a few MB.
    all_logits = torch.stack(history)
    all_probs = torch.softmax(all_logits, dim=-1)
    all_rewards = rewards.expand_as(all_logits)
    return {
        "mean_reward": exact_mean_reward(all_probs, all_rewards),
        "pass_at_k": exact_pass_at_k(all_probs, all_rewards, k),
        "kl": exact_kl_to_uniform(all_logits),
    }


def run_bandit(config: BanditConfig | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Train a softmax bandit policy with each estimator and record exact seed-averaged curves.

    Args:
        config: Experiment settings; ``BanditConfig()`` (the paper's Figure 1) when None.
        progress: Show a tqdm bar over estimators x steps.

    Returns:
        ``{"config": {...}, "curves": {NAME: {"mean_reward": [...], "pass_at_k": [...], "kl": [...]}},
        "stderr": {NAME: {same keys}}}``; every list has ``steps + 1`` floats (step 0 is the uniform
        policy) and is the mean over seeds, "stderr" the standard error of that mean.

    Raises:
        ValueError: from ``compute_advantages`` for an unknown estimator name.

    Example:
        >>> result = run_bandit(BanditConfig(steps=10, seeds=2), progress=False)
        >>> len(result["curves"]["mean_loo"]["pass_at_k"])
        11
    """
    config = config or BanditConfig()
    gen = torch.Generator().manual_seed(config.seed)
    rewards = torch.randn(config.seeds, config.arms, generator=gen, dtype=torch.float64)  # [S, A]

    curves: dict[str, dict[str, list[float]]] = {}
    stderr: dict[str, dict[str, list[float]]] = {}
    total = config.steps * len(config.estimators)
    threads = torch.get_num_threads()
    # The tensors are tiny ([S, A]): intra-op threads only add overhead (over 10x on a busy machine).
    torch.set_num_threads(1)
    try:
        with tqdm(total=total, desc="bandit", unit="step", disable=not progress) as bar:
            histories: dict[str, dict[str, torch.Tensor]] = {}
            for name in config.estimators:
                bar.set_postfix_str(name)
                histories[name] = _train_one(config, name, rewards, bar)
    finally:
        torch.set_num_threads(threads)
    for name, history in histories.items():
        curves[name], stderr[name] = {}, {}
        for metric, values in history.items():  # values: [steps+1, S]
            spread = values.std(1) if config.seeds > 1 else torch.zeros(len(values))
            curves[name][metric] = values.mean(1).tolist()
            stderr[name][metric] = (spread / math.sqrt(config.seeds)).tolist()
    config_dict = asdict(config)
    config_dict["estimators"] = list(config.estimators)
    return {"config": config_dict, "curves": curves, "stderr": stderr}


def write_bandit(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``bandit.json``, the three-panel ``bandit.png`` and one PNG per panel into ``out_dir``.

    Args:
        result: The dict returned by :func:`run_bandit`.
        out_dir: Folder to write into; created if missing.

    Returns:
        The paths written, JSON first.
    """
    from trainer_client.plots import plot_bandit  # matplotlib only when plotting

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "bandit.json"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    return [json_path, *plot_bandit(result, out)]
