"""The paper's central result at toy scale (Tables 1-2, Figures 5 and 14): training for pass@k gives up some
pass@1 and gains pass@k at large k; the mean policy gradient does the reverse.

    trainer-client reproduce tradeoff --out runs/tradeoff --quick      # 1 seed, a few minutes on 2 cores
    trainer-client reproduce tradeoff --out runs/tradeoff              # 3 seeds

Steps, all with the project's own parts:
1. the offset task (`trainer_client.tasks.offset`): train, held-out eval and SFT JSONL;
2. a warm start (`trainer_client.sft`) of the tiny model on a sharper-than-the-task answer distribution;
3. RL from that warm start with each estimator and seed, same budget (`trainer_client.train.Trainer`),
   against the given reward server or a local one (`trainer_client.local_server`), with the exact held-out
   pass@k and KL to the warm start every `eval_every` steps;
4. the final policies evaluated on the held-out prompts: exact pass@k for k = 1..100
   (`trainer_client.reproduce.exact`), and sampled pass@k and maj@k from n samples per prompt graded by the
   server (`trainer_client.evaluate`);
5. `tradeoff.json`, `tradeoff.md` and `tradeoff.png` (`trainer_client.reproduce.report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trainer_client.config import (
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RewardConfig,
    SamplingConfig,
    TrainConfig,
)
from trainer_client.estimators import pass_at_k
from trainer_client.evaluate import DEFAULT_KS, evaluate
from trainer_client.local_server import local_reward_server
from trainer_client.policy import load_model
from trainer_client.reproduce.exact import answer_token_ids, exact_kl, exact_pass_at_k, next_token_probs
from trainer_client.sft import SFTConfig, sft
from trainer_client.tasks.offset import OffsetTask, TaskFiles, prompt_text
from trainer_client.train import StepHook, Trainer

__all__ = ["CURVE_KS", "MAX_K", "TradeoffConfig", "quick_config", "run_tradeoff"]

log = logging.getLogger(__name__)

MAX_K = 100  # pass@k is reported for k = 1..MAX_K
CURVE_KS = DEFAULT_KS  # the k of the held-out curves during training and of maj@k


class TradeoffConfig(BaseModel):
    """Everything `reproduce tradeoff` does; `--set a.b=value` overrides any field."""

    model_config = ConfigDict(extra="forbid")

    task: OffsetTask = Field(default_factory=OffsetTask, description="The offset task and its distributions.")
    estimators: list[str] = Field(
        ["mean_loo", "passk_loo", "passk_biased"], description="Estimators trained, each from the warm start."
    )
    seeds: int = Field(3, ge=1, description="RL seeds per estimator (the warm start is shared).")
    model_seed: int = Field(0, description="Seed of the tiny model's initial weights.")
    device: str = Field("auto", description="`auto`, `cpu` or `cuda[:i]`.")
    sft_steps: int = Field(300, ge=1, description="Full-batch SFT steps of the warm start.")
    sft_lr: float = Field(1e-2, gt=0, description="SFT learning rate.")
    steps: int = Field(200, ge=1, description="RL steps per run.")
    k: int = Field(8, ge=2, description="Samples per prompt in training (the group size).")
    prompts_per_step: int = Field(16, ge=1, description="Prompts per RL step.")
    lr: float = Field(1e-3, gt=0, description="RL learning rate (AdamW, policy gradient, no KL penalty).")
    eval_every: int = Field(20, ge=1, description="Steps between exact held-out evaluations during training.")
    eval_samples: int = Field(
        200, ge=1, description="n: samples per held-out prompt for the sampled pass@k and maj@k (n >= 100)."
    )
    sampled_prompts: int | None = Field(
        50, ge=1, description="Held-out prompts of the sampled evaluation (the first ones); None: all."
    )
    reward_url: str | None = Field(None, description="A running reward server; None starts a local one.")
    math_workers: int = Field(1, ge=1, description="Math worker processes of the local reward server.")
    torch_threads: int = Field(
        1, ge=1, description="torch CPU threads; one is fastest for the tiny model on a shared machine."
    )
    out_dir: Path = Field(Path("runs/tradeoff"), description="Where every run and the report go.")


def quick_config(**fields: Any) -> TradeoffConfig:
    """`--quick`: one seed, a shorter warm start and run, n = 100; still shows the trade-off."""
    preset: dict[str, Any] = {
        "seeds": 1,
        "sft_steps": 150,
        "steps": 100,
        "eval_every": 10,
        "eval_samples": 100,
    }
    return TradeoffConfig.model_validate(preset | fields)


# -- evaluation -----------------------------------------------------------------------------------


class HeldOut:
    """Exact metrics of a policy on the held-out prompts, and its KL to the warm start."""

    def __init__(
        self, task: OffsetTask, warm_start: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
    ) -> None:
        self.tokenizer = tokenizer
        self.prompts = [prompt_text(item, base) for item, base in task.prompts("eval")]
        self.answers = answer_token_ids(
            tokenizer, [task.answer_probs(base) for _, base in task.prompts("eval")]
        )
        self.reference = next_token_probs(warm_start, tokenizer, self.prompts)

    def exact(self, model: PreTrainedModel | torch.nn.Module, ks: list[int]) -> dict[str, Any]:
        """{"pass_at_k": {k: value}, "kl": KL(π‖π_warm)} for one-token answers, at temperature 1."""
        was_training = model.training
        model.eval()
        probs = next_token_probs(model, self.tokenizer, self.prompts)  # type: ignore[arg-type]
        model.train(was_training)
        values = exact_pass_at_k(probs, self.answers, ks)
        return {"pass_at_k": {str(k): v for k, v in values.items()}, "kl": exact_kl(probs, self.reference)}

    def hook(self, every: int, curve: dict[str, list[float]]) -> StepHook:
        """A `Trainer` step hook that appends to `curve` every `every` steps."""

        def on_step(step: int, model: torch.nn.Module) -> dict[str, float]:
            if step % every:
                return {}
            result = self.exact(model, list(CURVE_KS))
            _append(curve, step, result)
            return {"heldout/kl": result["kl"]} | {
                f"heldout/pass@{k}": v for k, v in result["pass_at_k"].items()
            }

        return on_step


def _append(curve: dict[str, list[float]], step: int, result: dict[str, Any]) -> None:
    curve.setdefault("step", []).append(step)
    curve.setdefault("kl", []).append(result["kl"])
    for k, value in result["pass_at_k"].items():
        curve.setdefault(f"pass@{k}", []).append(value)


def sampled(config: TrainConfig, n: int, out_dir: Path, limit: int | None) -> dict[str, Any]:
    """pass@k (k = 1..min(n, 100)) and maj@k (k in CURVE_KS) from n graded samples per held-out prompt."""
    result = asyncio.run(evaluate(config, n, list(CURVE_KS), out_dir, limit, chunk=n))
    rows = result["per_prompt"]
    passes = {
        str(k): sum(float(pass_at_k(p["n"], p["correct"], k)) for p in rows) / len(rows)
        for k in range(1, min(n, MAX_K) + 1)
    }
    majority = {str(k): result["metrics"][f"maj@{k}"] for k in result["ks"]}
    return {"pass_at_k_sampled": passes, "maj_at_k": majority}


# -- the experiment -------------------------------------------------------------------------------


def train_config(config: TradeoffConfig, files: TaskFiles, warm_start: Path, url: str) -> TrainConfig:
    """The RL run of the trade-off for one estimator (set `estimator`, `seed` and `out_dir` per run)."""
    return TrainConfig(
        model=ModelConfig(name_or_path=str(warm_start), device=config.device),
        data=DataConfig(path=files.train, grade_with_prompt=True),
        sampling=SamplingConfig(
            k=config.k, prompts_per_step=config.prompts_per_step, max_new_tokens=1, temperature=1.0
        ),
        loss=LossConfig(kind="pg", kl_coef=0.0),
        optim=OptimConfig(lr=config.lr),
        reward=RewardConfig(url=url),
        steps=config.steps,
        checkpoint_every=0,
        tensorboard=False,
    )


@contextlib.contextmanager
def reward_server(config: TradeoffConfig) -> Iterator[str]:
    if config.reward_url is not None:
        yield config.reward_url
        return
    with local_reward_server({"REWARD_MATH_WORKERS": str(config.math_workers)}) as url:
        yield url


def run_tradeoff(config: TradeoffConfig) -> dict[str, Any]:
    """Run the whole experiment and write tradeoff.json, tradeoff.md and tradeoff.png to `config.out_dir`.

    Returns:
        The content of tradeoff.json (see `trainer_client.reproduce.report.summarise`).
    """
    from trainer_client.reproduce.report import summarise, write_report

    started = time.perf_counter()
    torch.set_num_threads(config.torch_threads)
    out = config.out_dir
    files = config.task.write(out / "task")
    warm_start = out / "sft"
    sft(
        SFTConfig(
            model=ModelConfig(device=config.device, seed=config.model_seed),
            data=files.sft,
            out_dir=warm_start,
            steps=config.sft_steps,
            lr=config.sft_lr,
        )
    )
    warm_model, tokenizer = load_model(ModelConfig(name_or_path=str(warm_start), device=config.device))
    held_out = HeldOut(config.task, warm_model, tokenizer)
    ks = list(range(1, MAX_K + 1))
    runs: dict[str, list[dict[str, Any]]] = {}
    with reward_server(config) as url:
        base = train_config(config, files, warm_start, url).model_dump()
        held_out_data = {"path": files.eval, "grade_with_prompt": True}
        warm_eval = TrainConfig.model_validate(base | {"data": held_out_data})
        initial_sampled = sampled(
            warm_eval, config.eval_samples, out / "initial_eval", config.sampled_prompts
        )
        initial = held_out.exact(warm_model, ks) | initial_sampled
        start = {  # step 0 of every curve: the warm start's exact figures, at the curves' k
            "pass_at_k": {str(k): initial["pass_at_k"][str(k)] for k in CURVE_KS},
            "kl": initial["kl"],
        }
        del warm_model
        for name in config.estimators:
            for seed in range(config.seeds):
                run_dir = out / "runs" / name / f"seed{seed}"
                run = TrainConfig.model_validate(
                    base | {"estimator": {"name": name}, "seed": seed, "out_dir": run_dir}
                )
                curve: dict[str, list[float]] = {}
                _append(curve, 0, start)
                trainer = Trainer(run, on_step=held_out.hook(config.eval_every, curve))
                asyncio.run(trainer.run())
                final = held_out.exact(trainer.policy.model, ks)
                checkpoint = {"name_or_path": str(run_dir / "checkpoints/final"), "device": config.device}
                trained = TrainConfig.model_validate(
                    base | {"model": checkpoint, "data": held_out_data, "seed": seed}
                )
                final |= sampled(trained, config.eval_samples, run_dir / "eval", config.sampled_prompts)
                runs.setdefault(name, []).append({"seed": seed, **final, "curve": curve})
                (run_dir / "result.json").write_text(json.dumps(runs[name][-1], indent=2))
                log.info(
                    "%s seed %d: pass@1 %.3f pass@%d %.3f",
                    name,
                    seed,
                    final["pass_at_k"]["1"],
                    MAX_K,
                    final["pass_at_k"][str(MAX_K)],
                )
    settings = json.loads(config.model_dump_json()) | {"wall_s": round(time.perf_counter() - started, 1)}
    result = summarise(settings, initial, runs)
    write_report(result, out)
    return result
