"""Policy and value losses (pure functions on tensors; no model, no I/O).

Shapes: B·k sequences flattened to N, T completion tokens padded; `mask` [N, T] is 1 on real tokens.
Advantages are per sequence [N] and are broadcast over that sequence's tokens (the paper's estimators
give one scalar per sample).
"""

from __future__ import annotations

import torch
from torch import Tensor


def sequence_logprob(token_logprobs: Tensor, mask: Tensor) -> Tensor:
    """Sum of token log-probs per sequence: log π(y|x). [N, T] -> [N]."""
    return (token_logprobs * mask).sum(-1)


def importance_weights(logp_new: Tensor, logp_behavior: Tensor, max_weight: float) -> Tensor:
    """Truncated sequence-level importance weights π_θ(y)/π_behavior(y) for samples of a stale policy.

    With grading of step t overlapping generation of step t+1, a batch is drawn by the policy one update
    behind; the weight corrects the score-function estimator for that (truncated, as in IMPALA/TIS, so one
    unlikely sample cannot blow up the step). Returned detached: it scales the gradient, it is not trained.
    """
    return torch.exp(logp_new.detach() - logp_behavior).clamp(max=max_weight)


def reinforce_loss(logp: Tensor, advantages: Tensor, weights: Tensor | None = None) -> Tensor:
    """REINFORCE with per-sample advantages: -mean_i w_i A_i log π(y_i).  logp, advantages: [N]."""
    scale = advantages if weights is None else advantages * weights
    return -(scale.detach() * logp).mean()


def ppo_policy_loss(
    token_logp: Tensor, token_logp_old: Tensor, advantages: Tensor, mask: Tensor, clip_eps: float = 0.2
) -> tuple[Tensor, Tensor]:
    """Clipped PPO surrogate on every token of y_i with that sequence's advantage (paper appendix A.4).

    Returns (loss, clip fraction). token_logp*: [N, T]; advantages: [N].
    """
    ratio = torch.exp(token_logp - token_logp_old)
    adv = advantages.detach()[:, None]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    tokens = mask.sum().clamp(min=1)
    loss = -(surrogate * mask).sum() / tokens
    clipped = (((ratio - 1).abs() > clip_eps).float() * mask).sum() / tokens
    return loss, clipped.detach()


def clipped_value_loss(values: Tensor, values_old: Tensor, returns: Tensor, clip: float = 0.2) -> Tensor:
    """½ max((V - R)², (clip(V, V_old ± α) - R)²), the value loss of paper appendix A.4. All [N]."""
    clipped = values_old + (values - values_old).clamp(-clip, clip)
    return 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2).mean()


def kl_to_reference(token_logp: Tensor, token_logp_ref: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence KL(π_θ || π_ref) estimate on the sampled tokens, summed over tokens: [N].

    Uses the non-negative, low-variance "k3" estimator exp(r) - 1 - r with r = log π_ref - log π_θ
    (Schulman's approximations); its gradient makes it usable as a penalty.
    """
    log_ratio = token_logp_ref - token_logp
    return ((torch.exp(log_ratio) - 1 - log_ratio) * mask).sum(-1)
