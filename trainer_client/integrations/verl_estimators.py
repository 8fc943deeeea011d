"""Our estimators in the shape of verl's advantage estimators; pure torch, verl is never imported here.

verl (0.9.1, `verl.trainer.ppo.ray_trainer.compute_advantage`) calls a registered estimator with keywords:

    advantages, returns = fn(token_level_rewards=[bs, T], response_mask=[bs, T], config=algorithm_config,
                             index=uid_per_row, **optional)   # index: np object array [bs]

One row is one sample; rows of a prompt share its uid, in any order, and a group may be smaller than
`rollout.n` after filtering. `make_estimator(name)` builds such a function over `compute_advantages`: it
sums each row to its score (NaN, our failed sample, survives the sum), gathers the rows of each uid into a
[G, n_max] matrix padded with NaN (so padding is a dropped sample), runs the estimator, and scatters the
advantages back, broadcast over the response tokens like verl's GRPO. `verl_plugin` registers them.

Majority voting needs each sample's answer class *within its prompt group*, which verl does not pass to
estimators. `answer_classes(uids, classes)` supplies them for the calls made inside it (the trainer of
`verl_trainer` does this); without classes `ia_maj_*` raise `MissingAnswerClasses`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainer_client.estimators import available_estimators, compute_advantages

__all__ = [
    "MAJORITY_ESTIMATORS",
    "PREFIX",
    "MissingAnswerClasses",
    "answer_classes",
    "estimator_params",
    "group_rows",
    "grouped_advantages",
    "make_estimator",
    "verl_names",
]

PREFIX = "ia_"
MAJORITY_ESTIMATORS = ("maj_loo", "maj_biased")
CONFIG_SECTION = "inference_aware"  # algorithm.inference_aware.{k,p,beta}

VerlEstimator = Callable[..., tuple[Tensor, Tensor]]

# (uids [bs], classes [bs]) of the rows the next `ia_maj_*` call will see; set by `answer_classes`.
_ANSWER_CLASSES: ContextVar[tuple[list[Hashable], Tensor] | None] = ContextVar(
    "inference_aware_answer_classes", default=None
)


class MissingAnswerClasses(ValueError):
    """`ia_maj_loo`/`ia_maj_biased` ran without the answer classes of the batch."""


def verl_names() -> dict[str, str]:
    """verl name -> our estimator name, for every estimator: `{"ia_passk_loo": "passk_loo", ...}`."""
    return {PREFIX + name: name for name in available_estimators()}


def group_rows(index: Sequence[Hashable] | np.ndarray) -> Tensor:
    """The rows of each uid as a [G, n_max] int64 matrix padded with -1.

    Groups come in order of first appearance and keep the row order inside them; uids are compared with
    `==`/hash (verl's are strings in an object array), so no sorting of mixed types is needed.

    Example:
        >>> group_rows(["b", "a", "b", "b"])
        tensor([[ 0,  2,  3],
                [ 1, -1, -1]])
    """
    groups: dict[Hashable, list[int]] = {}
    for row, uid in enumerate(index):
        groups.setdefault(uid, []).append(row)
    n_max = max((len(rows) for rows in groups.values()), default=0)
    matrix = torch.full((len(groups), n_max), -1, dtype=torch.int64)
    for g, rows in enumerate(groups.values()):
        matrix[g, : len(rows)] = torch.tensor(rows, dtype=torch.int64)
    return matrix


def grouped_advantages(
    scores: Tensor,
    index: Sequence[Hashable] | np.ndarray,
    name: str,
    *,
    k: int | None = None,
    p: int | None = None,
    beta: float | None = None,
    classes: Tensor | None = None,
) -> Tensor:
    """`compute_advantages` on rows grouped by uid: scores [bs] -> float64 advantages [bs].

    Args:
        scores: One reward per row [bs]; NaN = failed sample (advantage 0, dropped from its group).
        index: The uid of each row [bs].
        name: Our estimator name (without the `ia_` prefix).
        k, p, beta: As in `compute_advantages`.
        classes: int answer classes [bs] (-1 = no answer), for the majority-vote estimators.

    Returns:
        float64 advantages [bs] on the device of `scores`.

    Raises:
        ValueError: `index` or `classes` does not have one entry per row, or `compute_advantages` refuses.
    """
    if scores.dim() != 1:
        raise ValueError(f"scores must have shape [bs], got {tuple(scores.shape)}")
    batch = scores.shape[0]
    if len(index) != batch:
        raise ValueError(f"index has {len(index)} uids for {batch} rows")
    if classes is not None and tuple(classes.shape) != (batch,):
        raise ValueError(f"classes must have shape [{batch}], got {tuple(classes.shape)}")
    rows = group_rows(index).to(scores.device)  # [G, n_max]
    pad = rows < 0
    safe = rows.clamp(min=0)
    # Padding is a NaN reward: compute_advantages drops it like a failed sample, so ragged groups work.
    rewards = scores.detach().to(torch.float64)[safe].masked_fill(pad, math.nan)  # [G, n_max]
    grouped_classes = None
    if classes is not None:
        grouped_classes = classes.to(scores.device, torch.int64)[safe].masked_fill(pad, -1)
    advantages = compute_advantages(rewards, name, k=k, p=p, beta=beta, classes=grouped_classes)
    out = torch.zeros(batch, dtype=torch.float64, device=scores.device)
    out[rows[~pad]] = advantages[~pad]
    return out


def estimator_params(config: Mapping[str, Any] | Any | None) -> dict[str, Any]:
    """`k`, `p`, `beta` from `config.inference_aware` (verl's algorithm config); None where missing.

    verl hands the estimator `config.algorithm`, an OmegaConf DictConfig (V1 trainer) or an `AlgoConfig`;
    both have `.get`. The user sets the values with e.g. `+algorithm.inference_aware.k=4`.
    """
    section = config.get(CONFIG_SECTION) if config is not None else None
    if section is None:
        return {"k": None, "p": None, "beta": None}
    unknown = sorted(set(section) - {"k", "p", "beta"})
    if unknown:
        raise ValueError(f"algorithm.{CONFIG_SECTION} has unknown keys {unknown}; expected k, p, beta")
    k, p, beta = section.get("k"), section.get("p"), section.get("beta")
    return {
        "k": None if k is None else int(k),
        "p": None if p is None else int(p),
        "beta": None if beta is None else float(beta),
    }


@contextmanager
def answer_classes(
    uids: Sequence[Hashable] | np.ndarray, classes: Tensor | np.ndarray | Sequence[int]
) -> Iterator[None]:
    """Within this block, `ia_maj_*` take the answer class of each row from `classes`.

    Args:
        uids: The uid of each row, in the order verl will pass the rows (checked against `index`).
        classes: int answer class of each row within its uid group, -1 for no answer. Classes must be
            comparable inside a group: the reward server's classes of the group graded as one group.

    Example:
        with answer_classes(data.non_tensor_batch["uid"], classes):
            compute_advantage(data, adv_estimator="ia_maj_loo", config=algorithm_config)
    """
    values = torch.as_tensor(np.asarray(classes), dtype=torch.int64).reshape(-1)
    if len(uids) != values.shape[0]:
        raise ValueError(f"{len(uids)} uids for {values.shape[0]} classes")
    token = _ANSWER_CLASSES.set((list(uids), values))
    try:
        yield
    finally:
        _ANSWER_CLASSES.reset(token)


def _classes_for(name: str, index: Sequence[Hashable] | np.ndarray, given: Any) -> Tensor:
    """The answer classes [bs] of a majority-vote call: `classes=` if given, else the context's."""
    if given is not None:
        values = torch.as_tensor(np.asarray(given), dtype=torch.int64).reshape(-1)
        if values.shape[0] != len(index):
            raise ValueError(f"classes has {values.shape[0]} entries for {len(index)} rows")
        return values
    context = _ANSWER_CLASSES.get()
    if context is None:
        raise MissingAnswerClasses(
            f"{PREFIX}{name} needs the answer class of every sample within its prompt group, and verl "
            "0.9.1 passes advantage estimators only rewards and uids (verl PR #7473 would pass the batch). "
            "Run verl with our trainer, which grades each group as one and passes its classes: "
            "VERL_USE_EXTERNAL_MODULES=trainer_client.integrations.verl_trainer and "
            "trainer.v1.trainer_mode=ia_sync (see examples/verl/README.md); or call compute_advantage "
            "inside trainer_client.integrations.verl_estimators.answer_classes(uids, classes)."
        )
    uids, values = context
    if len(uids) != len(index) or any(a != b for a, b in zip(uids, index, strict=True)):
        raise MissingAnswerClasses(
            f"{PREFIX}{name}: the answer classes were given for other rows ({len(uids)} uids) than the "
            f"batch the estimator got ({len(index)} rows, or a different order)"
        )
    return values


def make_estimator(name: str) -> VerlEstimator:
    """A verl advantage estimator running our estimator `name` (e.g. "passk_loo").

    The function takes verl's keywords `token_level_rewards` [bs, T], `response_mask` [bs, T], `index`
    (uids [bs]) and `config` (the algorithm config; `inference_aware.{k,p,beta}` are read from it), ignores
    the other keywords verl may pass (`epsilon`, `reward_baselines`, ...), and accepts `classes` [bs] (the
    answer class of each row) for the majority-vote estimators. It returns `(advantages, returns)`, both
    [bs, T] in the dtype of the rewards: the sample's advantage on each response token, 0 on padding (as
    verl's GRPO does).
    """
    if name not in available_estimators():
        raise ValueError(f"unknown estimator {name!r}; valid estimators: {', '.join(available_estimators())}")
    majority = name in MAJORITY_ESTIMATORS

    def estimator(
        token_level_rewards: Tensor,
        response_mask: Tensor,
        index: Sequence[Hashable] | np.ndarray | None = None,
        config: Mapping[str, Any] | Any | None = None,
        classes: Tensor | np.ndarray | None = None,
        **_: Any,
    ) -> tuple[Tensor, Tensor]:
        if index is None:
            raise ValueError(f"{PREFIX}{name} groups samples by uid, but the batch has no 'uid' column")
        scores = token_level_rewards.sum(dim=-1)  # [bs]; the reward sits on the last valid token
        row_classes = _classes_for(name, index, classes) if majority else None
        advantages = grouped_advantages(scores, index, name, classes=row_classes, **estimator_params(config))
        advantages = advantages.to(token_level_rewards.dtype).unsqueeze(-1) * response_mask  # [bs, T]
        return advantages, advantages

    estimator.__name__ = estimator.__qualname__ = f"{PREFIX}{name}"
    estimator.__doc__ = f"verl advantage estimator running trainer_client's {name!r} (see make_estimator)."
    return estimator
