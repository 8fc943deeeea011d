"""Trainer.update on the tiny model with hand-made rollouts (no server, no sampling).

The gradient of an update is read with the learning rates set to 0 (AdamW then leaves the weights alone), so
one Trainer can be updated repeatedly on the same rollout.
"""

from __future__ import annotations

import random

import pytest
import torch

from tests.conftest import REPO
from trainer_client.client import GradedBatch
from trainer_client.config import TrainingConfigWarning, load_config
from trainer_client.losses import sequence_logprob
from trainer_client.sampling.base import SampleBatch
from trainer_client.train import Rollout, Trainer

B, K = 4, 4
# Ragged completions (one of 12 tokens among short ones) make a per-micro-batch token mean split-dependent.
LENGTHS = [12, 3, 1, 5, 2, 7, 4, 1, 9, 2, 3, 6, 1, 8, 2, 5]


def make_trainer(*overrides: str) -> Trainer:
    config = load_config(
        None,
        [
            f"data.path={REPO / 'examples/toy_sums.jsonl'}",
            "model.device=cpu",
            f"sampling.k={K}",
            f"sampling.prompts_per_step={B}",
            "estimator.name=passk_loo",
            "optim.grad_clip=1e9",  # no clipping: the gradients are compared raw
            "tensorboard=false",
            *overrides,
        ],
    )
    return Trainer(config)


def make_rollout(trainer: Trainer, seed: int = 0) -> Rollout:
    """B prompts x K random completions of LENGTHS tokens, with the policy's own (on-policy) log-probs."""
    rng = random.Random(seed)
    prompts = trainer.prompts[:B]
    prompt_ids = [list(trainer.tokenizer(p.text)["input_ids"]) for p in prompts]
    vocab = trainer.policy.model.config.vocab_size
    completions = [
        [[rng.randrange(vocab) for _ in range(LENGTHS[b * K + j])] for j in range(K)] for b in range(B)
    ]
    with torch.no_grad():
        scored = trainer.policy.score(
            [prompt_ids[b] for b in range(B) for _ in range(K)], [c for row in completions for c in row]
        )
    logprobs = [
        (scored.token_logp[i] * scored.mask[i])[: len(ids)].tolist()
        for i, ids in enumerate(c for row in completions for c in row)
    ]
    samples = SampleBatch(
        texts=[["?"] * K for _ in range(B)],
        prompt_ids=prompt_ids,
        completion_ids=completions,
        logprobs=[logprobs[b * K : (b + 1) * K] for b in range(B)],
    )
    return Rollout(step=0, prompts=prompts, samples=samples, generate_s=0.0)


def make_graded(rewards: list[list[float]]) -> GradedBatch:
    tensor = torch.tensor(rewards, dtype=torch.float64)
    return GradedBatch(
        rewards=tensor,
        classes=torch.zeros(tensor.shape, dtype=torch.long),
        correct=tensor > 0,
        statuses=[["correct" if r > 0 else "incorrect" for r in row] for row in rewards],
        group_ids=[str(b) for b in range(len(rewards))],
    )


# One group with a unique success (pass@k credit), one failed sample (NaN, dropped), the rest mixed.
REWARDS = [
    [1.0, -1.0, -1.0, -1.0],
    [1.0, 1.0, -1.0, float("nan")],
    [-1.0, -1.0, -1.0, 1.0],
    [-1.0, 1.0, -1.0, -1.0],
]


def update_gradient(trainer: Trainer, rollout: Rollout, graded: GradedBatch) -> dict[str, torch.Tensor]:
    """The gradient of the last epoch of `trainer.update`, which leaves the weights as they were."""
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.0
    trainer.update(rollout, graded)
    for p, was in zip(trainer.policy.parameters(), before, strict=True):
        assert torch.equal(p.detach(), was)
    return {name: p.grad.clone() for name, p in trainer.policy.named_parameters() if p.grad is not None}


