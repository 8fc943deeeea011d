"""`InferenceAwareGRPOTrainer`: TRL's `GRPOTrainer` with our k-sample advantages. Imports TRL; see `trl.py`.

Override point (TRL 1.16.0, `trl/trainer/grpo_trainer.py`). The advantages are computed inline in
`_generate_and_score_completions`, from the rewards `_calculate_rewards` returns (already gathered across
processes), then sliced per process; 1.16 has no advantage hook (issue #4525: subclass that method; PR
#7298 proposes `_transform_advantages`). So:

- `_calculate_rewards`: call TRL's, keep its gathered [N_total, F] rewards and, for majority voting, the
  answer classes our reward function received (gathered the same way);
- `_generate_and_score_completions`: call TRL's, then replace `output["advantages"]` (this process's
  slice) and the logged advantages with ours.

Everything else (generation, the loss, KL, logging) stays TRL's, so TRL's private control flow is relied
on only for the names of these two methods, their call order and the batch layout.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch
import trl  # type: ignore[import-not-found,unused-ignore]
from accelerate.utils import broadcast_object_list, gather_object  # type: ignore[import-not-found,unused-ignore]
from torch import Tensor
from trl import GRPOTrainer  # type: ignore[import-not-found,unused-ignore]

from trainer_client.estimators.base import get_estimator
from trainer_client.integrations.trl import (
    ServerRewardFunc,
    combine_rewards,
    group_advantages,
    straddling_groups,
)

__all__ = ["InferenceAwareGRPOTrainer"]

log = logging.getLogger(__name__)
TESTED_TRL = "1.16."
if not str(trl.__version__).startswith(TESTED_TRL):
    log.warning(
        "InferenceAwareGRPOTrainer overrides private methods of GRPOTrainer and was tested with TRL 1.16; "
        "this is TRL %s",
        trl.__version__,
    )


def _unwrap(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return func


class InferenceAwareGRPOTrainer(GRPOTrainer):  # type: ignore[misc,unused-ignore]
    """`GRPOTrainer` whose advantages are `compute_advantages` of each prompt's num_generations rewards.

    Args:
        *args, **kwargs: Those of `trl.GRPOTrainer` (model, reward_funcs, args, train_dataset, ...).
        estimator: A name of `trainer_client.estimators.available_estimators()`, e.g. "passk_loo".
        k: Samples per objective evaluation (`pkpo`, `pkpo_loo1`; the paper estimators use k =
            num_generations and accept only that).
        p: Leave-p-out size for `leave_p_out`.
        beta: Softmax inverse temperature for `softmax_loo` and `passk_softmax_baseline` (not GRPO's KL
            coefficient, which stays `GRPOConfig.beta`).

    Raises:
        ValueError: An unknown estimator, arguments it refuses for num_generations,
            `multi_objective_aggregation="normalize_then_sum"`, or majority voting without exactly one of
            our server reward functions among `reward_funcs`.

    Example:
        trainer = InferenceAwareGRPOTrainer(model=model, reward_funcs=make_reward_func(url), args=config,
                                            train_dataset=dataset, estimator="maj_loo")
    """

    def __init__(
        self,
        *args: Any,
        estimator: str = "passk_loo",
        k: int | None = None,
        p: int | None = None,
        beta: float | None = None,
        **kwargs: Any,
    ) -> None:
        spec = get_estimator(estimator)  # an unknown name fails before the model is loaded
        super().__init__(*args, **kwargs)
        self.advantage_estimator = estimator
        self.estimator_k, self.estimator_p, self.estimator_beta = k, p, beta
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                "InferenceAwareGRPOTrainer takes the weighted sum of the rewards "
                "(multi_objective_aggregation='sum_then_normalize'), not "
                f"{self.multi_objective_aggregation!r}"
            )
        # Our server reward functions: the samples they could not grade are dropped.
        self._server_columns = [
            index
            for index, func in enumerate(self.reward_funcs)
            if isinstance(_unwrap(func), ServerRewardFunc)
        ]
        self._votes = "classes" in spec.requires
        if self._votes and len(self._server_columns) != 1:
            raise ValueError(
                f"estimator {estimator!r} votes with the answer classes of our reward server: reward_funcs "
                "must hold exactly one reward function of trainer_client.integrations.trl.make_reward_func, "
                f"found {len(self._server_columns)} among {self.reward_func_names}"
            )
        # Refuse k/p/beta that the estimator rejects for this group size now, not after the first generation.
        sizes = {self.num_generations}
        if self.eval_dataset is not None and self.num_generations_eval:
            sizes.add(self.num_generations_eval)
        for size in sizes:
            group_advantages(
                torch.zeros(size),
                size,
                estimator,
                k=k,
                p=p,
                beta=beta,
                classes=torch.zeros(size, dtype=torch.long),
            )
        self._ia_rewards_per_func: Tensor | None = None
        self._ia_classes: Tensor | None = None

    def _group_size(self) -> int:
        size: int = self.num_generations if self.model.training else self.num_generations_eval
        return size

    def _calculate_rewards(
        self,
        inputs: list[dict[str, Any]],
        prompts: list[Any],
        completions: list[Any],
        completion_ids_list: Any,
    ) -> Tensor:
        rewards_per_func: Tensor = super()._calculate_rewards(
            inputs, prompts, completions, completion_ids_list
        )
        self._ia_rewards_per_func = rewards_per_func  # [N_total, F], gathered across processes by TRL
        self._ia_classes = self._gather_classes(len(prompts)) if self._votes else None
        return rewards_per_func

    def _gather_classes(self, local_size: int) -> Tensor:
        """[N_total] answer classes of the whole batch, comparable within each group."""
        func: ServerRewardFunc = _unwrap(self.reward_funcs[self._server_columns[0]])
        grading = func.last
        if grading is None or len(grading.classes) != local_size:
            raise RuntimeError(
                f"reward function {func.__name__!r} did not grade this batch of {local_size} completions; "
                "is it wrapped in something that hides its calls?"
            )
        classes: list[int] = list(gather_object(grading.classes))
        size = self._group_size()
        split = straddling_groups(local_size, self.accelerator.num_processes, size)
        if split:
            # Each process graded its part of these groups in its own request, so their class ids are not
            # comparable: the main process grades each such group whole (at most one per process boundary).
            texts: list[str] = list(gather_object(grading.texts))
            references: list[Any] = list(gather_object(grading.references))
            payload: list[Any] = [None]
            if self.accelerator.is_main_process:
                groups = [(references[g * size], texts[g * size : (g + 1) * size]) for g in split]
                payload = [func.group_classes(groups)]
            broadcast_object_list(payload, from_process=0)
            regraded: list[list[int]] | None = payload[0]
            for index, group in enumerate(split):
                # A failed regrade (on_error="none"): every sample abstains, so the vote moves nothing.
                row = [-1] * size if regraded is None else regraded[index]
                classes[group * size : (group + 1) * size] = row
        return torch.tensor(classes, dtype=torch.long)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._ia_rewards_per_func = None
        output: dict[str, Any] = super()._generate_and_score_completions(inputs)
        rewards_per_func = self._ia_rewards_per_func
        if rewards_per_func is None:
            raise RuntimeError(
                "GRPOTrainer._generate_and_score_completions did not call _calculate_rewards; "
                "InferenceAwareGRPOTrainer supports TRL 1.16"
            )
        rewards = combine_rewards(rewards_per_func, self.reward_weights, self._server_columns)  # [N_total]
        advantages = group_advantages(
            rewards,
            self._group_size(),
            self.advantage_estimator,
            k=self.estimator_k,
            p=self.estimator_p,
            beta=self.estimator_beta,
            classes=self._ia_classes,
        )  # float64 [N_total]
        # This process's slice, as TRL takes it: process r holds samples [r * local, (r + 1) * local).
        local: Tensor = output["advantages"]
        start = self.accelerator.process_index * len(local)
        output["advantages"] = advantages[start : start + len(local)].to(local.dtype).to(local.device)

        # The completions table shows the advantages used: TRL appended its own for the whole batch last.
        logged = self._logs["advantages"]
        for _ in range(min(len(advantages), len(logged))):
            logged.pop()
        logged.extend(advantages.tolist())
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["inference_aware/dropped_frac"].append(
            torch.isnan(rewards).double().mean().item()
        )
        return output
