"""TRL adapter: our reward server as a `GRPOTrainer` reward function, and our k-sample advantages in GRPO.

Usage (TRL 1.16; `pip install 'trl>=1.16,<1.17'`):

    config = GRPOConfig(output_dir="out", num_generations=8, per_device_train_batch_size=8)
    reward = make_reward_func("http://127.0.0.1:8000", backend="math", reference_column="answer")
    trainer = InferenceAwareGRPOTrainer(
        model="Qwen/Qwen2.5-0.5B-Instruct",
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,  # columns "prompt" and "answer"
        estimator="passk_loo",  # or "maj_loo", "pkpo_loo1" with k=4, "softmax_loo" with beta=1.0, ...
    )
    trainer.train()

with `from trl import GRPOConfig` and
`from trainer_client.integrations.trl import InferenceAwareGRPOTrainer, make_reward_func`.

**The reward function** (`make_reward_func`) alone is a drop-in for the plain `GRPOTrainer`, which then
keeps GRPO's advantages: `GRPOTrainer(..., reward_funcs=make_reward_func(url))`. Each call grades the
process's whole batch in one `POST /v1/grade` (split only past 64 groups): consecutive completions of one
prompt and reference (TRL lays out a prompt's `num_generations` completions consecutively) form one group.
A completion the server failed to grade (status `error`) gets `None`, which TRL turns into NaN and leaves
out of its group statistics; it is never scored as a wrong answer. Conversational completions are graded
on the content of their last assistant message. The function's `__name__` (`"math_reward"` by default)
names it in TRL's logs (`rewards/math_reward/mean`); it also logs each completion's status and answer in
the completions table and the fraction of `error` verdicts as `math_reward/error_frac`, and keeps the
verdicts of its last call (`.last`, a `Grading`) for the trainer.

**The trainer** (`InferenceAwareGRPOTrainer`) replaces GRPO's normalized advantages by
`compute_advantages(rewards [B, num_generations], estimator, k=, p=, beta=, classes=)`:

- The reward is TRL's weighted sum of the reward functions (`reward_weights`; a function's `None` counts as
  0 there, and a sample where every function returned `None` is dropped), except that a sample which one
  of our server reward functions could not grade is dropped: an infrastructure failure is never a reward.
  A dropped sample gets advantage 0 and is left out of its group (`compute_advantages` takes NaN).
- `maj_loo`/`maj_biased` vote with the answer classes the server gave our reward function, which must be
  among `reward_funcs` (exactly once).
- `scale_rewards` is ignored (the estimator defines the scale); `multi_objective_aggregation` must stay
  `"sum_then_normalize"`. The loss (`loss_type`), KL (`beta` of GRPOConfig) and clipping are TRL's.
- With several processes, a prompt's completions may straddle them: the rewards are gathered across
  processes (TRL already does), the advantages computed on the whole batch and each process keeps its
  slice, as TRL does with its own. Answer classes are per request, so a group that straddles processes
  is regraded once as a whole (on the main process, then broadcast) before voting.

The override point is `GRPOTrainer._generate_and_score_completions` (TRL 1.16 has no advantage hook; see
`trainer_client/integrations/_trl_trainer.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx
import torch
from torch import Tensor

from reward_server.schemas import GradeGroup, GradeResponse, RewardSpec, Status
from trainer_client.client import RewardClient
from trainer_client.errors import RewardClientError, RewardRequestError
from trainer_client.estimators import compute_advantages
from trainer_client.integrations._arguments import gold_number, per_sample, same_length, text

if TYPE_CHECKING:
    from trainer_client.integrations._trl_trainer import InferenceAwareGRPOTrainer

__all__ = [
    "Grading",
    "InferenceAwareGRPOTrainer",
    "ServerRewardFunc",
    "combine_rewards",
    "completion_text",
    "group_advantages",
    "make_reward_func",
    "straddling_groups",
]

log = logging.getLogger(__name__)

OnError = Literal["none", "raise"]
# Keyword arguments of TRL's reward-function call that are not dataset columns.
_TRL_KWARGS = ("trainer_state", "log_extra", "log_metric", "environments")


def __getattr__(name: str) -> Any:
    # The trainer subclasses trl.GRPOTrainer, so it is built on first use: importing this module (and using
    # the reward function) needs no TRL.
    if name == "InferenceAwareGRPOTrainer":
        try:
            from trainer_client.integrations._trl_trainer import InferenceAwareGRPOTrainer
        except ModuleNotFoundError as exc:
            raise ImportError(
                f"InferenceAwareGRPOTrainer needs TRL 1.16: pip install 'trl>=1.16,<1.17' ({exc})"
            ) from exc
        return InferenceAwareGRPOTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------------------
# The reward function


def completion_text(completion: str | Sequence[Mapping[str, Any]], where: str = "a completion") -> str:
    """The text to grade: a plain completion as is, a conversational one's last assistant message.

    Args:
        completion: A string, or a list of messages (`{"role": ..., "content": ...}`) whose content is a
            string or a list of content blocks (`{"type": "text", "text": ...}`; other blocks are skipped).
        where: What errors call the completion (e.g. `completions[3]`).

    Returns:
        The text; "" when a conversation has no assistant message (graded as no answer).

    Raises:
        TypeError: `completion` is neither (None, a number, a message that is not a mapping, a content that
            is neither a string nor a list).

    Example:
        >>> completion_text([{"role": "assistant", "content": "$\\\\boxed{2}$"}])
        '$\\\\boxed{2}$'
    """
    if isinstance(completion, str):
        return completion
    messages = [m for m in completion if isinstance(m, Mapping)] if isinstance(completion, Sequence) else []
    if not isinstance(completion, Sequence) or len(messages) != len(completion):
        raise TypeError(f"{where} must be a string or a list of messages, not {completion!r:.200}")
    for message in reversed(messages):
        if message.get("role") == "assistant":
            content = message.get("content")
            if content is None:
                return ""
            if isinstance(content, str):
                return content
            if not isinstance(content, Sequence):
                raise TypeError(
                    f"{where}: an assistant message's content must be a string or a list of content blocks, "
                    f"not {type(content).__name__}"
                )
            return "".join(
                str(block.get("text", ""))
                for block in content
                if isinstance(block, Mapping) and block.get("type") == "text"
            )
    return ""


def _reference(value: Any, column: str, where: str) -> dict[str, Any]:
    """The wire reference of a dataset value: a mapping as is, a string or number x as {"answer": x}."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        return {"answer": value}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"answer": gold_number(f"{where}: the reference column {column!r}", value)}
    raise ValueError(
        f"{where}: the reference column {column!r} holds {type(value).__name__} {value!r}; expected a "
        "string or number (sent as {'answer': ...}) or a mapping (sent as the backend's reference)"
    )


