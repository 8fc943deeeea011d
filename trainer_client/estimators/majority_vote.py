"""Majority voting with k = n (paper section 3.1, appendix B.1; docs/estimators.md §8) and maj@k (§10).

Conventions (shared by the estimators and `maj_at_k_values`):
- Each sample has an answer class a_i >= 0, or -1 for "no answer", which abstains: it never votes.
- The value of class a, v(a), is the mean reward of the group's samples in class a. With a reward that is a
  function of the answer (the usual case) that is simply the class's reward: 1/0 for binary rewards, +1/-1
  for the paper's ±1 rewards. If one class got different rewards (a judge reading the whole text) the mean
  is used for every subset of the group (docs/estimators.md §8.1); the estimator is then exact for that
  class table.
- Ties for the majority count as the expected uniform tie-break: f = mean of v over the top set T.
- If no sample votes, the majority answer is "no answer", valued at the mean reward of the group's
  abstaining samples (0 with binary rewards, -1 with ±1 rewards). That case only arises when the group
  (or the leave-one-out group) consists of abstainers, so the value is always observed. `maj_at_k` values it
  at 0 (incorrect).

Leave-one-out (one vote of class a removed), with m the top count and R the classes at m - 1 votes:
    a ∉ T                    -> Δ = 0
    a ∈ T, |T| >= 2          -> Δ = mean_T v - mean_{T \\ {a}} v
    a ∈ T, |T| = 1, m >= 2   -> Δ = v(a) - mean_{{a} ∪ R} v       (0 when R is empty)
    a ∈ T, |T| = 1, m = 1    -> Δ = v(a) - v(no answer)          (a lone voter among abstainers)
Abstainers get Δ = 0, as do samples whose class cannot change the vote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from fractions import Fraction
from math import comb

import torch
from torch import Tensor

from trainer_client.estimators.base import EstimatorParams, register_estimator


def compact_classes(classes: Tensor) -> Tensor:
    """Relabel each row's class ids to 0..n-1 (one id per distinct value); [B, n] int64 -> [B, n] int64.

    Abstainers (-1) share one id of their own. Sort-based, O(n log n) per row, no [B, n, n] comparison.

    Example:
        >>> compact_classes(torch.tensor([[7, 3, 7, -1]]))
        tensor([[2, 1, 2, 0]])
    """
    sorted_ids, order = classes.sort(dim=1)  # [B, n]
    new = torch.ones_like(sorted_ids, dtype=torch.bool)
    new[:, 1:] = sorted_ids[:, 1:] != sorted_ids[:, :-1]  # first sample of each distinct class
    compact_sorted = torch.cumsum(new.to(torch.int64), dim=1) - 1
    return torch.empty_like(compact_sorted).scatter_(1, order, compact_sorted)


def majority_loo(rewards: Tensor, classes: Tensor) -> Tensor:
    """Δ_i = f(y) - f(y_-i) for the majority-vote objective f = mean_{a∈T} v(a): [B, n] -> [B, n], n >= 2.

    Counts and class values are the one-hot construction Y [B, n, A] summed over samples, done with
    `scatter_add_` (A = n slots) so no [B, n, A] or [B, A, A] tensor is built; the removal of one vote per
    class is the case table in the module docstring, evaluated for all classes at once on [B, A] tensors.
    """
    batch, n = rewards.shape
    voter = classes >= 0  # [B, n]
    w = voter.to(torch.float64)
    cid = compact_classes(classes)  # [B, n] in 0..n-1
    counts = torch.zeros((batch, n), dtype=torch.float64, device=rewards.device)
    counts = counts.scatter_add(1, cid, w)  # c_a: [B, A]; the abstainer slot stays 0
    value_sum = torch.zeros_like(counts).scatter_add(1, cid, w * rewards)
    values = value_sum / counts.clamp(min=1)  # v(a) = mean reward of class a: [B, A]
    n_abstain = (~voter).sum(dim=1, keepdim=True)  # [B, 1]
    abstain_value = (rewards * (~voter)).sum(dim=1, keepdim=True) / n_abstain.clamp(min=1)  # [B, 1]

    top_count = counts.amax(dim=1, keepdim=True)  # m: [B, 1]
    top = (counts == top_count) & (counts > 0)  # T: [B, A]
    n_top = top.sum(dim=1, keepdim=True).to(torch.float64)
    sum_top = (values * top).sum(dim=1, keepdim=True)
    f_full = torch.where(top_count > 0, sum_top / n_top.clamp(min=1), abstain_value)  # [B, 1]

    runner_up = (counts == top_count - 1) & (counts > 0)  # R: [B, A]
    n_run = runner_up.sum(dim=1, keepdim=True).to(torch.float64)
    sum_run = (values * runner_up).sum(dim=1, keepdim=True)
    f_tied = (sum_top - values) / (n_top - 1).clamp(min=1)  # a tied at the top: T \ {a} remains
    f_unique = torch.where(top_count >= 2, (values + sum_run) / (1 + n_run), abstain_value)  # {a} ∪ R
    f_minus = torch.where(n_top >= 2, f_tied, f_unique)  # [B, A]
    delta_class = torch.where(top, f_full - f_minus, torch.zeros_like(f_minus))  # 0 outside T
    return delta_class.gather(1, cid) * w


@register_estimator("maj_loo", requires=("classes",))
def maj_loo(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
    """Majority vote with the leave-one-out baseline (paper eq. 2 with f = v(maj(a))), expected tie-break.

    Unbiased for the gradient of maj@k with k = n. Samples of one class share one value; it is non-zero only
    for a top class that is tied or leads a runner-up by exactly one vote.

    Example:
        >>> r = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
        >>> maj_loo(r, torch.tensor([[0, 0, 1, 2]]), EstimatorParams(k=4))
        tensor([[0.6667, 0.6667, 0.0000, 0.0000]], dtype=torch.float64)
    """
    assert classes is not None
    return majority_loo(rewards, classes)


@register_estimator("maj_biased", requires=("classes",))
def maj_biased(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
    """`maj_loo` minus its group mean (paper eq. 3): centred, an unbiased gradient of maj@(k-1) (Lemma 2).

    Example:
        >>> r = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
        >>> maj_biased(r, torch.tensor([[0, 0, 1, 2]]), EstimatorParams(k=4))
        tensor([[ 0.3333,  0.3333, -0.3333, -0.3333]], dtype=torch.float64)
    """
    assert classes is not None
    delta = majority_loo(rewards, classes)
    return delta - delta.mean(dim=1, keepdim=True)


def maj_at_k_values(
    classes: Tensor | Sequence[int],
    class_values: Mapping[int, float],
    k: int,
    *,
    abstain_value: float = 0.0,
) -> float:
    """Unbiased maj@k from n >= k samples: the average over all k-subsets of f = mean_{a∈T} v(a) (§6.1).

    Computed without enumerating subsets. For each class a and each vote count t it gets in a subset, the
    other classes must place the remaining k - t votes with fewer than t votes each, except j classes tied at
    exactly t, which give a a 1/(j + 1) share. That count is the coefficient of x^(k-t) z^j in
    Π_{b≠a} (Σ_{u<t} C(c_b, u) x^u + C(c_b, t) x^t z) · Σ_u C(c_abstain, u) x^u, built by a small DP over
    classes in exact integer arithmetic. Subsets made only of abstainers are worth `abstain_value`.

    Args:
        classes: answer class per sample [n]; -1 = no answer (abstains).
        class_values: v(a) for each voted class; classes missing from it are worth 0.
        k: subset size, 1 <= k <= n.
        abstain_value: value of the "no answer" outcome when no sample of a subset votes.

    Returns:
        The estimate, a float.

    Raises:
        ValueError: k outside [1, n] or a class id below -1.

    Example:
        >>> maj_at_k_values([0, 0, 1, 1, 2], {0: 1.0}, 3)
        0.43333333333333335
    """
    ids = _class_list(classes)
    n = len(ids)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an int with 1 <= k <= n = {n}, got {k!r}")
    counts = Counter(a for a in ids if a != -1)
    n_abstain = n - sum(counts.values())
    total = comb(n, k)
    value = abstain_value * comb(n_abstain, k) / total
    for a, c_a in counts.items():
        v_a = float(class_values.get(a, 0.0))
        if v_a == 0.0:
            continue
        others = [c_b for b, c_b in counts.items() if b != a]
        share = Fraction(0)  # Σ over subsets of a's share of the win
        for t in range(1, min(c_a, k) + 1):
            ways = _ways_below(others, n_abstain, t, k - t)  # ways[j]: j other classes tied at t
            share += comb(c_a, t) * sum(Fraction(w, j + 1) for j, w in enumerate(ways))
        value += v_a * float(share / total)
    return value


def maj_at_k(classes: Tensor | Sequence[int], correct_classes: Tensor | Collection[int], k: int) -> float:
    """Unbiased maj@k (expected tie-break) from n >= k samples with answer classes and the correct ones.

    A subset whose majority is a correct class scores 1, an incorrect class or no vote at all scores 0.

    Args:
        classes: answer class per sample [n]; -1 = no answer (abstains).
        correct_classes: the class ids that are correct (a set, a list or a 1-D int tensor).
        k: subset size, 1 <= k <= n.

    Returns:
        maj@k, a float in [0, 1]; maj@1 is the fraction of samples in a correct class.

    Raises:
        ValueError: k outside [1, n] or a class id below -1.

    Example:
        >>> maj_at_k([0, 0, 0, 1, 1, 2, 3], {0}, 3)
        0.5142857142857142
    """
    correct = correct_classes.tolist() if isinstance(correct_classes, Tensor) else list(correct_classes)
    return maj_at_k_values(classes, {int(a): 1.0 for a in correct if int(a) != -1}, k)


def _class_list(classes: Tensor | Sequence[int]) -> list[int]:
    ids = [int(a) for a in (classes.tolist() if isinstance(classes, Tensor) else classes)]
    if any(a < -1 for a in ids):
        raise ValueError("classes must be >= -1 (-1 = no answer)")
    return ids


def _ways_below(others: list[int], n_abstain: int, t: int, m: int) -> list[int]:
    """ways[j] = number of ways to pick m samples from the other classes and the abstainers such that every
    other class gets <= t votes and exactly j of them get t: the x^m z^j coefficients of the product."""
    max_tied = m // t
    # poly[x][j], truncated at x^m and z^max_tied; start from the abstainers, who never vote.
    poly = [[comb(n_abstain, u) if j == 0 else 0 for j in range(max_tied + 1)] for u in range(m + 1)]
    for c_b in others:
        nxt = [[0] * (max_tied + 1) for _ in range(m + 1)]
        for x, row in enumerate(poly):
            for j, coef in enumerate(row):
                if coef == 0:
                    continue
                for u in range(min(c_b, t - 1, m - x) + 1):  # fewer than t votes for b
                    nxt[x + u][j] += coef * comb(c_b, u)
                if c_b >= t and x + t <= m and j < max_tied:  # exactly t votes: b ties with a
                    nxt[x + t][j + 1] += coef * comb(c_b, t)
        poly = nxt
    return poly[m]
