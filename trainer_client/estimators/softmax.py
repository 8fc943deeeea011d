"""Softmax objectives (paper appendix B.2, docs/estimators.md §7): S_β(r) = Σ_i softmax(β r)_i r_i.

S_β is the mean at β = 0 and tends to max(r) as β → ∞. Two estimators use it:
- `softmax_loo`: the softmax objective itself with the leave-one-out baseline, A_i = S_β(r) - S_β(r_-i);
- `passk_softmax_baseline`: pass@k stays the objective and the leave-one-out softmax value is only the
  baseline, A_i = max(r) - S_β(r_-i); the baseline does not depend on y_i, so it stays unbiased for pass@k.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainer_client.estimators.base import EstimatorParams, register_estimator


def softmax_value_loo(rewards: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """S_β of the whole group and of every leave-one-out group: [B, n] -> ([B, 1], [B, n]), n >= 2.

    O(n) per group without cancellation at large β. The weights w_j = exp(β (r_j - r_max)) are <= 1 and the
    argmax has weight 1. Removing any i other than that argmax keeps the argmax in the sum, so the
    denominator Σ w - w_i stays >= 1 and subtracting is safe. For the argmax itself, the remaining weights are
    re-shifted by the runner-up value and summed directly instead of subtracting the dominant weight.

    Example:
        >>> full, loo = softmax_value_loo(torch.tensor([[1.0, 0.0]], dtype=torch.float64), 1000.0)
        >>> full, loo
        (tensor([[1.]], dtype=torch.float64), tensor([[0., 1.]], dtype=torch.float64))
    """
    top2 = rewards.topk(2, dim=1)  # [B, 2]
    first, second = top2.values[:, :1], top2.values[:, 1:2]  # [B, 1] each
    argmax = top2.indices[:, :1]  # [B, 1]
    w = torch.exp(beta * (rewards - first))  # [B, n], in (0, 1]
    w_sum = w.sum(dim=1, keepdim=True)
    wr_sum = (w * rewards).sum(dim=1, keepdim=True)
    full = wr_sum / w_sum  # [B, 1]
    loo = (wr_sum - w * rewards) / (w_sum - w)  # valid for every i except the argmax
    # The argmax row: weights relative to the runner-up (<= 1), the argmax itself masked out; its own weight
    # may overflow to inf at large β, which `where` discards.
    is_arg = torch.zeros_like(rewards, dtype=torch.bool).scatter_(1, argmax, True)
    w2 = torch.where(is_arg, torch.zeros_like(rewards), torch.exp(beta * (rewards - second)))
    loo_arg = (w2 * rewards).sum(dim=1, keepdim=True) / w2.sum(dim=1, keepdim=True)  # [B, 1]
    return full, loo.scatter_(1, argmax, loo_arg)


@register_estimator("softmax_loo", requires=("beta",))
def softmax_loo(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
    """Softmax objective S_β with the leave-one-out baseline: A_i = S_β(r) - S_β(r_-i) (appendix B.2).

    Unbiased for the gradient of E[S_β(k samples)], not of pass@k. β = 0 gives `mean_loo`.

    Example:
        >>> r = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
        >>> softmax_loo(r, None, EstimatorParams(k=4, beta=1.0))
        tensor([[ 0.4754, -0.1007, -0.1007, -0.1007]], dtype=torch.float64)
    """
    assert params.beta is not None
    full, loo = softmax_value_loo(rewards, params.beta)
    return full - loo


@register_estimator("passk_softmax_baseline", requires=("beta",))
def passk_softmax_baseline(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
    """pass@k with the leave-one-out softmax value as baseline: A_i = max(r) - S_β(r_-i) (appendix B.2).

    Unbiased for the gradient of pass@k (the baseline ignores y_i) and denser than `passk_loo`, which it
    becomes as β → ∞. Not centred.

    Example:
        >>> r = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
        >>> passk_softmax_baseline(r, None, EstimatorParams(k=4, beta=1.0))
        tensor([[0.4239, 0.1554, 0.1554, 0.4239]], dtype=torch.float64)
    """
    assert params.beta is not None
    _, loo = softmax_value_loo(rewards, params.beta)
    return rewards.amax(dim=1, keepdim=True) - loo
