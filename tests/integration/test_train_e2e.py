"""End to end: a tiny random-weight model trains against a real reward-server process over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import REPO, ServerProcess
from trainer_client.config import load_config
from trainer_client.train import train

pytestmark = pytest.mark.slow
PROMPT = "What is 3+4? The final answer is "


def probability_of(model_dir: Path | None, answer: str = "7") -> float:
    """Exact probability that the policy's first completion token is `answer` after the toy prompt."""
    if model_dir is None:
        from trainer_client.tiny_model import build_tiny_model

        model, tokenizer = build_tiny_model(seed=0)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = torch.tensor([tokenizer(PROMPT)["input_ids"]])
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=ids).logits[0, -1].float(), -1)
    return float(probs[tokenizer.convert_tokens_to_ids(answer)])


def toy_config(server: ServerProcess, out_dir: Path, *overrides: str):
    return load_config(
        REPO / "examples/train_toy.yaml",
        [
            f"reward.url={server.url}",
            f"out_dir={out_dir}",
            f"data.path={REPO / 'examples/toy_sums.jsonl'}",
            *overrides,
        ],
    )


def assert_learned_the_toy_task(
    history: list[dict[str, Any]], out_dir: Path, steps: int, before: float
) -> None:
    """The right answer became likely, accuracy rose, and every step was logged (shared with tests/gpu)."""
    after = probability_of(out_dir / "checkpoints/final")
    assert after > max(0.3, 10 * before), (before, after)
    first = sum(h["reward/accuracy"] for h in history[:5]) / 5
    last = sum(h["reward/accuracy"] for h in history[-5:]) / 5
    assert last > first + 0.2, (first, last)

    lines = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == steps
    for key in (
        "reward/mean",
        "reward/pass@8",
        "reward/maj@8",
        "kl",
        "adv/abs_mean",
        "time/generate_s",
        "time/grade_s",
        "time/grade_wait_s",
        "time/update_s",
    ):
        assert key in lines[-1], key
    assert lines[-1]["kl"] > 0  # the policy moved away from the reference
    assert any((out_dir / "tensorboard").iterdir())
    return after, first, last


def test_policy_gradient_learns_the_toy_task(server: ServerProcess, tmp_path: Path) -> None:
    before = probability_of(None)
    history = train(toy_config(server, tmp_path, "steps=30"))
    assert_learned_the_toy_task(history, tmp_path, 30, before)


def test_ppo_with_value_head_runs_and_logs(server: ServerProcess, tmp_path: Path) -> None:
    history = train(toy_config(server, tmp_path, "steps=4", "loss.kind=ppo", "loss.kl_coef=0.01"))
    assert len(history) == 4
    weights = {f"importance_weight/{stat}" for stat in ("mean", "min", "max")}
    assert {"value_loss", "clip_frac", "value", *weights} <= set(history[-1])
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert (tmp_path / "checkpoints/final/trainer_state.pt").exists()


def test_eval_writes_pass_and_maj_tables(server: ServerProcess, tmp_path: Path) -> None:
    import asyncio

    from trainer_client.evaluate import evaluate

    config = toy_config(server, tmp_path)
    result = asyncio.run(evaluate(config, n=16, ks=[1, 2, 4, 8, 16, 100], out_dir=tmp_path, limit=3))
    assert result["ks"] == [1, 2, 4, 8, 16]
    passes = [result["metrics"][f"pass@{k}"] for k in result["ks"]]
    assert passes == sorted(passes)  # pass@k never decreases in k
    assert all(0 <= result["metrics"][f"maj@{k}"] <= 1 for k in result["ks"])
    assert "| pass@k |" in (tmp_path / "eval.md").read_text()
    assert (tmp_path / "eval.png").stat().st_size > 1000


def test_command_line_train_and_bandit(server: ServerProcess, tmp_path: Path) -> None:
    import subprocess
    import sys

    cli = [sys.executable, "-c", "from trainer_client.cli import app; app()"]
    train_args = [
        "train",
        "-c",
        str(REPO / "examples/train_toy.yaml"),
        "--set",
        f"reward.url={server.url}",
        "--set",
        f"out_dir={tmp_path / 'run'}",
        "--set",
        f"data.path={REPO / 'examples/toy_sums.jsonl'}",
        "--set",
        "steps=2",
    ]
    done = subprocess.run([*cli, *train_args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run/checkpoints/final/config.json").exists()
    bandit_args = ["bandit", "--steps", "20", "--seeds", "4", "--out", str(tmp_path / "bandit")]
    done = subprocess.run([*cli, *bandit_args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "passk_biased" in done.stdout
    assert (tmp_path / "bandit/bandit.png").exists()
    bad = subprocess.run(
        [*cli, "train", "-c", str(REPO / "examples/train_toy.yaml"), "--set", "sampling.k=0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "sampling.k: Input should be greater than or equal to 1" in bad.stderr
    assert "Traceback" not in bad.stderr
