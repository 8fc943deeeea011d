"""PKPO (Walder & Karkhanis 2025): unbiased pass@k / maxg@k gradients from n >= k (docs/estimators.md §9).

The k-sample objective is estimated by the U-statistic over all k-subsets of the n samples, ρ^(g) =
(1/C(n,k)) Σ_{|I|=k} max_I g, and every weight below is that subset average of a per-subset credit, put in
closed form with the rewards sorted ascending (g_(1) <= ... <= g_(n), 1-based ranks):
    ρ^(g)         = Σ_i C(i-1, k-1) g_(i) / C(n, k)
    s_(i)         = [C(i-1, k-1) g_(i) + Σ_{j>i} C(j-2, k-2) g_(j)] / C(n, k)          (credit: max_I)
    s^(loo-1)_(i) = [C(i-1, k-1) g_(i) - Σ_{j<i} C(j-1, k-2) g_(j)] / C(n, k)   (credit: max_I - max_{I\\i})
The binomial ratios only depend on (n, k) and are computed once per call in float64 via lgamma. O(n log n)
per group and tie-invariant (tied rewards contribute equal values whatever order the sort gives them).
With n = k, `pkpo_loo1` is exactly the paper's `passk_loo` and `pkpo` is REINFORCE with f = max(r).
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer_client.estimators.base import (
    EstimatorParams,
    binom_ratio,
    exclusive_cumsum,
    register_estimator,
    reverse_exclusive_cumsum,
)


def _ranks(n: int, device: torch.device) -> Tensor:
    return torch.arange(1, n + 1, dtype=torch.float64, device=device)  # 1-based ranks i = 1..n


@register_estimator("pkpo", requires=("k",), k_policy="subset")
def pkpo(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
    """PKPO weights s_i = (1/C(n,k)) Σ_{|I|=k, I∋i} max_I g: unbiased ∇ maxg@k, no baseline (not centred).

    Binary rewards give k/n for a correct sample and (k/n)·ρ(n-1, c, k-1) for an incorrect one.

    Example:
        >>> pkpo(torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64), None, EstimatorParams(k=2))
        tensor([[0.5000, 0.3333, 0.3333, 0.5000]], dtype=torch.float64)
    """
    n, k = rewards.shape[1], params.k
    rank = _ranks(n, rewards.device)
    g, order = rewards.sort(dim=1)  # ascending, [B, n]
    own = binom_ratio(rank - 1, k - 1, n, k) * g  # i is the max of its subset
    above = binom_ratio(rank - 2, k - 2, n, k) * g  # j > i is the max of a subset holding i
    s_sorted = own + reverse_exclusive_cumsum(above)
    return torch.empty_like(rewards).scatter_(1, order, s_sorted)


@register_estimator("pkpo_loo1", requires=("k",), k_policy="subset")
def pkpo_loo1(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
    """PKPO s^(loo-1) (PKPO eq. 33): the paper's pass@k leave-one-out credit averaged over all k-subsets.

    Unbiased ∇ maxg@k, non-negative, not centred; the default PKPO choice. Binary rewards give
    (k/n)·C(n-c, k-1)/C(n-1, k-1) for a correct sample and 0 for an incorrect one.

    Example:
        >>> pkpo_loo1(torch.tensor([[0.2, 0.9, 0.5, 0.7]], dtype=torch.float64), None, EstimatorParams(k=3))
        tensor([[0.0000, 0.2000, 0.0000, 0.0500]], dtype=torch.float64)
    """
    n, k = rewards.shape[1], params.k
    rank = _ranks(n, rewards.device)
    g, order = rewards.sort(dim=1)  # ascending, [B, n]
    own = binom_ratio(rank - 1, k - 1, n, k) * g  # i is the max of its subset
    below = binom_ratio(rank - 1, k - 2, n, k) * g  # j < i is the runner-up once i leaves
    s_sorted = own - exclusive_cumsum(below)
    return torch.empty_like(rewards).scatter_(1, order, s_sorted)


def maxg_at_k(rewards: Tensor, k: int) -> Tensor:
    """Unbiased E[max of k rewards] from n >= k samples, ρ^(g) = (1/C(n,k)) Σ_{|I|=k} max_I: [B, n] -> [B].

    With binary rewards it equals Chen's `pass_at_k(n, c, k)`. NaN rewards are not allowed here.

    Args:
        rewards: real tensor [B, n] (no NaN).
        k: subset size, 1 <= k <= n.

    Returns:
        float64 tensor [B].

    Raises:
        ValueError: k outside [1, n], NaN rewards, or rewards not 2-D.

    Example:
        >>> maxg_at_k(torch.tensor([[0.2, 0.9, 0.5, 0.7]]), 2)
        tensor([0.7667], dtype=torch.float64)
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must have shape [B, n], got {tuple(rewards.shape)}")
    n = rewards.shape[1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an int with 1 <= k <= n = {n}, got {k!r}")
    g = rewards.detach().to(torch.float64)
    if bool(torch.isnan(g).any()):
        raise ValueError("maxg_at_k does not accept NaN rewards; drop failed samples first")
    g = g.sort(dim=1).values  # ascending
    return (binom_ratio(_ranks(n, g.device) - 1, k - 1, n, k) * g).sum(dim=1)