@dataclass(frozen=True)
class Grading:
    """The verdicts of one reward-function call, one entry per completion in call order.

    Attributes:
        texts: The graded texts.
        references: The dataset's reference values (the `reference_column` of each row).
        rewards: The reward, None where the server failed to grade (or the request failed, on_error="none").
        statuses: The server's status, None where the request failed.
        answers: The extracted answer in canonical form, if any.
        classes: The answer class within the completion's request group (equal ids: equivalent answers),
            -1 without an answer. Ids of different groups are unrelated.
    """

    texts: list[str]
    references: list[Any]
    rewards: list[float | None]
    statuses: list[Status | None]
    answers: list[str | None]
    classes: list[int]


class ServerRewardFunc:
    """A TRL reward function that grades completions on our reward server; see `make_reward_func`.

    Attributes:
        __name__: The name TRL logs it under.
        last: The `Grading` of the last call (None before the first); `InferenceAwareGRPOTrainer` reads
            the answer classes there for majority voting.
    """

    def __init__(
        self,
        url: str,
        backend: str = "math",
        reference_column: str = "answer",
        *,
        api_key: str | None = None,
        on_error: OnError = "none",
        reward: RewardSpec | None = None,
        name: str | None = None,
        timeout_s: float = 300.0,
        max_retries: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if on_error not in ("none", "raise"):
            raise ValueError(f"on_error must be 'none' or 'raise', not {on_error!r}")
        self.__name__ = name or f"{backend}_reward"
        self.url = url
        self.backend = backend
        self.reference_column = reference_column
        self.on_error: OnError = on_error
        self.reward = reward
        self.last: Grading | None = None
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._transport = transport
        self._client: RewardClient | None = None
        # Fail now on a malformed URL or key rather than at the first training step.
        self.client  # noqa: B018

    @property
    def client(self) -> RewardClient:
        """The HTTP client, created on first use (one connection pool per process)."""
        if self._client is None:
            self._client = RewardClient(
                self.url,
                api_key=self._api_key,
                timeout_s=self._timeout_s,
                max_retries=self._max_retries,
                transport=self._transport,
            )
        return self._client

    def close(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (TRL's reward forms must be): the connection pool is not sent, it is reopened there.
        return {**self.__dict__, "_client": None}

    def __repr__(self) -> str:
        return f"ServerRewardFunc({self.url!r}, backend={self.backend!r}, name={self.__name__!r})"

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[str | Sequence[Mapping[str, Any]]],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """Grade one batch in one request, as `GRPOTrainer._calculate_rewards` calls it.

        Args:
            prompts: The prompt of each completion (strings or message lists).
            completions: The completions (strings or message lists).
            completion_ids: Unused.
            **kwargs: The dataset's other columns, one value per completion, among them
                `reference_column`; and TRL's `log_extra`, `log_metric`, `trainer_state`.

        Returns:
            One reward per completion; None where the server could not grade it.

        Raises:
            KeyError: The batch has no `reference_column`.
            TypeError, ValueError: An argument that is not one entry per sample (None, a string), lengths
                that differ, a completion or reference of the wrong type; each names the argument.
            RewardRequestError: The server refused the request (4xx: a bad reference, a wrong key); never
                turned into None, since no retry can fix it.
            RewardClientError: The server was unavailable and on_error is "raise".
        """
        if self.reference_column not in kwargs:
            columns = sorted(key for key in kwargs if key not in _TRL_KWARGS)
            raise KeyError(
                f"reward function {self.__name__!r} grades against the dataset column "
                f"{self.reference_column!r}, which this batch lacks; its columns: {columns}"
            )
        prompts = per_sample("prompts", prompts)
        completions = per_sample("completions", completions)
        references = per_sample(
            f"the reference column {self.reference_column!r}", kwargs[self.reference_column]
        )
        same_length(prompts=prompts, completions=completions, references=references)
        texts = [completion_text(completion, f"completions[{i}]") for i, completion in enumerate(completions)]
        wire = [
            _reference(value, self.reference_column, f"row {row}") for row, value in enumerate(references)
        ]
        groups = [(wire[start], texts[start:stop]) for start, stop in _runs(prompts, references)]
        response = self._grade(groups) if groups else None  # an empty batch needs no request
        grading = _grading(texts, references, response)
        self.last = grading
        self._log(grading, kwargs.get("log_extra"), kwargs.get("log_metric"))
        return grading.rewards

    def group_classes(self, groups: Sequence[tuple[Any, Sequence[str]]]) -> list[list[int]] | None:
        """Grade whole groups in one request and return their answer classes (-1: no answer).

        The trainer calls this for the groups that straddle processes, whose classes from the per-process
        calls are not comparable. Returns None if the request failed and on_error is "none".
        """
        wire = []
        for index, (value, texts) in enumerate(per_sample("groups", groups, "group")):
            where = f"groups[{index}]"
            completions = per_sample(f"{where} completions", texts, "completion")
            wire.append(
                (
                    _reference(value, self.reference_column, f"group {index}"),
                    [text(f"{where} completion {i}", item) for i, item in enumerate(completions)],
                )
            )
        response = self._grade(wire)
        if response is None:
            return None
        return [
            [-1 if result.answer_class is None else result.answer_class for result in group.results]
            for group in response.groups
        ]

    def _grade(self, groups: Sequence[tuple[dict[str, Any], Sequence[str]]]) -> GradeResponse | None:
        """One request of `(wire reference, texts)` groups; None if it failed and on_error is "none"."""
        request = [
            GradeGroup(
                group_id=f"g{index}", backend=self.backend, reference=reference, completions=list(texts)
            )
            for index, (reference, texts) in enumerate(groups)
        ]
        try:
            return self.client.grade(request, reward=self.reward)
        except RewardRequestError:
            raise
        except RewardClientError as exc:
            if self.on_error == "raise":
                raise
            count = sum(len(texts) for _, texts in groups)
            log.warning("%s: grading failed, %d completions get no reward: %s", self.__name__, count, exc)
            return None

    def _log(self, grading: Grading, log_extra: Any, log_metric: Any) -> None:
        if callable(log_extra):
            log_extra(f"{self.__name__}_status", [None if s is None else s.value for s in grading.statuses])
            log_extra(f"{self.__name__}_answer", grading.answers)
        if callable(log_metric) and grading.rewards:
            failed = sum(reward is None for reward in grading.rewards)
            log_metric(f"{self.__name__}/error_frac", failed / len(grading.rewards))


def _runs(prompts: Sequence[Any], references: Sequence[Any]) -> list[tuple[int, int]]:
    """[start, stop) of each run of consecutive completions with the same prompt and reference."""
    runs: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(prompts) + 1):
        if (
            index == len(prompts)
            or prompts[index] != prompts[start]
            or references[index] != references[start]
        ):
            runs.append((start, index))
            start = index
    return runs if prompts else []


def _grading(texts: list[str], references: list[Any], response: GradeResponse | None) -> Grading:
    n = len(texts)
    if response is None:
        return Grading(texts, references, [None] * n, [None] * n, [None] * n, [-1] * n)
    results = [result for group in response.groups for result in group.results]
    return Grading(
        texts=texts,
        references=references,
        # The client checked that reward is None exactly for `error`.
        rewards=[result.reward for result in results],
        statuses=[result.status for result in results],
        answers=[result.answer for result in results],
        classes=[-1 if result.answer_class is None else result.answer_class for result in results],
    )


def make_reward_func(
    url: str,
    backend: str = "math",
    reference_column: str = "answer",
    *,
    api_key: str | None = None,
    on_error: OnError = "none",
    reward: RewardSpec | None = None,
    name: str | None = None,
    timeout_s: float = 300.0,
    max_retries: int = 5,
    transport: httpx.BaseTransport | None = None,
) -> ServerRewardFunc:
    """A reward function for TRL's `GRPOTrainer` that grades on our reward server.

    Args:
        url: The reward server, e.g. `http://127.0.0.1:8000`.
        backend: The grading backend (`math`, `code`, ...).
        reference_column: The dataset column holding each row's reference. A mapping is sent as the
            group's reference; a string or number x as `{"answer": x}` (the math backend's reference).
        api_key: The server's bearer key; None: `$REWARD_SERVER_API_KEY`, if set.
        on_error: What a failed request (server unreachable, 5xx or 429 after the client's retries) gives:
            "none" gives every completion of the call None (TRL drops them; logged as a warning), "raise"
            raises `RewardServerUnavailable`. A refused request (4xx) always raises.
        reward: Reward values per status; the server's defaults when None.
        name: The name TRL logs the function under; `f"{backend}_reward"` by default.
        timeout_s: How long to wait for the server's answer (per attempt).
        max_retries: Retries of a request on connection errors, timeouts, 5xx and 429 (with back-off).
        transport: An httpx transport (tests).

    Returns:
        A `ServerRewardFunc`, called by TRL as `(prompts, completions, completion_ids, **columns)` and
        returning one reward (or None) per completion.

    Example:
        >>> reward = make_reward_func("http://127.0.0.1:8000")
        >>> reward(prompts=["1+1="] * 2, completions=["$\\\\boxed{2}$", "3"], answer=["2"] * 2)
        [1.0, -1.0]
        >>> reward.last.classes
        [0, 1]
    """
    return ServerRewardFunc(
        url,
        backend,
        reference_column,
        api_key=api_key,
        on_error=on_error,
        reward=reward,
        name=name,
        timeout_s=timeout_s,
        max_retries=max_retries,
        transport=transport,
    )


# --------------------------------------------------------------------------------------------------------
# What the trainer computes (pure tensors, no TRL)


def combine_rewards(rewards_per_func: Tensor, weights: Tensor, server_columns: Sequence[int] = ()) -> Tensor:
    """The reward of each sample: TRL's weighted sum over reward functions, NaN for dropped samples.

    As in `GRPOTrainer` (`multi_objective_aggregation="sum_then_normalize"`), a function's NaN (None)
    counts as 0 in the sum and a row of NaN is dropped. Also dropped: a row where one of our server reward
    functions (`server_columns`) is NaN, since that means the server failed to grade it.

    Args:
        rewards_per_func: [N, F] rewards, NaN where a function returned None.
        weights: [F] reward weights.
        server_columns: The columns of our server reward functions.

    Returns:
        float64 [N]; NaN = dropped sample.

    Example:
        >>> combine_rewards(torch.tensor([[1.0, 0.5], [float("nan"), 0.5]]), torch.tensor([1.0, 2.0]), [0])
        tensor([2., nan], dtype=torch.float64)
    """
    values = rewards_per_func.detach().to(torch.float64)
    missing = torch.isnan(values)  # [N, F]
    combined = (values * weights.to(values)).nansum(dim=1)  # [N]
    dropped = missing.all(dim=1)
    if len(server_columns):
        dropped |= missing[:, list(server_columns)].any(dim=1)
    return combined.masked_fill(dropped, torch.nan)


def group_advantages(
    rewards: Tensor,
    group_size: int,
    estimator: str,
    *,
    k: int | None = None,
    p: int | None = None,
    beta: float | None = None,
    classes: Tensor | None = None,
) -> Tensor:
    """`compute_advantages` over consecutive groups of `group_size` samples: [N] -> float64 [N].

    Args:
        rewards: [N] rewards of the whole (gathered) batch, NaN = dropped; N a multiple of group_size.
        group_size: num_generations.
        estimator, k, p, beta: As for `compute_advantages`.
        classes: [N] answer classes (-1: no answer), for majority voting.

    Raises:
        ValueError: N is not a multiple of group_size, or the estimator refuses its arguments.
    """
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped_classes = None if classes is None else classes.reshape(-1, group_size)
    advantages = compute_advantages(
        rewards.reshape(-1, group_size), estimator, k=k, p=p, beta=beta, classes=grouped_classes
    )
    return advantages.reshape(-1)


def straddling_groups(local_size: int, num_processes: int, group_size: int) -> list[int]:
    """The groups of a gathered batch whose samples lie on more than one process.

    Process r holds samples [r * local_size, (r + 1) * local_size); group g is samples
    [g * group_size, (g + 1) * group_size).

    Example:
        >>> straddling_groups(local_size=6, num_processes=2, group_size=4)  # group 1 is samples 4..7
        [1]
    """
    total = local_size * num_processes
    return [
        group
        for group in range(total // group_size)
        if group * group_size // local_size != ((group + 1) * group_size - 1) // local_size
    ]
