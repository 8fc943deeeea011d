"""The offset task generator: seeded, references stratified per prompt, held-out prompts disjoint."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from trainer_client.config import DataConfig
from trainer_client.data import load_prompts
from trainer_client.tasks.offset import OffsetTask, stratified_counts


def test_same_seed_same_rows_other_seed_other_split() -> None:
    assert OffsetTask(seed=3).train_rows() == OffsetTask(seed=3).train_rows()
    assert OffsetTask(seed=3).eval_rows() == OffsetTask(seed=3).eval_rows()
    assert OffsetTask(seed=3).prompts("eval") != OffsetTask(seed=4).prompts("eval")


def test_references_are_stratified_per_prompt() -> None:
    task = OffsetTask()
    by_prompt: dict[str, Counter[str]] = {}
    for row in task.train_rows():
        by_prompt.setdefault(row["prompt"], Counter())[row["reference"]["answer"]] += 1
    assert len(by_prompt) == 10 * task.train_items
    for prompt, counts in by_prompt.items():
        base = int(prompt.split("near ")[1][0])
        # offsets 0..4 in the proportions 9/4/3/2/2 of Q = (.45, .2, .15, .1, .1) over 20 rows
        expected = {str((base + e) % 10): n for e, n in enumerate([9, 4, 3, 2, 2])}
        assert dict(counts) == expected, prompt


def test_held_out_prompts_are_new_and_their_offsets_follow_q() -> None:
    task = OffsetTask(eval_items=20)
    train = {row["prompt"] for row in task.train_rows()}
    rows = task.eval_rows()
    assert not train & {row["prompt"] for row in rows}
    offsets = Counter(
        (int(row["reference"]["answer"]) - int(row["prompt"].split("near ")[1][0])) % 10 for row in rows
    )
    assert offsets == Counter({0: 90, 1: 40, 2: 30, 3: 20, 4: 20})


def test_answer_and_sft_distributions() -> None:
    task = OffsetTask(offset_probs=[0.8, 0.1, 0.05, 0.05], sft_probs=[0.8, 0.1, 0.05, 0.05], sft_smoothing=0)
    assert task.answer_probs(8) == {"8": 0.8, "9": 0.1, "0": 0.05, "1": 0.05}
    target = task.sft_target(8)
    assert target["8"] == pytest.approx(0.8) and target["5"] == 0
    smoothed = OffsetTask().sft_target(0)
    assert sum(smoothed.values()) == pytest.approx(1)
    assert smoothed["9"] == pytest.approx(0.005)  # the uniform share only


def test_written_files_load_as_training_data(tmp_path: Path) -> None:
    files = OffsetTask(train_items=2, eval_items=1).write(tmp_path)
    prompts = load_prompts(DataConfig(path=files.train, grade_with_prompt=True))
    assert len(prompts) == 2 * 10 * 20 and prompts[0].backend == "math"
    assert len(load_prompts(DataConfig(path=files.eval))) == 10
    sft_rows = [json.loads(line) for line in files.sft.read_text().splitlines()]
    assert len(sft_rows) == 20 and set(sft_rows[0]) == {"prompt", "targets"}


@pytest.mark.parametrize("probs", [[0.5, 0.4], [1.2, -0.2], [0.1] * 11])
def test_bad_distributions_are_refused(probs: list[float]) -> None:
    with pytest.raises(ValidationError):
        OffsetTask(offset_probs=probs)


def test_stratified_counts_keep_the_total() -> None:
    assert stratified_counts([0.45, 0.2, 0.15, 0.1, 0.1], 20) == [9, 4, 3, 2, 2]
    assert sum(stratified_counts([1 / 3] * 3, 10)) == 10
