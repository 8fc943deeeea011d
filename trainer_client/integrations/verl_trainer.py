"""verl V1 trainer modes that give `ia_maj_loo`/`ia_maj_biased` the answer classes verl does not pass them.

verl 0.9.1 hands an advantage estimator rewards and uids only (`compute_advantage` passes the batch to
`gdpo` alone; verl PR #7473 would change that), and its reward loop grades sample by sample, so no per-sample
column holds classes that are comparable within a prompt's group. These trainers override
`PPOTrainer._compute_advantage`: when the estimator is a majority-vote one, they read the rows' responses,
data sources and ground truths from the TransferQueue, have the reward server grade each uid's rows as one
group (`verl_reward.group_answer_classes`: one request per step; verdicts it has already cached cost
nothing), and run verl's own `_compute_advantage` inside `answer_classes(uids, classes)`. Every other
estimator goes through untouched.

Registered as `trainer.v1.trainer_mode` = `ia_sync`, `ia_colocate_async`, `ia_separate_async` (the modes of
verl 0.9.1 with this override). This module imports verl's V1 trainer (about 2 s and TransferQueue), so it
is opt-in rather than part of the entry-point plugin; make every verl process import it with

    VERL_USE_EXTERNAL_MODULES=trainer_client.integrations.verl_trainer python -m verl.trainer.main_ppo \\
        trainer.v1.trainer_mode=ia_sync algorithm.adv_estimator=ia_maj_loo ...

(with a Ray cluster that was started elsewhere, pass the variable through
`+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=...`). The server URL and backend come
from `reward.custom_reward_function.reward_kwargs.{url,backend}`, else `$REWARD_SERVER_URL`.

Limitation: one trajectory per sample. An agent loop that puts several outputs per session in the batch
gets one row per output, and verl's non-GRPO path already counts each row as a sample.
"""

from __future__ import annotations

from typing import Any

import transfer_queue as tq  # type: ignore[import-not-found,import-untyped,unused-ignore]
from verl.trainer.ppo.v1 import (  # type: ignore[import-not-found,unused-ignore]
    PPOTrainer,
    PPOTrainerColocateAsync,
    PPOTrainerSeparateAsync,
    PPOTrainerSync,
    register_trainer,
)

import trainer_client.integrations.verl_plugin  # noqa: F401  (the ia_* estimators, without entry points)
from trainer_client.integrations.verl_estimators import MAJORITY_ESTIMATORS, PREFIX, answer_classes
from trainer_client.integrations.verl_reward import group_answer_classes

__all__ = ["TRAINER_MODES", "AnswerClassesMixin"]

MAJORITY_NAMES = frozenset(PREFIX + name for name in MAJORITY_ESTIMATORS)
_CLASS_FIELDS = ["uid", "responses", "data_source", "reward_model"]


class AnswerClassesMixin:
    """Overrides `_compute_advantage` of a verl `PPOTrainer` so that `ia_maj_*` get answer classes."""

    config: Any
    tokenizer: Any

    def _compute_advantage(self, batch: Any, metrics: dict[str, Any]) -> Any:
        if str(self.config.algorithm.adv_estimator) not in MAJORITY_NAMES:
            return super()._compute_advantage(batch, metrics)  # type: ignore[misc]
        uids, classes = self._answer_classes(batch)
        with answer_classes(uids, classes):
            return super()._compute_advantage(batch, metrics)  # type: ignore[misc]

    def _answer_classes(self, batch: Any) -> tuple[list[Any], list[int]]:
        """(uids, classes) of the batch's rows, in the order `_compute_advantage` reads them."""
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=_CLASS_FIELDS)
        # Read as verl's trainer reads these fields (`_validate`): non-tensor columns through pop().tolist(),
        # responses padded and decoded without special tokens.
        uids = list(data.pop("uid").tolist())
        data_sources = [str(source) for source in data.pop("data_source").tolist()]
        ground_truths = [row["ground_truth"] for row in data.pop("reward_model").tolist()]
        responses = data["responses"].to_padded_tensor(padding=self.tokenizer.pad_token_id)
        completions = [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in responses]
        reward_kwargs = self.config.reward.custom_reward_function.get("reward_kwargs") or {}
        classes = group_answer_classes(
            uids,
            completions,
            data_sources,
            ground_truths,
            url=reward_kwargs.get("url"),
            backend=reward_kwargs.get("backend"),
        )
        return uids, classes


def _with_classes(base: type[PPOTrainer]) -> type[PPOTrainer]:
    cls = type(f"AnswerClasses{base.__name__}", (AnswerClassesMixin, base), {"__module__": __name__})
    return cls


TRAINER_MODES: dict[str, type[PPOTrainer]] = {
    "ia_sync": _with_classes(PPOTrainerSync),
    "ia_colocate_async": _with_classes(PPOTrainerColocateAsync),
    "ia_separate_async": _with_classes(PPOTrainerSeparateAsync),
}
for _mode, _cls in TRAINER_MODES.items():
    register_trainer(_mode)(_cls)
