"""The verl adapter without verl: grouping by uid and the estimator wrapper. The same code inside real
verl is tested in tests/integration/test_verl_integration.py."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

from trainer_client.estimators import available_estimators, compute_advantages
from trainer_client.integrations import verl_estimators
from trainer_client.integrations.verl_estimators import (
    MissingAnswerClasses,
    answer_classes,
    estimator_params,
    group_rows,
    grouped_advantages,
    make_estimator,
    verl_names,
)

NAN = math.nan

# Parameters that make every estimator run on groups of up to 4 valid samples.
PARAMS: dict[str, dict[str, Any]] = {
    "leave_p_out": {"p": 1},
    "softmax_loo": {"beta": 2.0},
    "passk_softmax_baseline": {"beta": 2.0},
    "pkpo": {"k": 2},
    "pkpo_loo1": {"k": 2},
}


def test_doctests() -> None:
    assert doctest.testmod(verl_estimators).failed == 0


# --------------------------------------------------------------------------------------------------------
# Grouping, padding and scattering


def test_group_rows_keeps_first_appearance_and_row_order() -> None:
    assert group_rows(np.array(["b", "a", "b", "c", "b", "a"], dtype=object)).tolist() == [
        [0, 2, 4],
        [1, 5, -1],
        [3, -1, -1],
    ]
    assert group_rows([]).shape == (0, 0)


def shuffled_batch(seed: int = 0) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, list[list[int]]]:
    """Rows of 4 groups (sizes 4, 3, 4, 1, like a batch after filtering), shuffled, with NaN samples.

    Returns scores [bs], uids [bs], classes [bs] and the rows of each group in order of first appearance.
    """
    generator = torch.Generator().manual_seed(seed)
    sizes = {"p0": 4, "p1": 3, "p2": 4, "p3": 1}
    uids = [uid for uid, size in sizes.items() for _ in range(size)]
    order = torch.randperm(len(uids), generator=generator).tolist()
    uids = [uids[i] for i in order]
    scores = torch.randint(0, 2, (len(uids),), generator=generator).to(torch.float64)
    scores[[1, 6]] = NAN
    classes = torch.randint(-1, 3, (len(uids),), generator=generator)
    groups: dict[str, list[int]] = {}
    for row, uid in enumerate(uids):
        groups.setdefault(uid, []).append(row)
    return scores, np.array(uids, dtype=object), classes, list(groups.values())


def reference_advantages(
    scores: torch.Tensor, groups: list[list[int]], name: str, classes: torch.Tensor | None, **params: Any
) -> torch.Tensor:
    """compute_advantages group by group (each its own [1, n] call, no padding), scattered by hand."""
    out = torch.zeros(scores.shape[0], dtype=torch.float64)
    for rows in groups:
        index = torch.tensor(rows)
        group_classes = None if classes is None else classes[index].unsqueeze(0)
        k = params.get("k")
        call = {**params, "k": min(k, len(rows)) if k is not None else None}
        if len(rows) < 2:
            continue  # a group of one: advantage 0 (compute_advantages agrees, its n < 2 path)
        out[index] = compute_advantages(scores[index].unsqueeze(0), name, classes=group_classes, **call)[0]
    return out


@pytest.mark.parametrize("name", available_estimators())
def test_grouped_advantages_equal_compute_advantages_per_group(name: str) -> None:
    scores, uids, classes, groups = shuffled_batch()
    params = PARAMS.get(name, {})
    needs_classes = name in verl_estimators.MAJORITY_ESTIMATORS
    got = grouped_advantages(scores, uids, name, classes=classes if needs_classes else None, **params)
    expected = reference_advantages(scores, groups, name, classes if needs_classes else None, **params)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert got[torch.isnan(scores)].eq(0).all()


def test_grouped_advantages_checks_lengths() -> None:
    with pytest.raises(ValueError, match="index has 2 uids for 3 rows"):
        grouped_advantages(torch.zeros(3), ["a", "a"], "mean_loo")
    with pytest.raises(ValueError, match="classes must have shape"):
        grouped_advantages(torch.zeros(2), ["a", "a"], "maj_loo", classes=torch.zeros(3, dtype=torch.int64))


# --------------------------------------------------------------------------------------------------------
# The verl-shaped estimator


def verl_inputs(scores: torch.Tensor, length: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """token_level_rewards with the score on the last valid token, and a ragged response mask."""
    lengths = [length - (row % 3) for row in range(scores.shape[0])]
    mask = torch.zeros(scores.shape[0], length)
    rewards = torch.zeros(scores.shape[0], length)
    for row, valid in enumerate(lengths):
        mask[row, :valid] = 1
        rewards[row, valid - 1] = scores[row]
    return rewards, mask


def test_names_cover_every_estimator() -> None:
    assert set(verl_names()) == {f"ia_{name}" for name in available_estimators()}
    assert {"ia_passk_loo", "ia_pkpo_loo1", "ia_maj_loo", "ia_maj_biased"} <= set(verl_names())


def test_estimator_broadcasts_over_the_response_like_grpo() -> None:
    scores, uids, _, groups = shuffled_batch()
    rewards, mask = verl_inputs(scores.float())
    advantages, returns = make_estimator("passk_loo")(
        token_level_rewards=rewards, response_mask=mask, index=uids, config=None, epsilon=1e-6
    )
    expected = reference_advantages(scores, groups, "passk_loo", None)
    assert advantages.shape == mask.shape and advantages.dtype == rewards.dtype
    torch.testing.assert_close(advantages, expected.float().unsqueeze(-1) * mask)
    assert returns is advantages
    assert make_estimator("passk_loo").__name__ == "ia_passk_loo"


def test_estimator_reads_parameters_from_the_algorithm_config() -> None:
    scores, uids, _, groups = shuffled_batch(seed=3)
    rewards, mask = verl_inputs(scores.float())
    config = {"inference_aware": {"k": 2}, "adv_estimator": "ia_pkpo_loo1", "gamma": 1.0}
    advantages, _ = make_estimator("pkpo_loo1")(
        token_level_rewards=rewards, response_mask=mask, index=uids, config=config
    )
    expected = reference_advantages(scores, groups, "pkpo_loo1", None, k=2)
    torch.testing.assert_close(advantages, expected.float().unsqueeze(-1) * mask)
    with pytest.raises(ValueError, match="requires k"):
        make_estimator("pkpo")(token_level_rewards=rewards, response_mask=mask, index=uids, config={})


def test_estimator_params() -> None:
    assert estimator_params(None) == {"k": None, "p": None, "beta": None}
    assert estimator_params({"gamma": 1.0}) == {"k": None, "p": None, "beta": None}
    assert estimator_params({"inference_aware": {"k": "4", "beta": 1}}) == {"k": 4, "p": None, "beta": 1.0}
    with pytest.raises(ValueError, match=r"unknown keys \['kk'\]"):
        estimator_params({"inference_aware": {"kk": 4}})


def test_estimator_needs_uids() -> None:
    rewards, mask = verl_inputs(torch.ones(2))
    with pytest.raises(ValueError, match="no 'uid' column"):
        make_estimator("mean_loo")(token_level_rewards=rewards, response_mask=mask, config=None)
    with pytest.raises(ValueError, match="unknown estimator 'nope'"):
        make_estimator("nope")


def test_majority_vote_without_classes_explains_what_is_missing() -> None:
    rewards, mask = verl_inputs(torch.ones(3))
    with pytest.raises(MissingAnswerClasses) as caught:
        make_estimator("maj_loo")(token_level_rewards=rewards, response_mask=mask, index=["a"] * 3)
    message = str(caught.value)
    assert "ia_maj_loo" in message and "#7473" in message and "trainer_mode=ia_sync" in message


def test_majority_vote_takes_classes_from_the_context_or_the_call() -> None:
    scores, uids, classes, groups = shuffled_batch(seed=5)
    rewards, mask = verl_inputs(scores.float())
    expected = reference_advantages(scores, groups, "maj_loo", classes).float().unsqueeze(-1) * mask
    estimator = make_estimator("maj_loo")
    with answer_classes(uids, classes.numpy()):
        advantages, _ = estimator(token_level_rewards=rewards, response_mask=mask, index=uids)
    torch.testing.assert_close(advantages, expected)
    advantages, _ = estimator(token_level_rewards=rewards, response_mask=mask, index=uids, classes=classes)
    torch.testing.assert_close(advantages, expected)
    # The context is gone after the block, and it refuses rows it was not given for.
    with pytest.raises(MissingAnswerClasses):
        estimator(token_level_rewards=rewards, response_mask=mask, index=uids)
    with answer_classes(uids[::-1], classes.numpy()), pytest.raises(MissingAnswerClasses, match="other rows"):
        estimator(token_level_rewards=rewards, response_mask=mask, index=uids)


def test_the_estimators_and_reward_modules_never_import_verl() -> None:
    code = (
        "import sys\n"
        "import trainer_client.integrations.verl_estimators\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('verl', 'ray', 'transfer_queue')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugin_without_verl_logs_a_warning_instead_of_failing() -> None:
    code = (
        "import logging, sys\n"
        "sys.modules['verl'] = None  # as if verl were not installed\n"
        "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')\n"
        "import trainer_client.integrations.verl_plugin\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "WARNING inference-aware verl plugin: verl could not be imported" in done.stderr
    assert "not registered" in done.stderr
