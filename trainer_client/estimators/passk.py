"""pass@k with k = n: the paper's leave-one-out estimator (eq. 2), its biased variant (eq. 3), leave-p-out
(appendix B.2, eq. 5), and Chen et al.'s unbiased pass@k from n >= k samples for evaluation.

The paper writes the rewards sorted ascending, r_(1) <= ... <= r_(k). Then the leave-one-out credit
max(r) - max(r_-i) is r_(k) - r_(k-1) for the unique argmax and 0 for everyone else, including every sample
when the top two tie. See docs/estimators.md §6.1, §6.2, §6.3 and §10.
"""

from __future__ import annotations

from typing import overload

import torch
from torch import Tensor

from trainer_client.estimators.base import (
    EstimatorParams,
    binom_ratio,
    exclusive_cumsum,
    register_estimator,
    reverse_exclusive_cumsum,
)


def best_minus_second(rewards: Tensor) -> Tensor:
    """max(r) - max(r_-i) for every i: r_(1) - r_(2) on one argmax, 0 elsewhere. [B, n] -> [B, n], n >= 2.

    A tie at the top gives a zero difference whichever tied index `topk` picks, so ties get no credit.
    """
    top2 = rewards.topk(2, dim=1)  # values, indices: [B, 2]
    gap = top2.values[:, :1] - top2.values[:, 1:2]  # [B, 1]
    return torch.zeros_like(rewards).scatter_(1, top2.indices[:, :1], gap)


