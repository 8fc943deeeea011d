"""The mean objective f = (1/k) Σ r_i with the paper's leave-one-out baseline (docs/estimators.md §5).

Scale: the paper's Δ_i = f(y) - f(y_-i) = (r_i - r̄)/(k - 1), which is RLOO (r_i - mean_{j≠i} r_j) divided by
k. We keep the paper's scale so that `mean_loo`, `passk_loo` and the other k-sample estimators are all
"objective minus leave-one-out objective" and comparable at one learning rate; multiply by n for RLOO.
"""

from __future__ import annotations

from torch import Tensor

from trainer_client.estimators.base import EstimatorParams, register_estimator


@register_estimator("mean_loo", k_policy="ignored")
def mean_loo(rewards: Tensor, classes: Tensor | None, params: EstimatorParams) -> Tensor:
    """Mean reward with the leave-one-out baseline: (r_i - r̄)/(n - 1) = RLOO / n (paper section 3.1).

    Unbiased for the gradient of E[r]. It does not depend on k: averaging the k-sample credit over all
    k-subsets of the n samples (as PKPO does for pass@k) gives (1/n) (r_i - mean_{j≠i} r_j), which is
    (r_i - r̄)/(n - 1) for every 2 <= k <= n, so `k` is accepted and ignored.

    Example:
        >>> mean_loo(torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64), None, EstimatorParams(k=4))
        tensor([[ 0.1667, -0.1667, -0.1667,  0.1667]], dtype=torch.float64)
    """
    n = rewards.shape[1]
    return (rewards - rewards.mean(dim=1, keepdim=True)) / (n - 1)
