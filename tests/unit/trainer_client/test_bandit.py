"""Paper Figure 1 (softmax bandit): exact metrics against enumeration, result shape, and the figure's claims.

The claim tests run 100 steps x 32 seeds at a fixed seed. Each asserted comparison held for all 40 base
seeds tried (0..39) at this size; claims that did not (see trainer_client/bandit.py) are not asserted.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trainer_client.bandit import (
    BanditConfig,
    exact_kl_to_uniform,
    exact_mean_reward,
    exact_pass_at_k,
    run_bandit,
    score_function_gradient,
    write_bandit,
)

CLAIM_CONFIG = BanditConfig(steps=100, seeds=32, seed=0)


@pytest.fixture(scope="module")
def curves() -> dict[str, dict[str, list[float]]]:
    result: dict[str, dict[str, list[float]]] = run_bandit(CLAIM_CONFIG, progress=False)["curves"]
    return result


@pytest.fixture(scope="module")
def rloo_curve() -> dict[str, list[float]]:
    """The mean estimator scaled by k, i.e. plain RLOO (same bandits and sampler seed as `curves`)."""
    config = BanditConfig(
        steps=CLAIM_CONFIG.steps,
        seeds=CLAIM_CONFIG.seeds,
        seed=CLAIM_CONFIG.seed,
        estimators=("mean_loo",),
        advantage_scale={"mean_loo": float(CLAIM_CONFIG.k)},
    )
    curve: dict[str, list[float]] = run_bandit(config, progress=False)["curves"]["mean_loo"]
    return curve


def at_kl(curve: dict[str, list[float]], kl: float, metric: str) -> float:
    """`metric` where the seed-averaged KL first reaches `kl` (linear interpolation)."""
    kls = np.asarray(curve["kl"])
    last = int(np.argmax(kls >= kl))
    return float(np.interp(kl, kls[: last + 1], np.asarray(curve[metric])[: last + 1]))


# --- exact expectations -------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3])
def test_exact_pass_at_k_matches_enumeration(k: int) -> None:
    gen = torch.Generator().manual_seed(k)
    probs = torch.softmax(torch.randn(3, 4, generator=gen, dtype=torch.float64), dim=-1)
    rewards = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    rewards[2, 1] = rewards[2, 3]  # a tie
    draws = torch.tensor(list(itertools.product(range(4), repeat=k)))  # every ordered k-tuple: [4^k, k]
    expected = (probs[:, draws].prod(-1) * rewards[:, draws].max(-1).values).sum(-1)  # [3]
    torch.testing.assert_close(exact_pass_at_k(probs, rewards, k), expected)


def test_exact_mean_and_kl() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, -2.0, 0.5, 3.0]], dtype=torch.float64)
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, -1.0, 2.0]], dtype=torch.float64)
    probs = torch.softmax(logits, dim=-1)
    torch.testing.assert_close(exact_mean_reward(probs, rewards)[0], torch.tensor(2.5, dtype=torch.float64))
    kl = (probs * (probs / 0.25).log()).sum(-1)  # KL(pi || uniform over 4 arms)
    torch.testing.assert_close(exact_kl_to_uniform(logits), kl)
    assert exact_kl_to_uniform(logits)[0].item() == pytest.approx(0.0, abs=1e-12)


def test_score_function_gradient_matches_autograd() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    arm = torch.tensor([[0, 3, 3, 1], [4, 4, 2, 0]])
    adv = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    objective = (adv * torch.log_softmax(logits, -1).gather(1, arm)).sum()
    (expected,) = torch.autograd.grad(objective, logits)
    probs = torch.softmax(logits.detach(), dim=-1)
    torch.testing.assert_close(score_function_gradient(probs, arm, adv), expected)


# --- result and files ---------------------------------------------------------------------------------


def test_result_shape_json_and_pngs(tmp_path: Path) -> None:
    config = BanditConfig(arms=10, steps=5, seeds=3, groups_per_step=2)
    result = run_bandit(config, progress=False)
    assert set(result) == {"config", "curves", "stderr"}
    assert result["config"]["estimators"] == ["mean_loo", "passk_loo", "passk_biased"]
    assert result["config"]["k"] == 4 and result["config"]["lr"] == 1.0
    for part in ("curves", "stderr"):
        assert list(result[part]) == list(config.estimators)
        for curve in result[part].values():
            assert set(curve) == {"mean_reward", "pass_at_k", "kl"}
            assert all(len(values) == config.steps + 1 for values in curve.values())
            assert all(math.isfinite(v) for values in curve.values() for v in values)
    # Step 0 is the uniform policy on the same bandits, for every estimator.
    starts = {name: {m: v[0] for m, v in curve.items()} for name, curve in result["curves"].items()}
    assert len({json.dumps(s, sort_keys=True) for s in starts.values()}) == 1
    assert starts["mean_loo"]["kl"] == pytest.approx(0.0, abs=1e-12)
    assert starts["mean_loo"]["pass_at_k"] > starts["mean_loo"]["mean_reward"]

    paths = write_bandit(result, tmp_path / "out")
    names = [p.name for p in paths]
    assert names[:2] == ["bandit.json", "bandit.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert json.loads((tmp_path / "out" / "bandit.json").read_text()) == result


def test_unknown_estimator_is_rejected() -> None:
    with pytest.raises(ValueError, match="no_such"):
        run_bandit(BanditConfig(arms=5, steps=1, seeds=1, estimators=("no_such",)), progress=False)


# --- Figure 1 claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["passk_loo", "passk_biased"])
def test_k_sample_estimators_improve_pass_at_k_faster(curves: dict[str, Any], name: str) -> None:
    """Right panel: 'the k-sample gradient estimates lead to significantly faster improvements'."""
    mean_pg = np.mean(curves["mean_loo"]["pass_at_k"])
    assert np.mean(curves[name]["pass_at_k"]) > mean_pg + 0.1  # average over the run


@pytest.mark.parametrize("name", ["passk_loo", "passk_biased"])
def test_k_sample_estimators_move_less_from_reference(curves: dict[str, Any], name: str) -> None:
    """'The k-sample gradient estimates have more conservative updates compared to the mean gradient.'"""
    assert curves[name]["kl"][-1] < curves["mean_loo"]["kl"][-1]


def test_passk_loo_is_more_kl_efficient(curves: dict[str, Any]) -> None:
    """Middle panel: at the largest KL every run reaches, pass@k LOO has the higher mean reward."""
    kl = min(max(c["kl"]) for c in curves.values())
    assert at_kl(curves["passk_loo"], kl, "mean_reward") > at_kl(curves["mean_loo"], kl, "mean_reward")


def test_rloo_scaled_mean_pg_reproduces_the_caption(
    curves: dict[str, Any], rloo_curve: dict[str, list[float]]
) -> None:
    """With plain RLOO (mean_loo x k) the mean PG is fastest on mean reward yet least KL-efficient.

    With the paper's literal RLOO/k the first part does not hold (it starts slower); see bandit.py.
    """
    early = slice(0, 51)
    for name in ("passk_loo", "passk_biased"):
        assert np.mean(rloo_curve["mean_reward"][early]) > np.mean(curves[name]["mean_reward"][early])
        kl = min(max(rloo_curve["kl"]), max(curves[name]["kl"]))
        assert at_kl(curves[name], kl, "mean_reward") > at_kl(rloo_curve, kl, "mean_reward")
        assert np.mean(curves[name]["pass_at_k"]) > np.mean(rloo_curve["pass_at_k"])
