"""Supervised fine-tuning on prompt/completion pairs: a warm start that `trainer-client train` starts from.

    trainer-client sft --data runs/task/sft.jsonl --out runs/sft --steps 300 --lr 1e-2
    trainer-client train -c my.yaml --set model.name_or_path=runs/sft

Each JSONL row is `{"prompt": ..., "completion": ..., "weight"?: ...}` or, for a soft target,
`{"prompt": ..., "targets": {completion: weight, ...}}`. The loss is the weighted mean token negative
log-likelihood of the completions (plus an end-of-sequence token if `add_eos`): the completions of one
prompt with their weights train towards a soft target, which is how the offset task's warm start gets its
answer distribution. The folder written holds the model and tokenizer
(`save_pretrained`), loadable as `model.name_or_path`, and `sft.json` with the loss curve.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from trainer_client.config import ModelConfig
from trainer_client.next_token import next_token_logprobs
from trainer_client.policy import Policy, load_model

__all__ = ["Pair", "SFTConfig", "load_pairs", "sft"]


class SFTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelConfig = Field(default_factory=ModelConfig, description="The model to fine-tune.")
    data: Path = Field(..., description="JSONL of `prompt`, `completion` and optional `weight` (default 1).")
    out_dir: Path = Field(Path("runs/sft"), description="Where the fine-tuned model and sft.json go.")
    steps: int = Field(300, ge=1, description="Optimizer steps.")
    lr: float = Field(1e-2, gt=0, description="AdamW learning rate (constant).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int | None = Field(
        None, ge=1, description="Rows per step, drawn at random; None: every row (full batch)."
    )
    add_eos: bool = Field(
        False, description="Append the tokenizer's end-of-sequence token to completions (to learn to stop)."
    )
    seed: int = Field(0, description="Seed of the batch draws.")


@dataclass(frozen=True)
class Pair:
    """A prompt and its weighted completions (a plain row has one, of weight 1)."""

    prompt: str
    targets: dict[str, float]


def load_pairs(path: Path) -> list[Pair]:
    """The rows of a prompt/completion JSONL file.

    A row is `{"prompt", "completion", "weight"?}` or `{"prompt", "targets": {completion: weight, ...}}`.

    Raises:
        ValueError: a row without `prompt` or a completion, a negative weight, or no rows at all.
    """
    pairs = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "targets" in row:
                targets = {str(c): float(w) for c, w in row["targets"].items()}
            elif "completion" in row:
                targets = {row["completion"]: float(row.get("weight", 1.0))}
            else:
                raise ValueError(f"{path}:{number}: a row needs `completion` or `targets`")
            if "prompt" not in row or not targets or min(targets.values()) < 0:
                raise ValueError(f"{path}:{number}: a row needs a `prompt` and weights >= 0")
            pairs.append(Pair(row["prompt"], targets))
    if not pairs:
        raise ValueError(f"{path}: no rows")
    return pairs


class WeightedNLL:
    """The loss of a set of rows: Σ_rows Σ_c w_c · NLL(c | prompt) / Σ_rows Σ_c w_c · tokens(c).

    When every completion is one token (and no EOS is appended), NLL(c | prompt) is read off one forward
    pass of the prompt alone (`next_token_logprobs`), ten times cheaper for the offset task's ten digits
    per prompt; otherwise every (prompt, completion) sequence is scored (`Policy.score`). Both give the same
    loss.
    """

    def __init__(
        self, policy: Policy, tokenizer: PreTrainedTokenizerBase, pairs: list[Pair], add_eos: bool
    ) -> None:
        self.policy = policy
        eos = [tokenizer.eos_token_id] if add_eos and tokenizer.eos_token_id is not None else []
        self.prompt_ids = [tokenizer(p.prompt)["input_ids"] for p in pairs]
        self.targets = [
            [(tokenizer(c, add_special_tokens=False)["input_ids"] + eos, w) for c, w in p.targets.items()]
            for p in pairs
        ]
        self.one_token = all(len(ids) == 1 for row in self.targets for ids, _ in row)

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def __call__(self, rows: list[int]) -> torch.Tensor:
        device = self.policy.device
        if self.one_token:
            logp = next_token_logprobs(self.policy.model, [self.prompt_ids[r] for r in rows])  # [R, V]
            index = [(i, ids[0], w) for i, r in enumerate(rows) for ids, w in self.targets[r]]
            who = torch.tensor([i for i, _, _ in index], device=device)
            token = torch.tensor([t for _, t, _ in index], device=device)
            weight = torch.tensor([w for _, _, w in index], device=device)
            return -(weight * logp[who, token]).sum() / weight.sum().clamp(min=1e-12)
        sequences = [(self.prompt_ids[r], ids, w) for r in rows for ids, w in self.targets[r]]
        scored = self.policy.score([p for p, _, _ in sequences], [c for _, c, _ in sequences])
        weight = torch.tensor([w for _, _, w in sequences], device=device)[:, None] * scored.mask  # [N, T]
        return -(weight * scored.token_logp).sum() / weight.sum().clamp(min=1e-12)


def sft(config: SFTConfig, progress: bool = True) -> list[float]:
    """Fine-tune and save to `config.out_dir`; returns the loss of every step (also in `sft.json`)."""
    torch.manual_seed(config.seed)
    draw = random.Random(config.seed)
    model, tokenizer = load_model(config.model)
    policy = Policy(model).train()
    loss_of = WeightedNLL(policy, tokenizer, load_pairs(config.data), config.add_eos)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    losses: list[float] = []
    for _ in tqdm(range(config.steps), desc="sft", unit="step", disable=not progress):
        rows = list(range(len(loss_of)))
        if config.batch_size is not None and config.batch_size < len(rows):
            rows = draw.sample(rows, config.batch_size)
        loss = loss_of(rows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()  # type: ignore[no-untyped-call]
    config.out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(config.out_dir)
    tokenizer.save_pretrained(config.out_dir)
    record = {"config": json.loads(config.model_dump_json()), "losses": losses}
    (config.out_dir / "sft.json").write_text(json.dumps(record, indent=2))
    return losses
