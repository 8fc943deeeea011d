"""`trainer_client.sft`: the loss goes down, the saved model loads, both loss paths agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from trainer_client.config import ModelConfig
from trainer_client.policy import Policy
from trainer_client.sft import Pair, SFTConfig, WeightedNLL, load_pairs, sft
from trainer_client.tiny_model import build_tiny_model


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_sft_lowers_the_loss_and_saves_a_loadable_model(tmp_path: Path) -> None:
    data = write_rows(
        tmp_path / "pairs.jsonl",
        [{"prompt": f"{a}+{b}=", "completion": str(a + b)} for a in range(3) for b in range(3)],
    )
    config = SFTConfig(
        model=ModelConfig(device="cpu"), data=data, out_dir=tmp_path / "out", steps=30, add_eos=True
    )
    losses = sft(config, progress=False)
    assert len(losses) == 30 and losses[-1] < 0.5 * losses[0]
    assert json.loads((tmp_path / "out/sft.json").read_text())["losses"] == losses
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.hidden_size == 64


def test_the_one_token_path_equals_scoring_each_completion() -> None:
    model, tokenizer = build_tiny_model(seed=2)
    policy = Policy(model)
    pairs = [Pair("Item 1: near 4? ", {"4": 0.7, "5": 0.2, "x": 0.1}), Pair("Item 2: near 0? ", {"0": 1.0})]
    fast = WeightedNLL(policy, tokenizer, pairs, add_eos=False)
    assert fast.one_token
    slow = WeightedNLL(policy, tokenizer, pairs, add_eos=False)
    slow.one_token = False
    with torch.no_grad():
        assert float(fast([0, 1])) == pytest.approx(float(slow([0, 1])), rel=1e-5)


def test_load_pairs_reads_both_row_forms_and_refuses_bad_rows(tmp_path: Path) -> None:
    path = write_rows(
        tmp_path / "a.jsonl",
        [{"prompt": "p", "completion": "c", "weight": 2}, {"prompt": "q", "targets": {"1": 0.5, "2": 0.5}}],
    )
    assert load_pairs(path) == [Pair("p", {"c": 2.0}), Pair("q", {"1": 0.5, "2": 0.5})]
    with pytest.raises(ValueError, match="completion"):
        load_pairs(write_rows(tmp_path / "b.jsonl", [{"prompt": "p"}]))
    with pytest.raises(ValueError, match=">= 0"):
        load_pairs(write_rows(tmp_path / "c.jsonl", [{"prompt": "p", "completion": "c", "weight": -1}]))


def test_the_sft_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from trainer_client.cli import app

    data = write_rows(tmp_path / "pairs.jsonl", [{"prompt": "1+1=", "targets": {"2": 0.9, "3": 0.1}}])
    args = ["sft", "--data", str(data), "--out", str(tmp_path / "out"), "--steps", "3", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "model.name_or_path=" in result.output and (tmp_path / "out/config.json").exists()
