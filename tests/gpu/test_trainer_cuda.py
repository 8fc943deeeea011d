"""The trainer on a CUDA GPU: HF sampling, teacher-forced scoring, optimizer steps and whole training runs
against a real reward-server process, in float32 and bfloat16.

    python -m pytest -m gpu tests/gpu          # skipped where torch sees no CUDA device
    bash bench/gpu_check.sh                    # on a lent GPU machine with no network

The CPU twins of these checks are tests/unit/trainer_client/test_sampling.py and
tests/integration/test_train_e2e.py; the toy task and its assertions are reused from the latter.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from tests.conftest import ServerProcess
from tests.integration.test_train_e2e import assert_learned_the_toy_task, probability_of, toy_config
from trainer_client.losses import clipped_value_loss, reinforce_loss, sequence_logprob
from trainer_client.policy import Policy
from trainer_client.sampling.hf import HFSampler
from trainer_client.tiny_model import build_tiny_model
from trainer_client.train import Trainer

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
pytestmark = [
    pytest.mark.gpu,
    requires_cuda,
    # The GPU machine has other transformers/torch releases than CI: show their warnings in the log
    # instead of failing a run that cannot be repeated cheaply.
    pytest.mark.filterwarnings("default"),
]

PROMPTS = ["What is 1+1? Put the answer in \\boxed{}.", "2+2="]
# Largest |sampler log-prob - teacher-forced log-prob| per token. The tiny model's token log-probs spread
# with std ~0.24 and a one-token misalignment moves them by ~1, so even the bfloat16 bound catches that;
# bfloat16 rounding alone gave 3e-3 on the CPU.
TOLERANCE = {"float32": 1e-3, "bfloat16": 5e-2}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
TOY_STEPS = 60  # twice the CPU run's 30: each toy step takes well under a second on a GPU


def flatten(
    batch_prompt_ids: list[list[int]], nested: list[list[list[int]]]
) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt-major [B][k] lists as the N = B·k rows `Policy.score` takes."""
    prompt_ids = [batch_prompt_ids[b] for b, group in enumerate(nested) for _ in group]
    return prompt_ids, [row for group in nested for row in group]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_sampler_logprobs_match_policy_recompute_on_cuda(dtype: str, temperature: float) -> None:
    """The property the PPO ratio and the IS correction rely on, with CUDA kernels and KV-cache decoding."""
    model, tokenizer = build_tiny_model(seed=0)
    model.to(device="cuda", dtype=DTYPES[dtype])
    sampler = HFSampler(model, tokenizer)
    assert sampler.device.type == "cuda"
    k = 4
    batch = sampler.sample(PROMPTS, k, max_new_tokens=16, temperature=temperature, seed=0)
    assert batch.num_prompts == len(PROMPTS) and batch.k == k
    for group in batch.completion_ids:
        assert all(1 <= len(ids) <= 16 for ids in group)
        assert len({tuple(ids) for ids in group}) >= 2  # sampled, not greedy
    again = sampler.sample(PROMPTS, k, max_new_tokens=16, temperature=temperature, seed=0)
    assert again.completion_ids == batch.completion_ids  # the seed also fixes the CUDA generator

    policy = Policy(model, temperature=temperature)
    prompt_ids, completion_ids = flatten(batch.prompt_ids, batch.completion_ids)
    with torch.no_grad():
        scored = policy.score(prompt_ids, completion_ids)
    assert scored.token_logp.device.type == "cuda" and scored.token_logp.dtype == torch.float32
    recomputed = scored.token_logp.cpu()
    sampled = [row for group in batch.logprobs for row in group]
    worst = max(
        abs(float(recomputed[row, t]) - lp) for row, lps in enumerate(sampled) for t, lp in enumerate(lps)
    )
    assert worst < TOLERANCE[dtype], worst
    lengths = scored.mask.sum(1).cpu().tolist()
    assert lengths == [len(ids) for ids in completion_ids]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_one_optimizer_step_on_cuda_changes_the_weights(dtype: str) -> None:
    model, tokenizer = build_tiny_model(seed=0)
    model.to(device="cuda", dtype=DTYPES[dtype])
    policy = Policy(model, with_value_head=True)
    batch = HFSampler(model, tokenizer).sample(PROMPTS, 4, max_new_tokens=8, temperature=1.0, seed=1)
    prompt_ids, completion_ids = flatten(batch.prompt_ids, batch.completion_ids)
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    # Adam's first step moves every weight with a gradient by about lr: 1e-2 is above bfloat16's spacing
    # near 1 (the norm weights), so a weight that stays put means it got no gradient.
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)

    scored = policy.score(prompt_ids, completion_ids)
    assert scored.values is not None
    # Not symmetric around 0: the value head starts at 0, so targets summing to 0 give its bias no gradient.
    advantages = torch.linspace(-1, 2, len(completion_ids), device="cuda")  # [N]
    logp = sequence_logprob(scored.token_logp, scored.mask)
    loss = reinforce_loss(logp, advantages) + clipped_value_loss(
        scored.values, scored.values.detach(), advantages
    )
    loss.backward()
    optimizer.step()

    assert torch.isfinite(loss)
    for name, param in policy.named_parameters():
        assert param.device.type == "cuda", name
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert torch.isfinite(param).all(), name
        assert not torch.equal(param.detach(), before[name]), f"{name} did not move"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_policy_gradient_learns_the_toy_task_on_cuda(
    server: ServerProcess, tmp_path: Path, dtype: str
) -> None:
    """tests/integration/test_train_e2e.py's toy run, on the GPU, in the policy's dtype."""
    config = toy_config(server, tmp_path, f"steps={TOY_STEPS}", "model.device=cuda", f"model.dtype={dtype}")
    trainer = Trainer(config)
    assert trainer.policy.device.type == "cuda"
    assert next(trainer.policy.parameters()).dtype == DTYPES[dtype]
    before = probability_of(None)
    history = asyncio.run(trainer.run())
    after, first, last = assert_learned_the_toy_task(history, tmp_path, TOY_STEPS, before)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    print(f"\n{dtype}: p(7) {before:.3f} -> {after:.3f}, accuracy {first:.2f} -> {last:.2f}")


@pytest.mark.slow
def test_ppo_with_value_head_on_cuda(server: ServerProcess, tmp_path: Path) -> None:
    overrides = ["steps=4", "loss.kind=ppo", "loss.kl_coef=0.01", "model.device=cuda"]
    config = toy_config(server, tmp_path, *overrides)
    trainer = Trainer(config)
    assert trainer.policy.value_head is not None
    assert next(trainer.policy.value_head.parameters()).device.type == "cuda"
    history = asyncio.run(trainer.run())
    assert len(history) == 4
    assert {"value_loss", "clip_frac", "value", "importance_weight/mean"} <= set(history[-1])
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert (tmp_path / "checkpoints/final/trainer_state.pt").exists()


@pytest.mark.slow
def test_eval_on_cuda_writes_pass_and_maj_tables(server: ServerProcess, tmp_path: Path) -> None:
    from trainer_client.evaluate import evaluate

    config = toy_config(server, tmp_path, "model.device=cuda")
    result = asyncio.run(evaluate(config, n=16, ks=[1, 2, 4, 8, 16], out_dir=tmp_path, limit=3))
    passes = [result["metrics"][f"pass@{k}"] for k in result["ks"]]
    assert passes == sorted(passes)
    assert "| pass@k |" in (tmp_path / "eval.md").read_text()
