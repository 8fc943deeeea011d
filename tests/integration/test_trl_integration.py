"""`InferenceAwareGRPOTrainer` (TRL 1.16) for one step on the tiny random-weight model, graded by a live
reward server (`reward-server serve`, the `server` fixture). Needs TRL: CI runs it in `.venv-integrations`.

The completions are made gradeable: generation may only emit one digit (`suppress_tokens`), biased towards
7 and 3 (`sequence_bias`), and the golds are 7 and 3, so the server's rewards and answer classes vary.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("trl")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig  # noqa: E402

from tests.conftest import REPO, ServerProcess, free_port  # noqa: E402
from trainer_client.estimators import compute_advantages  # noqa: E402
from trainer_client.integrations.trl import (  # noqa: E402
    InferenceAwareGRPOTrainer,
    ServerRewardFunc,
    make_reward_func,
)
from trainer_client.tiny_model import build_tiny_model  # noqa: E402

pytestmark = [pytest.mark.integrations, pytest.mark.slow]

G = 4  # num_generations
WEIGHTS = [1.0, 0.5]


def position(completions: list[str], **kwargs: Any) -> list[float | None]:
    """A second, local reward function that tells equal completions apart (so that no group has tied
    rewards): the completion's position in the batch / 100, and None (does not apply) for the first."""
    return [None if index == 0 else index / 100 for index in range(len(completions))]


def one_digit_config(tokenizer: Any, out: Path, **overrides: Any) -> GRPOConfig:
    digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
    options: dict[str, Any] = {
        "output_dir": str(out),
        "use_cpu": True,
        "report_to": [],
        "max_steps": 1,
        "per_device_train_batch_size": 2 * G,  # 2 prompts x G completions, one step
        "num_generations": G,
        "max_completion_length": 1,
        "save_strategy": "no",
        "logging_steps": 1,
        "seed": 0,
        "generation_kwargs": {
            "suppress_tokens": [i for i in range(len(tokenizer)) if i not in digits],
            "sequence_bias": {(digits[7],): 2.0, (digits[3],): 1.5},
        },
    }
    return GRPOConfig(**{**options, **overrides})


DATASET = [{"prompt": "3+4=", "answer": "7"}, {"prompt": "1+2=", "answer": "3"}]


class Recorder:
    """Wraps a trainer's methods to keep what one step computed and what reached the loss."""

    def __init__(self, trainer: InferenceAwareGRPOTrainer) -> None:
        self.rewards_per_func: torch.Tensor | None = None
        self.advantages: torch.Tensor | None = None
        self.loss_advantages: list[torch.Tensor] = []
        calculate_rewards = trainer._calculate_rewards
        generate_and_score = trainer._generate_and_score_completions
        compute_loss = trainer._compute_loss

        def rewards(*args: Any) -> torch.Tensor:
            self.rewards_per_func = calculate_rewards(*args)
            return self.rewards_per_func

        def generate(inputs: Any) -> dict[str, Any]:
            output: dict[str, Any] = generate_and_score(inputs)
            self.advantages = output["advantages"].clone()
            return output

        def loss(model: Any, inputs: dict[str, Any]) -> torch.Tensor:
            self.loss_advantages.append(inputs["advantages"].clone())
            return compute_loss(model, inputs)  # type: ignore[no-any-return]

        trainer._calculate_rewards = rewards
        trainer._generate_and_score_completions = generate
        trainer._compute_loss = loss


def train_one_step(
    server: ServerProcess,
    tmp_path: Path,
    estimator: str,
    transport: httpx.BaseTransport | None = None,
    **estimator_args: Any,
) -> tuple[InferenceAwareGRPOTrainer, Recorder, ServerRewardFunc]:
    model, tokenizer = build_tiny_model(seed=0)
    reward = make_reward_func(server.url, timeout_s=60, transport=transport)
    trainer = InferenceAwareGRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[reward, position],
        args=one_digit_config(tokenizer, tmp_path, reward_weights=WEIGHTS),
        train_dataset=Dataset.from_list(DATASET),
        estimator=estimator,
        **estimator_args,
    )
    recorder = Recorder(trainer)
    try:
        trainer.train()
    finally:
        reward.close()
    return trainer, recorder, reward