@register_estimator("passk_loo")
def passk_loo(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
    """pass@k with the leave-one-out baseline (paper eq. 2): best minus second best on the unique argmax.

    Unbiased for the gradient of E[max of k rewards] with k = n. Non-negative and sparse: with binary
    rewards only a group with exactly one correct sample gets a signal.

    Example:
        >>> passk_loo(torch.tensor([[0.2, 0.9, 0.5, 0.7]], dtype=torch.float64), None, EstimatorParams(k=4))
        tensor([[0.0000, 0.2000, 0.0000, 0.0000]], dtype=torch.float64)
    """
    return best_minus_second(rewards)


@register_estimator("passk_biased")
def passk_biased(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
    """pass@k leave-one-out minus its group mean (paper eq. 3): centred, biased towards pass@(k-1).

    By the paper's Lemma 2 it is an unbiased gradient of E[(1/k) Σ_j max(r_-j)] = pass@(k-1) (for i.i.d.
    samples), which is (k-1)/k r_(k) + 1/k r_(k-1) in expectation.

    Example:
        >>> r = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
        >>> passk_biased(r, None, EstimatorParams(k=4))
        tensor([[ 0.7500, -0.2500, -0.2500, -0.2500]], dtype=torch.float64)
    """
    delta = best_minus_second(rewards)  # [B, n]
    return delta - delta.mean(dim=1, keepdim=True)


@register_estimator("leave_p_out", requires=("p",))
def leave_p_out(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
    """Leave-p-out pass@k (paper appendix B.2, eq. 5): A_i = (1/C(k-1,p-1)) Σ_{s∋i} (A_s - Ā).

    Closed form instead of enumerating the C(k, p) subsets. The objective (5) averages the max of the
    q = k - p samples left out of each p-subset, i.e. it is U(r; q), the average of max over all q-subsets
    (PKPO's maxg@q). Expanding the paper's advantage gives A_i = U(r; q) - U(r_-i; q), the leave-one-out
    difference of that U-statistic, so the estimator is centred and unbiased for the gradient of pass@(k-p).
    With the rewards sorted ascending (g_(1) <= ... <= g_(k), 1-based ranks) and i at rank t:
        U(r; q)    = Σ_j C(j-1, q-1) g_(j) / C(k, q)
        U(r_-i; q) = [Σ_{j<t} C(j-1, q-1) g_(j) + Σ_{j>t} C(j-2, q-1) g_(j)] / C(k-1, q)
    (ranks above t move down by one once i is removed). p = 1 is `passk_biased`; p = k - 1 is `mean_loo`.
    O(k log k) per group; it is tie-invariant because tied rewards contribute equal values.

    Example:
        >>> r = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
        >>> leave_p_out(r, None, EstimatorParams(k=4, p=2))
        tensor([[ 0.5000, -0.1667, -0.1667, -0.1667]], dtype=torch.float64)
    """
    assert params.p is not None
    n = rewards.shape[1]
    q = n - params.p  # size of the subset that stays in the objective, 1 <= q <= n - 1
    sorted_r, order = rewards.sort(dim=1)  # ascending, [B, n]
    rank = torch.arange(1, n + 1, dtype=torch.float64, device=rewards.device)  # j = 1..n
    full = (binom_ratio(rank - 1, q - 1, n, q) * sorted_r).sum(dim=1, keepdim=True)  # U(r; q): [B, 1]
    below = binom_ratio(rank - 1, q - 1, n - 1, q) * sorted_r  # ranks j < t keep their rank
    above = binom_ratio(rank - 2, q - 1, n - 1, q) * sorted_r  # ranks j > t drop by one
    loo_sorted = exclusive_cumsum(below) + reverse_exclusive_cumsum(above)  # U(r_-i; q): [B, n]
    return torch.empty_like(rewards).scatter_(1, order, full - loo_sorted)


# `pass_at_k` takes the product form up to numel x product length = 2**26 log1p terms (well under a second),
# in chunks of 2**22 entries (32 MiB of float64), and lgamma differences beyond.
_PRODUCT_FORM_MAX = 1 << 26
_CHUNK = 1 << 22


@overload
def pass_at_k(n: int, c: int, k: int) -> float: ...
@overload
def pass_at_k(n: Tensor, c: Tensor | int, k: Tensor | int) -> Tensor: ...
@overload
def pass_at_k(n: int, c: Tensor, k: Tensor | int) -> Tensor: ...
@overload
def pass_at_k(n: int, c: int, k: Tensor) -> Tensor: ...
def pass_at_k(n: Tensor | int, c: Tensor | int, k: Tensor | int) -> Tensor | float:
    """Chen et al. (2021) unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k).

    Computed in float64 as -expm1(log q) with log q = log C(n-c, k) - log C(n, k), so it neither overflows at
    large n nor loses precision when the pass rate is near 0; it is exactly 1 when n - c < k. log q is the
    sum of log1p terms of the shorter of the two products Π_{j<c} (1 - k/(n-j)) = Π_{j<k} (1 - c/(n-j))
    (accurate to a few ulp), or lgamma differences when numel x product length exceeds 2**26 (then about
    1e-10 absolute at n ~ 1e5). Broadcasts like torch.

    Args:
        n: samples per problem (int or integer-valued tensor).
        c: correct samples, 0 <= c <= n.
        k: budget, 1 <= k <= n.

    Returns:
        A float when n, c and k are all ints, else a float64 tensor of the broadcast shape.

    Raises:
        ValueError: c outside [0, n] or k outside [1, n].

    Example:
        >>> pass_at_k(200, 3, 100)
        0.8768844221105527
        >>> pass_at_k(torch.tensor([4, 4, 4, 4]), 2, torch.tensor([1, 2, 3, 4]))
        tensor([0.5000, 0.8333, 1.0000, 1.0000], dtype=torch.float64)
    """
    scalar = not any(isinstance(x, Tensor) for x in (n, c, k))
    device = next((x.device for x in (n, c, k) if isinstance(x, Tensor)), None)
    n_t, c_t, k_t = (torch.as_tensor(x, dtype=torch.float64, device=device) for x in (n, c, k))
    shape = (n_t + c_t + k_t).shape  # the broadcast shape (torch.broadcast_shapes is untyped)
    n_t, c_t, k_t = n_t.expand(shape), c_t.expand(shape), k_t.expand(shape)
    if bool(((c_t < 0) | (c_t > n_t)).any()):
        raise ValueError("pass_at_k needs 0 <= c <= n")
    if bool(((k_t < 1) | (k_t > n_t)).any()):
        raise ValueError("pass_at_k needs 1 <= k <= n")
    certain = n_t - c_t < k_t  # every k-subset holds a correct sample
    # q = C(n-c, k)/C(n, k) = Π_{j<c} (1 - k/(n-j)) = Π_{j<k} (1 - c/(n-j)); take the shorter product.
    short_c = c_t <= k_t
    terms = torch.where(certain, torch.zeros_like(c_t), torch.where(short_c, c_t, k_t))
    width = int(terms.max()) if terms.numel() else 0
    if width * terms.numel() <= _PRODUCT_FORM_MAX:
        # Σ log1p is exact to a few ulp (it reproduces Chen's numpy product), and -expm1 keeps tiny rates.
        # Chunks over the product index j bound the memory to _CHUNK entries.
        ratio_top = torch.where(short_c, k_t, c_t).unsqueeze(-1)  # [..., 1]
        log_q = torch.zeros_like(n_t)
        step = max(1, _CHUNK // max(terms.numel(), 1))
        for start in range(0, width, step):
            j = torch.arange(start, min(start + step, width), dtype=torch.float64, device=n_t.device)  # [L]
            used = j < terms.unsqueeze(-1)  # [..., L]
            ratio = torch.where(used, ratio_top / (n_t.unsqueeze(-1) - j), 0.0)
            log_q = log_q + torch.log1p(-ratio).sum(-1)
    else:
        # Very long products: lgamma differences, which never overflow but lose precision as n grows
        # (about 1e-10 absolute at n ~ 1e5, 1e-9 at n ~ 1e7; long products mean pass rates far from 0).
        fail = n_t - c_t
        fail_minus_k = torch.where(certain, torch.zeros_like(fail), fail - k_t)
        log_q = (
            torch.lgamma(fail + 1)
            - torch.lgamma(fail_minus_k + 1)
            - torch.lgamma(n_t + 1)
            + torch.lgamma(n_t - k_t + 1)
        )
    value = torch.where(certain, torch.ones_like(log_q), -torch.expm1(log_q)) + 0.0  # + 0.0: no -0.0 at c=0
    return float(value) if scalar else value
