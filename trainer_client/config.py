"""Configuration of `trainer-client train` and `trainer-client eval`: one pydantic model, read from YAML.

Every field is documented here (`Field(description=...)`; docs/trainer-config.md lists them); override any of
them on the command line with `--set a.b=value`, e.g.
`trainer-client train --config examples/train_toy.yaml --set steps=50 --set estimator.name=passk_biased`.

The estimator's parameters are checked against the estimator and the group size `sampling.k` when the config
is loaded, with the rules `compute_advantages` applies during training (`check_estimator_params`), so a bad
combination fails before a model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from trainer_client.estimators.base import available_estimators, check_estimator_params

# The estimator name that trains on the raw rewards (no estimator, no parameters).
RAW_REWARD = "reward"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Section):
    name_or_path: str = Field(
        "tiny", description="A local Hugging Face model directory, or `tiny` for a random-weight test model."
    )
    device: str = Field("auto", description="`auto` (cuda if available, else cpu), `cpu` or `cuda[:i]`.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="dtype of the weights, the tiny model's too (log-probs are float32 anyway)."
    )
    seed: int = Field(0, description="Seed of the tiny model's weights.")


class DataConfig(_Section):
    path: Path = Field(
        ..., description="JSONL of prompts: `prompt` + `reference`, or MATH-style `problem` + `answer`."
    )
    prompt_template: str = Field(
        "{problem}", description="Turns a row into the prompt; `{problem}` is its text."
    )
    backend: str = Field("math", description="Reward backend, when a row does not name one.")
    grade_with_prompt: bool = Field(
        False,
        description="Grade prompt + completion instead of the completion alone (for toy tasks whose "
        "prompt ends inside the answer, e.g. with 'The final answer is ').",
    )


class SamplingConfig(_Section):
    sampler: Literal["hf", "vllm"] = Field("hf", description="Hugging Face generate, or vLLM.")
    k: int = Field(4, ge=1, description="Completions per prompt (the group size n).")
    prompts_per_step: int = Field(8, ge=1, description="B: prompts per training step.")
    max_new_tokens: int = Field(256, ge=1, description="The most tokens per completion.")
    temperature: float = Field(
        1.0, gt=0, description="Sampling temperature; the trainer divides its logits by the same value."
    )
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass in (0, 1]; 1 disables it.")
    vllm_gpu_memory_utilization: float = Field(
        0.5, gt=0, le=1, description="Share of the GPU's memory vLLM may take (`sampler: vllm` only)."
    )


class EstimatorConfig(_Section):
    name: str = Field(
        "passk_loo", description="An estimator of trainer_client.estimators, or `reward` (raw r)."
    )
    k: int | None = Field(
        None,
        description="Objective k: required by pkpo/pkpo_loo1 (1 <= k <= sampling.k). The other estimators "
        "use the whole group: k unset or equal to sampling.k (mean_loo ignores any 1 <= k <= sampling.k).",
    )
    p: int | None = Field(
        None, description="Left-out subset size, required by leave_p_out (1 <= p <= sampling.k - 1)."
    )
    beta: float | None = Field(
        None,
        description="Inverse temperature (finite, >= 0), required by softmax_loo and passk_softmax_baseline.",
    )

    def check(self, n: int) -> None:
        """Check the parameters against the estimator and the group size n (`sampling.k`).

        Raises:
            ValueError: naming the fields: an unknown estimator, a parameter it requires left unset, one out
                of range for n (the rules of `compute_advantages`), or `p`/`beta` set for an estimator that
                does not use them (`k`, too, for `reward`).
        """
        given = {"k": self.k, "p": self.p, "beta": self.beta}
        if self.name == RAW_REWARD:
            unused = [field for field, value in given.items() if value is not None]
        else:
            valid = available_estimators()
            if self.name not in valid:
                names = ", ".join([*valid, RAW_REWARD])
                raise ValueError(f"estimator.name={self.name!r} is not an estimator; valid names: {names}")
            try:
                estimator = check_estimator_params(self.name, n, k=self.k, p=self.p, beta=self.beta)
            except ValueError as exc:
                fields = [f"estimator.name={self.name!r}"]
                fields += [
                    f"estimator.{field}={value!r}" for field, value in given.items() if value is not None
                ]
                fields.append(f"sampling.k={n} (the group size n)")
                raise ValueError(f"{', '.join(fields)}: {exc}") from None
            # compute_advantages ignores them; in a config they are a mistake (another estimator meant).
            unused = [
                field
                for field in ("p", "beta")
                if given[field] is not None and field not in estimator.requires
            ]
        if unused:
            names = " and ".join(f"estimator.{field}" for field in unused)
            pronoun = "it" if len(unused) == 1 else "them"
            raise ValueError(f"{names} set, but estimator.name={self.name!r} does not use {pronoun}")


class LossConfig(_Section):
    kind: Literal["pg", "ppo"] = Field(
        "pg", description="REINFORCE-style policy gradient, or PPO with a value head."
    )
    clip_eps: float = Field(0.2, gt=0, description="PPO ratio clip ε.")
    value_clip: float = Field(0.2, gt=0, description="PPO value clip α.")
    value_coef: float = Field(0.5, ge=0, description="Weight of the value loss in the PPO loss (`ppo` only).")
    ppo_epochs: int = Field(
        2, ge=1, description="Optimizer passes over each step's rollout (`ppo` only; `pg` makes one)."
    )
    kl_coef: float = Field(
        0.0,
        ge=0,
        description="Weight of the KL(π||π_ref) penalty, the k2 loss ½(log π(y) - log π_ref(y))² whose "
        "gradient is that of KL(π||π_ref) on on-policy samples (the k3 KL estimate is logged regardless).",
    )
    importance_correction: bool = Field(
        True,
        description="Reweight samples of a stale policy (overlap mode) by π_old/π_behavior, one weight per "
        "sample: exact for the mean objective, a first-order correction for k-sample ones (pass@k, maj@k), "
        "whose exact weight is the product of the group's k weights. Min/mean/max are logged per step.",
    )
    max_importance_weight: float = Field(
        2.0, gt=0, description="Upper clamp of the importance weight π_old/π_behavior of a sample."
    )


class OptimConfig(_Section):
    lr: float = Field(1e-6, gt=0, description="AdamW learning rate of the policy.")
    value_lr: float = Field(
        1e-3,
        gt=0,
        description="AdamW learning rate of the PPO value head (`ppo` only), a linear head on the policy's "
        "detached last-prompt-token features (the value loss never moves the policy). Adam moves V(x) by up "
        "to about value_lr × Σ|features| per step: 1e-3 learns a constant return in about 20 steps on the "
        "tiny model (hidden size 64); scale it down for wide models (e.g. 1e-5 at hidden size 4096).",
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(
        0,
        ge=0,
        description="Steps of linear learning-rate warmup (step t uses lr·min(1, (t+1)/warmup_steps)); "
        "0: none.",
    )
    grad_clip: float = Field(1.0, gt=0, description="Largest global gradient norm (clip_grad_norm_).")
    micro_batch: int = Field(
        16, ge=1, description="Sequences per forward/backward pass (gradient accumulation)."
    )


class RewardConfig(_Section):
    url: str = Field("http://127.0.0.1:8000", description="Base URL of the reward server.")
    api_key: SecretStr | None = Field(
        None,
        description="The server's bearer key; unset: the environment variable REWARD_SERVER_API_KEY (better "
        "than a key in a YAML file). Never logged nor written to the run's config.json.",
    )
    correct: float = Field(1.0, description="Reward of a correct completion.")
    incorrect: float = Field(
        -1.0, description="Reward of an incorrect completion (and of one with no extractable answer)."
    )
    timeout_s: float = Field(300.0, gt=0, description="Seconds to wait for the server's answer to a request.")
    max_in_flight: int = Field(16, ge=1, description="The most grading requests in flight at once.")


def api_key(config: RewardConfig) -> str | None:
    """The configured key, or None (the client then reads REWARD_SERVER_API_KEY)."""
    return config.api_key.get_secret_value() if config.api_key is not None else None


class TrainConfig(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig, description="The policy's model.")
    data: DataConfig = Field(..., description="The training prompts.")
    sampling: SamplingConfig = Field(
        default_factory=SamplingConfig, description="Generation of the completions (the rollout)."
    )
    estimator: EstimatorConfig = Field(
        default_factory=EstimatorConfig,
        description="The advantage estimator and its parameters, checked against `sampling.k` at load time.",
    )
    loss: LossConfig = Field(default_factory=LossConfig, description="The policy loss.")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimizer and its schedule.")
    reward: RewardConfig = Field(
        default_factory=RewardConfig, description="The reward server and the reward of each verdict."
    )
    steps: int = Field(100, ge=1, description="Training steps (one rollout and one update each).")
    seed: int = Field(0, description="Seed of Python's and torch's RNGs, and of each step's sampling.")
    overlap: bool = Field(True, description="Grade step t while generating step t+1 (one step off-policy).")
    out_dir: Path = Field(Path("runs/latest"), description="Logs (JSONL, TensorBoard) and checkpoints.")
    checkpoint_every: int = Field(50, ge=0, description="Steps between checkpoints; 0 for only the last.")
    tensorboard: bool = Field(
        True,
        description="Also write TensorBoard events to out_dir/tensorboard (metrics.jsonl is always written).",
    )

    @field_validator("estimator")
    @classmethod
    def _estimator_fits_the_group(cls, estimator: EstimatorConfig, info: ValidationInfo) -> EstimatorConfig:
        sampling: SamplingConfig | None = info.data.get("sampling")
        if sampling is not None:  # else sampling is invalid itself, and reported as such
            estimator.check(n=sampling.k)
        return estimator

    def training_warnings(self) -> list[str]:
        """What is valid but biased when training with this config (`Trainer` warns of each).

        Sampling with top_p < 1 draws from a truncated distribution, whose log-probs are the behaviour
        log-probs, while π_old is scored untruncated: the importance weights are then below 1 even on-policy,
        and the policy gradient is that of another policy. (Evaluating with top_p < 1 is fine.)
        """
        messages = []
        if self.sampling.top_p < 1:
            messages.append(
                f"training with sampling.top_p={self.sampling.top_p} < 1: samples come from a truncated "
                "distribution the policy gradient does not model (the paper trains at top_p = 1), and the "
                "importance weights π_old/π_behavior fall below 1 even on-policy"
            )
        return messages


class TrainingConfigWarning(UserWarning):
    """A config that trains, but not as the estimators and the importance weights assume."""


def load_config(path: Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config and apply `a.b=value` overrides (values parsed as YAML scalars)."""
    data: dict[str, Any] = yaml.safe_load(path.read_text()) if path else {}
    return TrainConfig.model_validate(apply_overrides(data, overrides or []))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each `a.b=value` of `overrides` in the nested dict `data` (in place; returned too)."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep:
            raise ValueError(f"override {override!r} is not of the form key=value")
        node = data
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        value = yaml.safe_load(raw)
        # "a: b" parses as a mapping; an override sets one field, so such a value is meant as text.
        node[leaf] = raw if isinstance(value, dict) else value
    return data
