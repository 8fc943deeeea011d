"""Evaluation: pass@k and maj@k for k up to 100 from n samples per prompt (unbiased estimators, no bootstrap).

    trainer-client eval --config examples/train_toy.yaml --n 200 --out runs/eval

Writes `eval.json`, a Markdown table like the paper's Tables 1-2 (`eval.md`) and a curve (`eval.png`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from reward_server.schemas import GradeGroup, RewardSpec
from trainer_client.client import AsyncRewardClient, to_tensors
from trainer_client.config import TrainConfig, api_key
from trainer_client.data import load_prompts
from trainer_client.estimators import maj_at_k, pass_at_k
from trainer_client.policy import load_model
from trainer_client.sampling.factory import make_sampler
from trainer_client.train import correct_classes

DEFAULT_KS = (1, 2, 4, 8, 16, 32, 64, 100)


async def evaluate(
    config: TrainConfig, n: int, ks: list[int], out_dir: Path, limit: int | None = None, chunk: int = 32
) -> dict[str, Any]:
    """Sample n completions per prompt, grade them, and estimate pass@k and maj@k for every k <= n."""
    ks = sorted(k for k in ks if k <= n)
    if not ks:
        raise ValueError(f"no k in {ks} is <= n = {n}")
    model, tokenizer = load_model(config.model)
    sampler = make_sampler(config.sampling, model, tokenizer)
    prompts = load_prompts(config.data)[:limit]
    reward = RewardSpec(correct=config.reward.correct, incorrect=config.reward.incorrect)
    per_prompt: list[dict[str, Any]] = []
    async with AsyncRewardClient(
        config.reward.url, timeout_s=config.reward.timeout_s, api_key=api_key(config.reward)
    ) as client:
        for prompt in tqdm(prompts, desc="eval", unit="prompt"):
            texts: list[str] = []
            for start in range(0, n, chunk):
                batch = await asyncio.to_thread(
                    sampler.sample,
                    [prompt.text],
                    min(chunk, n - start),
                    max_new_tokens=config.sampling.max_new_tokens,
                    temperature=config.sampling.temperature,
                    top_p=config.sampling.top_p,
                    seed=sampling_seed(config.seed, prompt.id, start),
                )
                texts += batch.texts[0]
            if config.data.grade_with_prompt:
                texts = [prompt.text + text for text in texts]
            group = GradeGroup(
                group_id=prompt.id, backend=prompt.backend, reference=prompt.reference, completions=texts
            )
            graded = to_tensors(await client.grade([group], reward=reward))
            valid = ~torch.isnan(graded.rewards[0])
            per_prompt.append(
                {
                    "id": prompt.id,
                    "n": int(valid.sum()),
                    "correct": int((graded.correct[0] & valid).sum()),
                    "classes": graded.classes[0][valid].tolist(),
                    "correct_classes": sorted(correct_classes(graded, 0)),
                }
            )
    table = {
        f"pass@{k}": _mean([float(pass_at_k(p["n"], p["correct"], k)) for p in per_prompt if p["n"] >= k])
        for k in ks
    } | {
        f"maj@{k}": _mean(
            [
                maj_at_k(torch.tensor(p["classes"]), set(p["correct_classes"]), k)
                for p in per_prompt
                if p["n"] >= k
            ]
        )
        for k in ks
    }
    result = {"n": n, "ks": ks, "prompts": len(per_prompt), "metrics": table, "per_prompt": per_prompt}
    write_report(result, out_dir)
    return result


def sampling_seed(seed: int, prompt_id: str, start: int) -> int:
    """The sampler seed of one prompt's chunk of samples: distinct per prompt, stable across processes.

    Prompts must not share random numbers (with one seed for all, their errors would be correlated), and a
    rerun must draw the same samples; Python's hash() of a str is salted per process, so a keyed BLAKE2 digest
    is used instead. 56 bits: well inside every sampler's seed range.

    Example:
        >>> sampling_seed(0, "toy-0", 0) == sampling_seed(0, "toy-0", 0) != sampling_seed(0, "toy-1", 0)
        True
    """
    digest = hashlib.blake2b(f"{seed}/{prompt_id}/{start}".encode(), digest_size=7).digest()
    return int.from_bytes(digest, "big")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def write_report(result: dict[str, Any], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2))
    ks = result["ks"]
    metrics = result["metrics"]
    header = "| metric | " + " | ".join(f"k={k}" for k in ks) + " |"
    lines = [header, "|---" * (len(ks) + 1) + "|"]
    for name in ("pass", "maj"):
        lines.append(f"| {name}@k | " + " | ".join(f"{100 * metrics[f'{name}@{k}']:.1f}" for k in ks) + " |")
    (out_dir / "eval.md").write_text(
        f"n = {result['n']} samples per prompt, {result['prompts']} prompts (percent)\n\n"
        + "\n".join(lines)
        + "\n"
    )
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for name in ("pass", "maj"):
        axis.plot(ks, [metrics[f"{name}@{k}"] for k in ks], marker="o", label=f"{name}@k")
    axis.set_xscale("log")
    axis.set_xlabel("k (samples at inference)")
    axis.set_ylabel("success rate")
    axis.set_title(f"pass@k and maj@k from n = {result['n']} samples")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out_dir / "eval.png", dpi=120)
    plt.close(figure)
