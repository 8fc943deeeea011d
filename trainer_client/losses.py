"""Policy, value and KL losses (pure functions on tensors; no model, no I/O).

Shapes: B·k sequences flattened to N, T completion tokens padded; `mask` [N, T] is 1 on real tokens.
Advantages are per sequence [N] and are broadcast over that sequence's tokens (the paper's estimators
give one scalar per sample).

Normalisation: every loss is a SUM over the sequences it is given, divided by `normaliser`, the number of
sequences in the WHOLE update (default: the N it is given). The trainer splits an update into micro-batches
and passes the update's total N to each, so the summed micro-batch gradients equal the full-batch gradient
for any split (a per-micro-batch token mean, reweighted by sequence count, would make a sequence's weight
depend on the lengths of its neighbours). Within a sequence, token terms are summed, not averaged: at
π_θ = π_old the PPO gradient is then exactly the REINFORCE gradient Σ_i A_i ∇log π(y_i) / N of paper
appendix A.4's (1/k)Σ_i surrogate with a sequence ratio, there is no length normalisation bias, and one
learning rate means the same thing for `pg` and `ppo`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _normaliser(given: float | None, n: int) -> float:
    return float(max(1, n)) if given is None else float(given)


def sequence_logprob(token_logprobs: Tensor, mask: Tensor) -> Tensor:
    """Sum of token log-probs per sequence: log π(y|x). [N, T] -> [N]."""
    return (token_logprobs * mask).sum(-1)


def importance_weights(logp_new: Tensor, logp_behavior: Tensor, max_weight: float) -> Tensor:
    """Truncated sequence-level importance weights π_θ(y)/π_behavior(y) for samples of a stale policy. [N].

    With grading of step t overlapping generation of step t+1, a batch is drawn by the policy one update
    behind; the weight corrects the score-function estimator for that (truncated, as in IMPALA/TIS, so one
    unlikely sample cannot blow up the step). Returned detached: it scales the gradient, it is not trained.

    A per-sample weight is exact for objectives that are a sum over samples (the mean reward). For the
    k-sample objectives (pass@k, maj@k) sample i's credit also depends on the other k-1 samples of its
    group, which were drawn by π_behavior too; the exact correction is the product of the group's k
    weights. The per-sample weight corrects y_i's own distribution only, a first-order approximation
    whose error is of the order of the staleness (one update; the weights measured 0.995-1.003 in a CPU
    pilot, and the trainer logs their min/mean/max every step).
    """
    return torch.exp(logp_new.detach() - logp_behavior).clamp(max=max_weight)


def reinforce_loss(
    logp: Tensor, advantages: Tensor, weights: Tensor | None = None, normaliser: float | None = None
) -> Tensor:
    """REINFORCE with per-sample advantages: -Σ_i w_i A_i log π(y_i) / normaliser.

    Args:
        logp: [N] sequence log-probs log π(y_i) (with gradient).
        advantages: [N] per-sample credit (detached here).
        weights: [N] importance weights, or None for 1.
        normaliser: Sequences in the whole update (default N).
    """
    scale = advantages if weights is None else advantages * weights
    return -(scale.detach() * logp).sum() / _normaliser(normaliser, len(logp))


def ppo_policy_loss(
    token_logp: Tensor,
    token_logp_old: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    normaliser: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Clipped PPO surrogate on every token of y_i with that sequence's advantage (paper appendix A.4).

    The ratio and its clipping are per token (as verl and OpenRLHF do), where A.4 writes the sequence ratio
    π_θ(y|x)/π_old(y|x); the two have the same gradient at π_θ = π_old. Token terms are summed per sequence,
    then divided by `normaliser` (module docstring).

    Args:
        token_logp: [N, T] log-probs under π_θ (with gradient).
        token_logp_old: [N, T] log-probs under π_old (the policy before this update).
        advantages: [N] per-sequence advantages (detached here).
        mask: [N, T] 1 on real tokens.
        clip_eps: Ratio clip ε.
        normaliser: Sequences in the whole update (default N).

    Returns:
        (loss, number of real tokens whose ratio is outside [1-ε, 1+ε]); the caller divides the count by
        the update's token count for a clip fraction.
    """
    ratio = torch.exp(token_logp - token_logp_old)
    adv = advantages.detach()[:, None]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    loss = -(surrogate * mask).sum() / _normaliser(normaliser, len(mask))
    clipped_tokens = (((ratio - 1).abs() > clip_eps).float() * mask).sum()
    return loss, clipped_tokens.detach()


def clipped_value_loss(
    values: Tensor, values_old: Tensor, returns: Tensor, clip: float = 0.2, normaliser: float | None = None
) -> Tensor:
    """Σ_i ½ max((V - R)², (clip(V, V_old ± α) - R)²) / normaliser: appendix A.4's value loss. All [N]."""
    clipped = values_old + (values - values_old).clamp(-clip, clip)
    per_sample = 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return per_sample.sum() / _normaliser(normaliser, len(values))


def kl_to_reference(token_logp: Tensor, token_logp_ref: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence KL(π_θ || π_ref) estimate on sampled tokens, for monitoring only: [N], detached.

    The non-negative, low-variance "k3" estimator exp(r) - 1 - r with r = log π_ref - log π_θ per token,
    summed over tokens; its expectation is the sequence KL (chain rule). Not a loss: differentiated along
    the samples its gradient is that of KL(π_ref || π_θ), the other direction; `kl_penalty` is the loss.
    """
    log_ratio = (token_logp_ref - token_logp).detach()
    return ((torch.exp(log_ratio) - 1 - log_ratio) * mask).sum(-1)


def kl_penalty(token_logp: Tensor, token_logp_ref: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence "k2" KL penalty ½(log π_θ(y) - log π_ref(y))², whose gradient is right: [N].

    For y drawn from π_θ, E[∇ ½(log π_θ(y) - log π_ref(y))²] = E[(log π_θ(y) - log π_ref(y)) ∇log π_θ(y)]
    = ∇ KL(π_θ || π_ref) (the score term E[∇log π_θ] is 0). The log-ratio is of the whole sequence, not per
    token: a sum of per-token k2 terms would drop the effect of token t on the KL of the tokens after it.
    Its value is not the KL (use `kl_to_reference` to report that); only its gradient is.

    Args:
        token_logp: [N, T] log-probs under π_θ (with gradient), of tokens sampled from π_θ.
        token_logp_ref: [N, T] log-probs under the reference policy.
        mask: [N, T] 1 on real tokens.
    """
    log_ratio = ((token_logp - token_logp_ref.detach()) * mask).sum(-1)
    return 0.5 * log_ratio**2
