"""Configuration of `trainer-client train` and `trainer-client eval`: one pydantic model, read from YAML.

Every field is documented here; override any of them on the command line with `--set a.b=value`, e.g.
`trainer-client train --config examples/train_toy.yaml --set steps=50 --set estimator.name=passk_biased`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr


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
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    vllm_gpu_memory_utilization: float = Field(0.5, gt=0, le=1)


class EstimatorConfig(_Section):
    name: str = Field(
        "passk_loo", description="An estimator of trainer_client.estimators, or `reward` (raw r)."
    )
    k: int | None = Field(None, description="Objective k for pkpo/pkpo_loo1 (n >= k).")
    p: int | None = Field(None, description="Left-out subset size for leave_p_out.")
    beta: float | None = Field(None, description="Inverse temperature for the softmax estimators.")


class LossConfig(_Section):
    kind: Literal["pg", "ppo"] = Field(
        "pg", description="REINFORCE-style policy gradient, or PPO with a value head."
    )
    clip_eps: float = Field(0.2, gt=0, description="PPO ratio clip ε.")
    value_clip: float = Field(0.2, gt=0, description="PPO value clip α.")
    value_coef: float = Field(0.5, ge=0)
    ppo_epochs: int = Field(2, ge=1)
    kl_coef: float = Field(
        0.0, ge=0, description="Weight of the KL(π||π_ref) penalty (KL is logged regardless)."
    )
    importance_correction: bool = Field(
        True, description="Reweight samples of a stale policy (overlap mode)."
    )
    max_importance_weight: float = Field(2.0, gt=0)


class OptimConfig(_Section):
    lr: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
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
    correct: float = 1.0
    incorrect: float = -1.0
    timeout_s: float = Field(300.0, gt=0)
    max_in_flight: int = Field(16, ge=1)


def api_key(config: RewardConfig) -> str | None:
    """The configured key, or None (the client then reads REWARD_SERVER_API_KEY)."""
    return config.api_key.get_secret_value() if config.api_key is not None else None


class TrainConfig(_Section):
    model: ModelConfig = ModelConfig()
    data: DataConfig
    sampling: SamplingConfig = SamplingConfig()
    estimator: EstimatorConfig = EstimatorConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    reward: RewardConfig = RewardConfig()
    steps: int = Field(100, ge=1)
    seed: int = 0
    overlap: bool = Field(True, description="Grade step t while generating step t+1 (one step off-policy).")
    out_dir: Path = Field(Path("runs/latest"), description="Logs (JSONL, TensorBoard) and checkpoints.")
    checkpoint_every: int = Field(50, ge=0, description="Steps between checkpoints; 0 for only the last.")
    tensorboard: bool = True


def load_config(path: Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config and apply `a.b=value` overrides (values parsed as YAML scalars)."""
    data: dict[str, Any] = yaml.safe_load(path.read_text()) if path else {}
    for override in overrides or []:
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
    return TrainConfig.model_validate(data)