def classes_match_texts(texts: list[str], classes: list[int]) -> bool:
    """Equal one-digit answers share a class and different ones do not (what the math server decides)."""
    pairs = list(zip(texts, classes, strict=True))
    return all((a == b) == (x == y) for a, x in pairs for b, y in pairs)


def weighted_sum(rewards_per_func: torch.Tensor) -> torch.Tensor:
    """TRL's combined reward, written out: sum of weight * reward over the functions that answered (our
    server answered every sample here)."""
    rows = []
    for row in rewards_per_func.tolist():
        rows.append(sum(w * r for w, r in zip(WEIGHTS, row, strict=True) if not math.isnan(r)))
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize(
    ("estimator", "estimator_args"),
    [("passk_loo", {}), ("maj_loo", {}), ("pkpo_loo1", {"k": 2}), ("softmax_loo", {"beta": 2.0})],
)
def test_one_step_uses_our_advantages_of_trls_combined_reward(
    server: ServerProcess, tmp_path: Path, estimator: str, estimator_args: dict[str, Any]
) -> None:
    trainer, seen, reward = train_one_step(server, tmp_path, estimator, **estimator_args)

    assert seen.rewards_per_func is not None and seen.advantages is not None
    assert seen.rewards_per_func.shape == (2 * G, 2)
    # Column 0 is the live server's verdict on each one-digit completion, column 1 the local function.
    grading = reward.last
    assert grading is not None
    assert seen.rewards_per_func[:, 0].tolist() == grading.rewards
    golds = [row["answer"] for row in DATASET for _ in range(G)]
    assert sorted(set(grading.references)) == sorted(set(golds))
    for text, gold, value in zip(grading.texts, grading.references, grading.rewards, strict=True):
        assert len(text) == 1 and text.isdigit()
        assert value == (1.0 if text == gold else -1.0)
    assert len(set(grading.rewards)) == 2, "the scenario should give both rewards"

    rewards = weighted_sum(seen.rewards_per_func)
    classes = torch.tensor(grading.classes) if estimator == "maj_loo" else None
    if classes is not None:
        # The server's classes: equal digits of one prompt share one.
        for group in range(2):
            texts = grading.texts[group * G : (group + 1) * G]
            ids = grading.classes[group * G : (group + 1) * G]
            assert classes_match_texts(texts, ids), (texts, ids)
    expected = compute_advantages(
        rewards.view(-1, G),
        estimator,
        classes=None if classes is None else classes.view(-1, G),
        **estimator_args,
    ).reshape(-1)
    assert expected.abs().sum() > 0, "the scenario should give non-zero advantages"
    torch.testing.assert_close(seen.advantages.double(), expected, rtol=0, atol=1e-6)
    # They reached the loss (in TRL's shuffled order) and the completions table.
    assert len(seen.loss_advantages) == 1
    assert sorted(seen.loss_advantages[0].tolist()) == pytest.approx(sorted(expected.tolist()), abs=1e-6)
    assert list(trainer._logs["advantages"]) == pytest.approx(expected.tolist(), abs=1e-6)


