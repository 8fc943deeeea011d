"""The training loop (paper Algorithm 1): sample k completions per prompt, grade them on the reward server,
turn rewards into advantages with an inference-aware estimator, update the policy.

Grading of step t overlaps generation of step t+1 (`overlap: true`): generation runs in a thread while the
event loop talks to the server. The batch of step t+1 is then drawn by the policy one update behind, which
the importance weights of `losses.importance_weights` correct for.

    trainer-client train --config examples/train_toy.yaml
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from reward_server.schemas import GradeGroup, RewardSpec
from trainer_client.client import AsyncRewardClient, GradedBatch, to_tensors
from trainer_client.config import TrainConfig, TrainingConfigWarning, api_key
from trainer_client.data import Prompt, load_prompts
from trainer_client.estimators import compute_advantages, maj_at_k, pass_at_k
from trainer_client.losses import (
    clipped_value_loss,
    importance_weights,
    kl_penalty,
    kl_to_reference,
    ppo_policy_loss,
    reinforce_loss,
    sequence_logprob,
)
from trainer_client.policy import Policy, load_model
from trainer_client.sampling.base import SampleBatch, Sampler
from trainer_client.sampling.factory import make_sampler

log = logging.getLogger(__name__)


@dataclass
class Rollout:
    """The k completions of B prompts, drawn at one step, with the log-probs of the policy that drew them."""

    step: int
    prompts: list[Prompt]
    samples: SampleBatch
    generate_s: float


class StepLogger:
    """One JSON line per step in `metrics.jsonl`, mirrored to TensorBoard."""

    def __init__(self, out_dir: Path, tensorboard: bool) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._file = (out_dir / "metrics.jsonl").open("a", encoding="utf-8")
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(out_dir / "tensorboard"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._file.write(json.dumps({"step": step, **metrics}) + "\n")
        self._file.flush()
        if self._writer is not None:
            for name, value in metrics.items():
                self._writer.add_scalar(name, value, step)

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


# Called after each update with the number of updates so far and the model; its metrics join the step's
# (e.g. held-out evaluation every N steps, returning {} on the others).
StepHook = Callable[[int, torch.nn.Module], dict[str, float]]


class Trainer:
    def __init__(self, config: TrainConfig, on_step: StepHook | None = None) -> None:
        self.config = config
        self.on_step = on_step
        for message in config.training_warnings():
            warnings.warn(message, TrainingConfigWarning, stacklevel=2)
        random.seed(config.seed)
        torch.manual_seed(config.seed)
        model, self.tokenizer = load_model(config.model)
        temperature = config.sampling.temperature
        self.policy = Policy(model, with_value_head=config.loss.kind == "ppo", temperature=temperature)
        # The reference policy for the KL: a frozen copy of the initial weights.
        self.reference = Policy(copy.deepcopy(model), temperature=temperature).requires_grad_(False).eval()
        # The value head learns at its own rate (optim.value_lr): at the policy's it would stay near its
        # zero initialisation for a long time, and PPO would reduce to clipped REINFORCE.
        groups: list[dict[str, Any]] = [{"params": list(self.policy.model.parameters())}]
        if self.policy.value_head is not None:
            groups.append({"params": list(self.policy.value_head.parameters()), "lr": config.optim.value_lr})
        self.optimizer = torch.optim.AdamW(groups, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
        warmup = config.optim.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.sampler: Sampler = make_sampler(config.sampling, model, self.tokenizer)
        self.prompts = load_prompts(config.data)
        self.reward = RewardSpec(correct=config.reward.correct, incorrect=config.reward.incorrect)
        self._order: list[Prompt] = []

    # -- one step's parts -------------------------------------------------------------------------

    def next_prompts(self) -> list[Prompt]:
        """B prompts, in reshuffled epochs."""
        batch: list[Prompt] = []
        while len(batch) < self.config.sampling.prompts_per_step:
            if not self._order:
                self._order = random.sample(self.prompts, len(self.prompts))
            batch.append(self._order.pop())
        return batch

    def generate(self, step: int) -> Rollout:
        prompts = self.next_prompts()
        started = time.perf_counter()
        sampling = self.config.sampling
        samples = self.sampler.sample(
            [p.text for p in prompts],
            sampling.k,
            max_new_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=self.config.seed * 1_000_003 + step,
        )
        return Rollout(step, prompts, samples, time.perf_counter() - started)

    async def grade(self, client: AsyncRewardClient, rollout: Rollout) -> tuple[GradedBatch, float]:
        started = time.perf_counter()
        groups = [
            GradeGroup(
                group_id=f"{rollout.step}-{i}",
                backend=prompt.backend,
                reference=prompt.reference,
                completions=[
                    prompt.text + text if self.config.data.grade_with_prompt else text for text in texts
                ],
            )
            for i, (prompt, texts) in enumerate(zip(rollout.prompts, rollout.samples.texts, strict=True))
        ]
        response = await client.grade(groups, reward=self.reward)
        return to_tensors(response), time.perf_counter() - started

    def advantages(self, graded: GradedBatch) -> torch.Tensor:
        """Per-sample credit [B, k] from the configured estimator; `reward` means the raw rewards."""
        cfg = self.config.estimator
        if cfg.name == "reward":
            return torch.nan_to_num(graded.rewards.double(), nan=0.0)
        return compute_advantages(
            graded.rewards, cfg.name, k=cfg.k, p=cfg.p, beta=cfg.beta, classes=graded.classes
        )

    def update(self, rollout: Rollout, graded: GradedBatch) -> dict[str, float]:
        """One policy update on a graded rollout; returns its metrics.

        The update's valid sequences are split into micro-batches of `optim.micro_batch`; every loss term is
        a sum over sequences divided by the update's total sequence count (`trainer_client.losses`), so the
        accumulated gradient does not depend on the split.
        """
        loss_cfg = self.config.loss
        credit = self.advantages(graded).float().flatten()  # [N], N = B·k
        valid = ~torch.isnan(graded.rewards.flatten())
        prompt_ids = [
            rollout.samples.prompt_ids[i] for i in range(len(rollout.prompts)) for _ in range(self.k)
        ]
        completion_ids = [c for row in rollout.samples.completion_ids for c in row]
        behavior_logp = torch.tensor([sum(t) for row in rollout.samples.logprobs for t in row])
        rows = [i for i in range(len(completion_ids)) if valid[i]]  # failed samples take no part
        sequences = max(1, len(rows))  # the one normaliser of every loss term of this update
        tokens = max(1, sum(len(completion_ids[i]) for i in rows))
        micro = self.config.optim.micro_batch
        chunks = [rows[i : i + micro] for i in range(0, len(rows), micro)]

        # π_old (the policy before this update) and π_ref, per token, without gradients.
        with torch.no_grad():
            old = [
                self.policy.score([prompt_ids[i] for i in c], [completion_ids[i] for i in c]) for c in chunks
            ]
            ref = [
                self.reference.score([prompt_ids[i] for i in c], [completion_ids[i] for i in c])
                for c in chunks
            ]

        totals: dict[str, float] = {}
        weights: list[torch.Tensor | None] = [None] * len(chunks)
        if loss_cfg.importance_correction and chunks:
            # Sequence weight π_old/π_behavior: 1 when the sampler was up to date (see importance_weights for
            # why one weight per sample is only a first-order correction of the k-sample objectives).
            weights = [
                importance_weights(
                    sequence_logprob(o.token_logp, o.mask),
                    behavior_logp[c].to(self.policy.device),
                    loss_cfg.max_importance_weight,
                )
                for o, c in zip(old, chunks, strict=True)
            ]
            every = torch.cat([w for w in weights if w is not None])
            totals |= {
                "importance_weight/mean": float(every.mean()),
                "importance_weight/min": float(every.min()),
                "importance_weight/max": float(every.max()),
            }

        epochs = loss_cfg.ppo_epochs if loss_cfg.kind == "ppo" else 1
        value_head = self.policy.value_head
        for _ in range(epochs):
            self.optimizer.zero_grad(set_to_none=True)
            for chunk, old_c, ref_c, weights_c in zip(chunks, old, ref, weights, strict=True):
                parts = self._chunk_loss(
                    chunk, old_c, ref_c, weights_c, prompt_ids, completion_ids, credit, sequences
                )
                torch.autograd.backward(parts["loss"])
                for name, value in parts.items():  # each part is already a share of the whole update
                    totals[name] = totals.get(name, 0.0) + float(value.detach()) / epochs
            # The head is clipped on its own, so its (differently scaled) gradient never shrinks the policy's.
            grad_norm = torch.nn.utils.clip_grad_norm_(
                self.policy.model.parameters(), self.config.optim.grad_clip
            )
            if value_head is not None:
                torch.nn.utils.clip_grad_norm_(value_head.parameters(), self.config.optim.grad_clip)
            self.optimizer.step()
            totals["grad_norm"] = totals.get("grad_norm", 0.0) + float(grad_norm) / epochs
        if "clipped_tokens" in totals:
            totals["clip_frac"] = totals.pop("clipped_tokens") / tokens
        self.scheduler.step()
        self.sampler.update_weights(self.policy.model)
        totals["lr"] = float(self.scheduler.get_last_lr()[0])
        return totals

    def _chunk_loss(
        self,
        chunk: list[int],
        old: Any,
        ref: Any,
        weights: torch.Tensor | None,
        prompt_ids: list[list[int]],
        completion_ids: list[list[int]],
        credit: torch.Tensor,
        sequences: int,
    ) -> dict[str, torch.Tensor]:
        """The loss of one micro-batch and its metrics, each a sum over the chunk divided by `sequences`."""
        loss_cfg = self.config.loss
        device = self.policy.device
        new = self.policy.score([prompt_ids[i] for i in chunk], [completion_ids[i] for i in chunk])
        logp = sequence_logprob(new.token_logp, new.mask)
        returns = credit[chunk].to(device)
        parts: dict[str, torch.Tensor] = {
            # A monitor (k3, unbiased for the sequence KL); the penalty below is the k2 loss.
            "kl": kl_to_reference(new.token_logp, ref.token_logp, new.mask).sum() / sequences
        }
        if loss_cfg.kind == "pg":
            loss = reinforce_loss(logp, returns, weights, normaliser=sequences)
        else:
            assert new.values is not None and old.values is not None
            advantages = returns - old.values  # A_i = R_i - V(x): V does not depend on y_i, so no bias
            if weights is not None:
                advantages = advantages * weights
            policy_loss, clipped_tokens = ppo_policy_loss(
                new.token_logp, old.token_logp, advantages, new.mask, loss_cfg.clip_eps, normaliser=sequences
            )
            value_loss = clipped_value_loss(
                new.values, old.values, returns, loss_cfg.value_clip, normaliser=sequences
            )
            loss = policy_loss + loss_cfg.value_coef * value_loss
            parts |= {
                "clipped_tokens": clipped_tokens,
                "value_loss": value_loss.detach(),
                "value": new.values.sum().detach() / sequences,
            }
        if loss_cfg.kl_coef:
            loss = (
                loss
                + loss_cfg.kl_coef * kl_penalty(new.token_logp, ref.token_logp, new.mask).sum() / sequences
            )
        parts["loss"] = loss
        return parts

    @property
    def k(self) -> int:
        return self.config.sampling.k

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self) -> list[dict[str, float]]:
        cfg = self.config
        logger = StepLogger(cfg.out_dir, cfg.tensorboard)
        (cfg.out_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
        history: list[dict[str, float]] = []
        async with AsyncRewardClient(
            cfg.reward.url,
            max_in_flight=cfg.reward.max_in_flight,
            timeout_s=cfg.reward.timeout_s,
            api_key=api_key(cfg.reward),
        ) as client:
            # A step's wall time runs from the end of the previous step, so that it holds one generation in
            # both modes (in sequential mode the next generation happens after a step is logged).
            step_started = time.perf_counter()
            rollout = await asyncio.to_thread(self.generate, 0)
            grading = asyncio.create_task(self.grade(client, rollout))
            try:
                for step in tqdm(range(cfg.steps), desc="train", unit="step"):
                    upcoming = None
                    if cfg.overlap and step + 1 < cfg.steps:
                        # Generate step t+1 while the server grades step t.
                        upcoming = await asyncio.to_thread(self.generate, step + 1)
                    wait_started = time.perf_counter()
                    graded, grade_s = await grading
                    grade_wait_s = time.perf_counter() - wait_started
                    update_started = time.perf_counter()
                    stats = self.update(rollout, graded)
                    update_s = time.perf_counter() - update_started
                    metrics = self.metrics(graded) | stats
                    if self.on_step is not None:
                        metrics |= self.on_step(step + 1, self.policy.model)
                    metrics |= {
                        "time/generate_s": rollout.generate_s,
                        "time/grade_s": grade_s,
                        "time/grade_wait_s": grade_wait_s,  # grading time not hidden behind generation
                        "time/update_s": update_s,
                        "time/step_s": time.perf_counter() - step_started,
                    }
                    step_started = time.perf_counter()
                    logger.log(step, metrics)
                    history.append({"step": step, **metrics})
                    if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
                        self.save_checkpoint(step + 1)
                    if step + 1 < cfg.steps:
                        if upcoming is None:
                            upcoming = await asyncio.to_thread(self.generate, step + 1)
                        rollout = upcoming
                        grading = asyncio.create_task(self.grade(client, rollout))
            finally:
                if not grading.done():
                    grading.cancel()
                logger.close()
        self.save_checkpoint(cfg.steps, name="final")
        return history

    def metrics(self, graded: GradedBatch) -> dict[str, float]:
        rewards = graded.rewards.double()
        valid = ~torch.isnan(rewards)
        credit = self.advantages(graded)[valid]
        n_valid = valid.sum(1)
        correct = (graded.correct & valid).sum(1)
        groups = [i for i in range(len(rewards)) if n_valid[i] > 0]
        pass_k = [
            float(pass_at_k(int(n_valid[i]), int(correct[i]), min(self.k, int(n_valid[i])))) for i in groups
        ]
        maj = [
            maj_at_k(graded.classes[i][valid[i]], correct_classes(graded, i), min(self.k, int(n_valid[i])))
            for i in groups
        ]
        return {
            "reward/mean": float(rewards[valid].mean()) if valid.any() else math.nan,
            "reward/accuracy": float((graded.correct & valid).sum() / valid.sum().clamp(min=1)),
            f"reward/pass@{self.k}": sum(pass_k) / max(1, len(pass_k)),
            f"reward/maj@{self.k}": sum(maj) / max(1, len(maj)),
            "reward/dropped": float((~valid).sum()),
            "adv/mean": float(credit.mean()) if credit.numel() else 0.0,
            "adv/std": float(credit.std()) if credit.numel() > 1 else 0.0,
            "adv/abs_mean": float(credit.abs().mean()) if credit.numel() else 0.0,
            "adv/nonzero_frac": float((credit != 0).double().mean()) if credit.numel() else 0.0,
        }

    def save_checkpoint(self, step: int, name: str | None = None) -> Path:
        path = self.config.out_dir / "checkpoints" / (name or f"step_{step}")
        self.policy.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        torch.save(
            {
                "step": step,
                "optimizer": self.optimizer.state_dict(),
                "value_head": None if self.policy.value_head is None else self.policy.value_head.state_dict(),
            },
            path / "trainer_state.pt",
        )
        return path


def correct_classes(graded: GradedBatch, group: int) -> set[int]:
    """The answer classes of a group that the server graded correct (at most one for math)."""
    return set(graded.classes[group][graded.correct[group]].tolist()) - {-1}


def train(config: TrainConfig) -> list[dict[str, float]]:
    """Run the whole training; returns the per-step metrics (also in `out_dir/metrics.jsonl`)."""
    return asyncio.run(Trainer(config).run())
