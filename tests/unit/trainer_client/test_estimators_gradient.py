"""Monte Carlo: the unbiased estimators' mean gradient equals the exact gradient of their objective.

A 5-armed bandit with a softmax policy π = softmax(θ) and fixed rewards (and answer classes for majority
voting). The exact k-sample objective J(θ) = E[f(y_1..y_k)] is a sum over all 5^k arm tuples, and its
gradient comes from torch autograd through that enumeration. The estimate is the mean over many sampled
groups of Σ_i A_i ∇_θ log π(y_i), with ∇_θ log π(y) = onehot(y) - π in closed form. Each gradient
component must agree within 5 standard errors (fixed seeds, so the test is deterministic).

The biased estimators (paper eq. 3) are checked the other way round: by the paper's Lemma 2 their mean is
the gradient of the (k-1)-sample objective, and it is clearly *not* the gradient of the k-sample one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import product

import pytest
import torch
from torch import Tensor

from tests.unit.trainer_client.test_estimators_oracle import f_majority, f_max, f_mean, f_softmax
from trainer_client.estimators import compute_advantages

ARMS = 5
THETA = torch.tensor([0.3, -0.2, 0.4, 0.1, -0.5], dtype=torch.float64)
REWARD = [0.2, 0.9, 0.5, 0.9, -0.1]  # continuous, with a tie at the top (arms 1 and 3)
# Majority voting: arm -> answer class (-1 = no answer). Class 0 is correct; class 1 (two arms) and class 2
# are wrong; arm 4 abstains, and "no answer" is worth its reward 0.
CLASS = [0, 1, 1, 2, -1]
CLASS_REWARD = [1.0, 0.0, 0.0, 0.0, 0.0]
CLASS_VALUE = {0: 1.0, 1: 0.0, 2: 0.0}
GROUPS = 50_000
SIGMAS = 5.0

Objective = Callable[[Sequence[int]], float]  # f of a tuple of arms


def reward_objective(f: Callable[[Sequence[float]], float]) -> Objective:
    return lambda arms: f([REWARD[a] for a in arms])


def majority_objective(arms: Sequence[int]) -> float:
    return f_majority(CLASS_VALUE, abstain_value=0.0)([CLASS[a] for a in arms])


def exact_gradient(f: Objective, k: int) -> Tensor:
    """∇_θ Σ_{arm k-tuples} Π_j π(a_j) f(a_1..a_k), by autograd through the full enumeration."""
    theta = THETA.clone().requires_grad_(True)
    probs = torch.softmax(theta, dim=0)
    tuples = list(product(range(ARMS), repeat=k))
    index = torch.tensor(tuples)  # [5^k, k]
    values = torch.tensor([f(t) for t in tuples], dtype=torch.float64)
    objective = (probs[index].prod(dim=1) * values).sum()
    (grad,) = torch.autograd.grad(objective, theta)
    return grad


def sampled_gradient(name: str, n: int, seed: int, **kwargs: float) -> tuple[Tensor, Tensor]:
    """Mean and standard error over GROUPS groups of Σ_i A_i (onehot(y_i) - π)."""
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(THETA, dim=0)
    arms = torch.multinomial(probs.expand(GROUPS, ARMS), n, replacement=True, generator=gen)  # [G, n]
    if name.startswith("maj"):
        rewards = torch.tensor(CLASS_REWARD, dtype=torch.float64)[arms]
        adv = compute_advantages(rewards, name, classes=torch.tensor(CLASS)[arms], **kwargs)  # type: ignore[arg-type]
    else:
        rewards = torch.tensor(REWARD, dtype=torch.float64)[arms]
        adv = compute_advantages(rewards, name, **kwargs)  # type: ignore[arg-type]
    score = torch.nn.functional.one_hot(arms, ARMS).to(torch.float64) - probs  # [G, n, 5]
    per_group = (adv.unsqueeze(-1) * score).sum(dim=1)  # [G, 5]
    return per_group.mean(dim=0), per_group.std(dim=0) / math.sqrt(GROUPS)


UNBIASED = [
    # name, group size n, kwargs, objective f, objective's k
    ("mean_loo", 4, {}, reward_objective(f_mean), 1),
    ("passk_loo", 4, {}, reward_objective(f_max), 4),
    ("passk_softmax_baseline", 4, {"beta": 2.0}, reward_objective(f_max), 4),
    ("softmax_loo", 4, {"beta": 2.0}, reward_objective(f_softmax(2.0)), 4),
    ("leave_p_out", 4, {"p": 2}, reward_objective(f_max), 2),  # objective (5) is pass@(k-p) in expectation
    ("pkpo", 6, {"k": 3}, reward_objective(f_max), 3),
    ("pkpo_loo1", 6, {"k": 3}, reward_objective(f_max), 3),
    ("pkpo_loo1", 4, {"k": 4}, reward_objective(f_max), 4),
    ("maj_loo", 4, {}, majority_objective, 4),
    ("maj_loo", 3, {}, majority_objective, 3),
    ("passk_biased", 4, {}, reward_objective(f_max), 3),  # Lemma 2: unbiased for pass@(k-1)
    ("maj_biased", 4, {}, majority_objective, 3),  # Lemma 2: unbiased for maj@(k-1)
]


@pytest.mark.parametrize(("name", "n", "kwargs", "f", "k"), UNBIASED)
def test_mean_gradient_is_the_exact_gradient(
    name: str, n: int, kwargs: dict[str, float], f: Objective, k: int
) -> None:
    exact = exact_gradient(f, k)
    mean, stderr = sampled_gradient(name, n, seed=1234, **kwargs)
    assert bool((stderr > 0).all())
    z = (mean - exact).abs() / stderr
    assert bool((z < SIGMAS).all()), f"{name}: mean {mean.tolist()} exact {exact.tolist()} z {z.tolist()}"


@pytest.mark.parametrize(
    ("name", "f"), [("passk_biased", reward_objective(f_max)), ("maj_biased", majority_objective)]
)
def test_biased_estimators_miss_the_k_sample_gradient(name: str, f: Objective) -> None:
    mean, stderr = sampled_gradient(name, 4, seed=99)
    z = (mean - exact_gradient(f, 4)).abs() / stderr
    assert float(z.max()) > 3 * SIGMAS, f"{name}: z {z.tolist()}"