def test_a_sample_the_server_failed_to_grade_is_dropped(server: ServerProcess, tmp_path: Path) -> None:
    """TRL turns our None into NaN; we drop the sample (advantage 0, left out of its group) rather than
    let TRL's weighted sum count the server's failure as 0."""

    def one_error(request: httpx.Request) -> httpx.Response:
        # The live server's verdicts, except that it "failed" on the second completion.
        live = httpx.post(
            server.url + "/v1/grade", content=request.content, headers=dict(request.headers), timeout=60
        )
        body = live.json()
        body["groups"][0]["results"][1] = {"status": "error", "reward": None, "detail": "injected failure"}
        return httpx.Response(200, json=body)

    trainer, seen, reward = train_one_step(
        server, tmp_path, "mean_loo", transport=httpx.MockTransport(one_error)
    )

    assert seen.rewards_per_func is not None and seen.advantages is not None
    assert reward.last is not None and reward.last.rewards[1] is None
    assert math.isnan(seen.rewards_per_func[1, 0].item())
    assert seen.rewards_per_func[1, 1].item() == pytest.approx(0.01)  # the local function still answered
    rewards = weighted_sum(seen.rewards_per_func)
    rewards[1] = math.nan
    expected = compute_advantages(rewards.view(-1, G), "mean_loo").reshape(-1)
    assert expected[1] == 0 and expected[[0, 2, 3]].abs().sum() > 0
    torch.testing.assert_close(seen.advantages.double(), expected, rtol=0, atol=1e-6)
    assert trainer.state.log_history[0]["inference_aware/dropped_frac"] == 1 / (2 * G)
    assert trainer.state.log_history[0]["math_reward/error_frac"] == 1 / (2 * G)


def test_majority_voting_refuses_a_reward_function_that_is_not_ours(
    server: ServerProcess, tmp_path: Path
) -> None:
    model, tokenizer = build_tiny_model(seed=0)
    with pytest.raises(ValueError, match="exactly one reward function of .*make_reward_func, found 0"):
        InferenceAwareGRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[position],
            args=one_digit_config(tokenizer, tmp_path),
            train_dataset=Dataset.from_list(DATASET),
            estimator="maj_loo",
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"estimator": "no_such"}, "unknown estimator 'no_such'"),
        ({"estimator": "passk_loo", "k": 2}, "k=2 != group size n=4"),
        ({"estimator": "leave_p_out"}, "requires p="),
    ],
)
def test_bad_estimator_arguments_fail_at_construction(
    server: ServerProcess, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    model, tokenizer = build_tiny_model(seed=0)
    with pytest.raises(ValueError, match=message):
        InferenceAwareGRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[make_reward_func(server.url)],
            args=one_digit_config(tokenizer, tmp_path),
            train_dataset=Dataset.from_list(DATASET),
            **kwargs,
        )


def test_a_group_straddling_two_processes_votes_with_comparable_classes(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Two CPU processes (torchrun, gloo) hold 6 of 12 completions each: the middle group straddles them."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            str(REPO / "tests" / "integration" / "trl_two_process_step.py"),
            server.url,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        # This checkout's code, whatever the venv's editable install points to.
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        },
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [rank["num_processes"] for rank in ranks] == [2, 2]
    # Both processes computed from the same gathered batch ...
    assert ranks[0]["rewards_per_func"] == ranks[1]["rewards_per_func"]
    assert ranks[0]["classes"] == ranks[1]["classes"]
    texts = ranks[0]["local_texts"] + ranks[1]["local_texts"]
    classes = ranks[0]["classes"]
    # ... in which the classes are comparable within every group, the straddling one included (samples 4..7,
    # graded in two requests whose class ids alone would not be).
    for group in range(3):
        ids = classes[group * G : (group + 1) * G]
        group_texts = texts[group * G : (group + 1) * G]
        assert classes_match_texts(group_texts, ids), (group_texts, ids)
    rewards = torch.tensor(ranks[0]["rewards_per_func"], dtype=torch.float64)[:, 0]
    expected = compute_advantages(rewards.view(-1, G), "maj_loo", classes=torch.tensor(classes).view(-1, G))
    # ... and each process kept its own slice.
    used = torch.tensor(ranks[0]["advantages"] + ranks[1]["advantages"], dtype=torch.float64)
    torch.testing.assert_close(used, expected.reshape(-1), rtol=0, atol=1e-6)
