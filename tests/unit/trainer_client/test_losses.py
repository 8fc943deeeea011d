"""trainer_client.losses: each function against a hand computation, autograd, or exact enumeration."""

from __future__ import annotations

import itertools

import pytest
import torch

from trainer_client.losses import (
    clipped_value_loss,
    importance_weights,
    kl_penalty,
    kl_to_reference,
    ppo_policy_loss,
    reinforce_loss,
    sequence_logprob,
)


def ragged(seed: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token log-probs [N, T] (requires grad) and the mask of sequences of the given lengths."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    token_logp = (-torch.rand(len(lengths), width, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    mask = torch.zeros(len(lengths), width, dtype=torch.float64)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    return token_logp, mask


LENGTHS = [12, 3, 7, 1, 12, 5, 2, 9]


def test_sequence_logprob_sums_real_tokens_only() -> None:
    token_logp = torch.tensor([[-1.0, -2.0, -50.0], [-0.5, -60.0, -70.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert sequence_logprob(token_logp, mask).tolist() == [-3.0, -0.5]


def test_importance_weights_are_exactly_one_on_policy_truncated_and_detached() -> None:
    logp = torch.tensor([-3.0, -0.25, -7.5], requires_grad=True)
    on_policy = importance_weights(logp, logp.detach().clone(), max_weight=2.0)
    assert on_policy.tolist() == [1.0, 1.0, 1.0]
    assert not on_policy.requires_grad
    stale = importance_weights(logp, torch.tensor([-3.5, -0.25, -9.0]), max_weight=2.0)
    assert stale[0].item() == pytest.approx(torch.exp(torch.tensor(0.5)).item())
    assert stale[1].item() == 1.0
    assert stale[2].item() == 2.0  # exp(1.5) = 4.48, truncated


def test_reinforce_loss_gradient_and_normaliser() -> None:
    logp = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    advantages = torch.tensor([1.0, -0.5, 2.0])
    weights = torch.tensor([1.0, 2.0, 0.5])
    reinforce_loss(logp, advantages, weights).backward()
    assert logp.grad is not None
    torch.testing.assert_close(logp.grad, -(advantages * weights) / 3)
    # A normaliser replaces N: one micro-batch of the update is a share of the whole.
    part = reinforce_loss(logp[:1], advantages[:1], normaliser=3)
    assert part.item() == pytest.approx(-(1.0 * -1.0) / 3)


def test_ppo_loss_at_ratio_one_has_the_reinforce_gradient() -> None:
    """At π_θ = π_old the token-summed surrogate's gradient is Σ_i A_i ∇log π(y_i) / N (paper A.4)."""
    token_logp, mask = ragged(0, LENGTHS)
    advantages = torch.linspace(-1, 2, len(LENGTHS), dtype=torch.float64)
    loss, clipped = ppo_policy_loss(token_logp, token_logp.detach(), advantages, mask)
    (ppo_grad,) = torch.autograd.grad(loss, token_logp)
    pg = reinforce_loss(sequence_logprob(token_logp, mask), advantages)
    (pg_grad,) = torch.autograd.grad(pg, token_logp)
    torch.testing.assert_close(ppo_grad, pg_grad)
    assert clipped.item() == 0


def test_ppo_loss_clips_per_token() -> None:
    # One sequence, A > 0: a token whose ratio went above 1 + ε gets no gradient, one inside keeps it.
    token_logp = torch.log(torch.tensor([[1.5, 1.1, 0.5]], dtype=torch.float64)).requires_grad_()
    old = torch.zeros(1, 3, dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    loss, clipped = ppo_policy_loss(token_logp, old, torch.tensor([2.0], dtype=torch.float64), mask, 0.2)
    loss.backward()
    assert token_logp.grad is not None
    assert token_logp.grad[0, 0].item() == 0  # ratio 1.5 > 1.2, clipped
    assert token_logp.grad[0, 1].item() == pytest.approx(-2.0 * 1.1)  # d(-ratio·A)/dlogp = -ratio·A
    assert token_logp.grad[0, 2].item() == 0  # padding
    assert clipped.item() == 1  # the padded token (ratio 0.5) does not count
    assert loss.item() == pytest.approx(-(1.2 * 2.0 + 1.1 * 2.0))


@pytest.mark.parametrize("micro_batch", [1, 3, 5, 16])
def test_losses_summed_over_micro_batches_equal_the_full_batch(micro_batch: int) -> None:
    token_logp, mask = ragged(1, LENGTHS)
    old = token_logp.detach() + 0.1 * torch.randn(
        token_logp.shape, generator=torch.Generator().manual_seed(2)
    )
    advantages = torch.linspace(-1, 2, len(LENGTHS), dtype=torch.float64)
    values = torch.linspace(0, 1, len(LENGTHS), dtype=torch.float64, requires_grad=True)
    n = len(LENGTHS)

    def total(rows: slice, normaliser: int | None) -> torch.Tensor:
        ppo, _ = ppo_policy_loss(token_logp[rows], old[rows], advantages[rows], mask[rows], 0.2, normaliser)
        pg = reinforce_loss(
            sequence_logprob(token_logp[rows], mask[rows]), advantages[rows], None, normaliser
        )
        value = clipped_value_loss(
            values[rows], values[rows].detach() * 0.5, advantages[rows], 0.2, normaliser
        )
        return ppo + pg + value

    full = torch.autograd.grad(total(slice(None), None), [token_logp, values])
    parts = [total(slice(i, i + micro_batch), n) for i in range(0, n, micro_batch)]
    split = torch.autograd.grad(torch.stack(parts).sum(), [token_logp, values])
    for a, b in zip(full, split, strict=True):
        torch.testing.assert_close(a, b)


def test_clipped_value_loss_is_pessimistic() -> None:
    returns = torch.tensor([0.5, 1.0, 1.0], dtype=torch.float64)
    values_old = torch.zeros(3, dtype=torch.float64)
    values = torch.tensor([0.1, 0.6, 1.5], dtype=torch.float64, requires_grad=True)
    loss = clipped_value_loss(values, values_old, returns, clip=0.2)
    # Row 0 is inside the clip: ½(V-R)². Row 1 moved past V_old + α toward R: the clipped error (0.2 - 1)²
    # is larger and constant in V, so no gradient. Row 2 overshot: unclipped (1.5 - 1)² < (0.2 - 1)², clipped.
    expected = 0.5 * (0.4**2 + 0.8**2 + 0.8**2) / 3
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert values.grad is not None
    assert values.grad.tolist() == pytest.approx([(0.1 - 0.5) / 3, 0.0, 0.0])


def sequences_of(theta: torch.Tensor, vocab: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Every 2-token sequence of an autoregressive categorical policy: token log-probs [V², 2] and mask."""
    first = torch.log_softmax(theta[:vocab], -1)  # log π(a)
    second = torch.log_softmax(theta[vocab:].reshape(vocab, vocab), -1)  # log π(b | a)
    pairs = list(itertools.product(range(vocab), repeat=2))
    token_logp = torch.stack([torch.stack([first[a], second[a, b]]) for a, b in pairs])  # [V², 2]
    return token_logp, torch.ones(len(pairs), 2, dtype=torch.float64)


def random_theta(seed: int, vocab: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(vocab + vocab * vocab, generator=gen, dtype=torch.float64, requires_grad=True)


def exact_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """KL(p || ref) = Σ_y p(y) (log p(y) - log ref(y)) over enumerated sequence log-probs [M]."""
    return (logp.exp() * (logp - ref_logp)).sum()


def test_kl_penalty_gradient_is_that_of_kl_policy_to_reference() -> None:
    """E_{y~π_θ}[∇ penalty(y)] (samples held fixed, as in training) = ∇ KL(π_θ || π_ref), by enumeration."""
    theta = random_theta(0)
    ref_logp, mask = sequences_of(random_theta(1).detach())
    ref_seq = sequence_logprob(ref_logp, mask)

    token_logp, _ = sequences_of(theta)
    prob = sequence_logprob(token_logp, mask).exp().detach()  # π_θ(y) of each enumerated y
    (penalty_grad,) = torch.autograd.grad((prob * kl_penalty(token_logp, ref_logp, mask)).sum(), theta)

    token_logp, _ = sequences_of(theta)
    (kl_grad,) = torch.autograd.grad(exact_kl(sequence_logprob(token_logp, mask), ref_seq), theta)
    torch.testing.assert_close(penalty_grad, kl_grad)

    # The k3 estimate, differentiated the same way, has the gradient of the other direction KL(π_ref || π_θ)
    # (shown on the first token: the k3 gradient of a sequence also holds π_θ's prefixes fixed).
    first_only = torch.tensor([1.0, 0.0], dtype=torch.float64).expand_as(mask)
    token_logp, _ = sequences_of(theta)
    k3 = kl_to_reference(token_logp, ref_logp, first_only)  # detached: the monitor; redo it with gradient
    log_ratio = ((ref_logp - token_logp) * first_only).sum(-1)
    k3_loss = torch.exp(log_ratio) - 1 - log_ratio
    torch.testing.assert_close(k3_loss.detach(), k3)
    (k3_grad,) = torch.autograd.grad((prob * k3_loss).sum(), theta)
    first, ref_first = torch.log_softmax(theta[:3], -1), ref_logp[::3, 0]  # log π(a), log π_ref(a)
    (reverse_grad,) = torch.autograd.grad(exact_kl(ref_first, first), theta)
    torch.testing.assert_close(k3_grad, reverse_grad)
    first = torch.log_softmax(theta[:3], -1)
    (forward_grad,) = torch.autograd.grad(exact_kl(first, ref_first), theta)
    assert not torch.allclose(k3_grad, forward_grad, atol=1e-3)


def test_kl_to_reference_is_an_unbiased_non_negative_monitor() -> None:
    token_logp, mask = sequences_of(random_theta(3))
    ref_logp, _ = sequences_of(torch.zeros(12, dtype=torch.float64))  # uniform reference
    estimate = kl_to_reference(token_logp, ref_logp, mask)  # [V²]
    assert not estimate.requires_grad and (estimate >= 0).all()
    logp = sequence_logprob(token_logp, mask).detach()
    prob = logp.exp()
    torch.testing.assert_close((prob * estimate).sum(), exact_kl(logp, sequence_logprob(ref_logp, mask)))
    assert kl_to_reference(token_logp, token_logp, mask).abs().max().item() == 0
