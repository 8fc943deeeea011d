"""End to end: `trainer-client reproduce tradeoff` at a very reduced size, with the local reward server it
starts itself (a real `reward-server serve` process), then the files and tradeoff.json's schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.unit.trainer_client.test_tradeoff_report import check_schema
from trainer_client.errors import LocalServerError
from trainer_client.local_server import local_reward_server

pytestmark = pytest.mark.slow

TINY = {
    "sft_steps": 5,
    "steps": 4,
    "eval_every": 2,
    "eval_samples": 8,
    "task.train_items": 1,
    "task.eval_items": 1,
    "prompts_per_step": 4,
    "k": 4,
}


def test_reproduce_tradeoff_writes_its_report(tmp_path: Path) -> None:
    overrides = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    command = [sys.executable, "-c", "from trainer_client.cli import app; app()", "reproduce", "tradeoff"]
    args = ["--out", str(tmp_path), "--quick", "--majority", "--offset-probs", "0.8,0.1,0.1", *overrides]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| mean PG (mean_loo) |" in done.stdout
    result = json.loads((tmp_path / "tradeoff.json").read_text())
    check_schema(result, ["mean_loo", "passk_loo", "passk_biased", "maj_loo"], seeds=1)
    assert result["config"]["task"]["offset_probs"] == [0.8, 0.1, 0.1]
    curves = result["estimators"]["passk_loo"]["curves"]
    assert curves["step"] == [0, 2, 4] and curves["kl"][0] == 0
    assert set(result["estimators"]["mean_loo"]["maj_at_k"]) == {"1", "2", "4", "8"}  # k <= n = 8
    assert (tmp_path / "tradeoff.md").read_text().startswith("# pass@1 / pass@k trade-off")
    assert (tmp_path / "tradeoff.png").stat().st_size > 10_000
    assert (tmp_path / "runs/maj_loo/seed0/checkpoints/final/config.json").exists()


def test_the_local_server_is_stopped_on_error() -> None:
    with pytest.raises(RuntimeError, match="boom"), local_reward_server() as url:
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        raise RuntimeError("boom")
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=5)


def test_a_server_that_cannot_start_is_reported() -> None:
    with pytest.raises(LocalServerError, match="exited"), local_reward_server({"REWARD_MATH_WORKERS": "0"}):
        pass