def assert_same_gradients(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("kind", ["pg", "ppo"])
def test_gradient_does_not_depend_on_the_micro_batch_split(kind: str) -> None:
    trainer = make_trainer(f"loss.kind={kind}", "loss.ppo_epochs=1", "loss.kl_coef=0.1")
    rollout = make_rollout(trainer)
    graded = make_graded(REWARDS)
    # A value head that is not zero, so the PPO advantages R - V differ from R.
    if trainer.policy.value_head is not None:
        torch.nn.init.normal_(
            trainer.policy.value_head.weight, std=0.1, generator=torch.Generator().manual_seed(0)
        )
    gradients = {}
    for micro_batch in (1, 3, 5, 16):
        trainer.config.optim.micro_batch = micro_batch
        gradients[micro_batch] = update_gradient(trainer, rollout, graded)
    for micro_batch in (1, 3, 5):
        assert_same_gradients(gradients[micro_batch], gradients[16])


def test_ppo_with_a_zero_value_head_is_reinforce_on_its_first_epoch() -> None:
    """At π_θ = π_old nothing is clipped, and with V = 0 the PPO gradient is REINFORCE's (same scale)."""
    pg_trainer = make_trainer("loss.kind=pg")  # the same seed, so the same initial weights as ppo_trainer
    rollout, graded = make_rollout(pg_trainer), make_graded(REWARDS)
    pg = update_gradient(pg_trainer, rollout, graded)
    ppo_trainer = make_trainer("loss.kind=ppo", "loss.ppo_epochs=1")
    ppo = update_gradient(ppo_trainer, rollout, graded)
    assert set(ppo) - set(pg) == {"value_head.weight", "value_head.bias"}
    assert_same_gradients(pg, {name: grad for name, grad in ppo.items() if name in pg})


@pytest.mark.parametrize("kind", ["pg", "ppo"])
def test_one_update_raises_the_surrogate_objective(kind: str) -> None:
    trainer = make_trainer(f"loss.kind={kind}", "optim.lr=1e-3")
    rollout, graded = make_rollout(trainer), make_graded(REWARDS)
    credit = trainer.advantages(graded).float().flatten()
    valid = ~torch.isnan(graded.rewards.flatten())

    def objective() -> float:
        """Σ_i A_i log π(y_i) over the valid samples: what the policy gradient ascends."""
        prompt_ids = [rollout.samples.prompt_ids[b] for b in range(B) for _ in range(K)]
        completion_ids = [c for row in rollout.samples.completion_ids for c in row]
        with torch.no_grad():
            scored = trainer.policy.score(prompt_ids, completion_ids)
        logp = sequence_logprob(scored.token_logp, scored.mask)
        return float((credit * logp)[valid].sum())

    before = objective()
    trainer.update(rollout, graded)
    assert objective() > before + 1e-3


def test_importance_weights_are_one_on_policy_and_logged() -> None:
    trainer = make_trainer()
    metrics = trainer.update(make_rollout(trainer), make_graded(REWARDS))
    for stat in ("mean", "min", "max"):
        assert metrics[f"importance_weight/{stat}"] == pytest.approx(1.0, abs=1e-5)


def test_stale_samples_are_reweighted() -> None:
    trainer = make_trainer()
    rollout = make_rollout(trainer)
    rollout.samples.logprobs[0][0][0] -= 0.5  # the behaviour policy found this sample less likely
    metrics = trainer.update(rollout, make_graded(REWARDS))
    assert metrics["importance_weight/max"] == pytest.approx(float(torch.exp(torch.tensor(0.5))), rel=1e-4)
    assert metrics["importance_weight/min"] == pytest.approx(1.0, abs=1e-5)


def test_value_head_learns_a_constant_return_on_its_own_learning_rate() -> None:
    """With a tiny policy lr the head still fits R = 1 within a few updates, and the policy barely moves."""
    trainer = make_trainer(
        "loss.kind=ppo", "loss.ppo_epochs=1", "estimator.name=reward", "optim.lr=1e-9", "optim.value_lr=3e-3"
    )
    rollout, graded = make_rollout(trainer), make_graded([[1.0] * K for _ in range(B)])
    before = [p.detach().clone() for p in trainer.policy.model.parameters()]
    values = [trainer.update(rollout, graded)["value"] for _ in range(8)]  # V before each update
    assert values[0] == 0.0  # zero-initialised
    assert values == sorted(values)
    assert values[-1] == pytest.approx(1.0, abs=0.2), values  # 1.03 (Adam's momentum overshoots later)
    moved = max(
        (p.detach() - b).abs().max().item()
        for p, b in zip(trainer.policy.model.parameters(), before, strict=True)
    )
    assert moved < 1e-7


def test_value_loss_does_not_move_the_policy() -> None:
    trainer = make_trainer("loss.kind=ppo")
    rollout = make_rollout(trainer)
    assert trainer.policy.value_head is not None
    prompt_ids = [rollout.samples.prompt_ids[b] for b in range(B) for _ in range(K)]
    completion_ids = [c for row in rollout.samples.completion_ids for c in row]
    values = trainer.policy.score(prompt_ids, completion_ids).values
    assert values is not None
    ((values - 1.0) ** 2).sum().backward()
    assert trainer.policy.value_head.weight.grad is not None
    assert all(p.grad is None for p in trainer.policy.model.parameters())
    # Its learning rate is its own.
    lrs = [group["lr"] for group in trainer.optimizer.param_groups]
    assert lrs == [trainer.config.optim.lr, trainer.config.optim.value_lr]


def test_training_with_top_p_below_one_warns() -> None:
    with pytest.warns(TrainingConfigWarning, match="top_p"):
        make_trainer("sampling.top_p=0.9")
