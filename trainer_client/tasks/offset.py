"""The offset task: a one-digit answer `(N + e) mod 10` with a hidden offset e, so a prompt has several right
answers across its rows, and pass@1 and pass@k pull a policy in different directions.

Each prompt reads `Item a, near N. Answer: ` and is graded with the prompt
(`data.grade_with_prompt: true`, one-token completions), by the real `math` backend. Each row's reference is
`(N + e) mod 10` with e drawn from `offset_probs` (default .45, .2, .15, .1, .1). The draws are stratified per
prompt (20 rows: 9/4/3/2/2 of offsets 0..4), so the rows of a prompt disagree in a fixed proportion and no
model can memorise a reference: the best answer for pass@1 is the most likely offset, the best for pass@k
hedges over offsets (the mechanism the paper names: sample diversity).

    task = OffsetTask(seed=0)
    files = task.write(Path("runs/task"))  # train.jsonl, eval.jsonl, sft.jsonl

`train.jsonl` and `eval.jsonl` use disjoint item numbers (held-out prompts); `sft.jsonl` holds one soft target
per training prompt for `trainer-client sft`, whose weights are the warm start's answer distribution
(`sft_probs`, sharper than the task's by default, mixed with `sft_smoothing` of uniform over the 10 digits).
A flatter `offset_probs`, e.g. (.8, .1, .05, .05), with `sft_probs` equal to it, gives smaller gaps between
pass@1- and pass@k-trained policies, closer to the paper's.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DIGITS", "OffsetTask", "TaskFiles", "prompt_text", "stratified_counts"]

DIGITS = 10  # answers are the digits 0..9


def prompt_text(item: int, base: int) -> str:
    """The prompt of item `item` whose answers sit near digit `base`."""
    # Short, because the cost of a training step grows with it; "Answer:" is a marker the math backend reads.
    return f"Item {item}, near {base}. Answer: "


def stratified_counts(probs: list[float], total: int) -> list[int]:
    """Integer counts summing to `total`, as close to `probs * total` as possible (largest remainder).

    Example:
        >>> stratified_counts([0.45, 0.2, 0.15, 0.1, 0.1], 20)
        [9, 4, 3, 2, 2]
    """
    exact = [p * total for p in probs]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(probs)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _check_probs(probs: list[float]) -> list[float]:
    if not 1 <= len(probs) <= DIGITS:
        raise ValueError(f"give 1 to {DIGITS} offset probabilities, got {len(probs)}")
    if any(p < 0 for p in probs) or abs(sum(probs) - 1) > 1e-6:
        raise ValueError(f"probabilities must be >= 0 and sum to 1, got {probs}")
    return probs


@dataclass(frozen=True)
class TaskFiles:
    train: Path
    eval: Path
    sft: Path


class OffsetTask(BaseModel):
    """The task's parameters; every method is a pure function of them (seeded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offset_probs: list[float] = Field(
        [0.45, 0.2, 0.15, 0.1, 0.1],
        description="Q(e): probability of hidden offset e = 0, 1, ... in a reference. Flatter or more peaked "
        "Q changes the gap between the pass@1 and pass@k optima.",
    )
    sft_probs: list[float] = Field(
        [0.70, 0.12, 0.08, 0.05, 0.05],
        description="The warm start's answer distribution over offsets (sharper than Q: diversity to lose).",
    )
    sft_smoothing: float = Field(
        0.05, ge=0, le=1, description="Share of the SFT target spread uniformly over the 10 digits."
    )
    train_items: int = Field(10, ge=1, description="Item numbers of the training prompts (x 10 bases).")
    eval_items: int = Field(10, ge=1, description="Item numbers of the held-out prompts (x 10 bases).")
    rows_per_prompt: int = Field(20, ge=1, description="Training rows per prompt, offsets stratified by Q.")
    seed: int = Field(0, description="Seed of the item split and of the row order.")

    _probs = field_validator("offset_probs", "sft_probs")(_check_probs)

    # -- prompts ----------------------------------------------------------------------------------

    def _items(self) -> tuple[list[int], list[int]]:
        """Disjoint item numbers for training and held-out prompts."""
        pool = random.Random(self.seed).sample(
            range(self.train_items + self.eval_items), k=self.train_items + self.eval_items
        )
        return sorted(pool[: self.train_items]), sorted(pool[self.train_items :])

    def prompts(self, split: str) -> list[tuple[int, int]]:
        """(item, base) of every prompt of `split` (`train` or `eval`)."""
        train, held_out = self._items()
        items = {"train": train, "eval": held_out}[split]
        return [(item, base) for item in items for base in range(DIGITS)]

    def answer_probs(self, base: int) -> dict[str, float]:
        """Q over the answer digits of a prompt near `base`: the probability that a row's reference is d."""
        probs: dict[str, float] = {}
        for offset, p in enumerate(self.offset_probs):
            digit = str((base + offset) % DIGITS)
            probs[digit] = probs.get(digit, 0.0) + p
        return probs

    def sft_target(self, base: int) -> dict[str, float]:
        """The warm start's target distribution over the 10 digits for a prompt near `base`."""
        target = {str(d): self.sft_smoothing / DIGITS for d in range(DIGITS)}
        for offset, p in enumerate(self.sft_probs):
            target[str((base + offset) % DIGITS)] += (1 - self.sft_smoothing) * p
        return target

    # -- rows -------------------------------------------------------------------------------------

    def train_rows(self) -> list[dict[str, Any]]:
        """`rows_per_prompt` rows per training prompt, offsets in the proportions of Q, in seeded order."""
        counts = stratified_counts(self.offset_probs, self.rows_per_prompt)
        rows = [
            _row(f"train-{item}-{base}-{r}", item, base, offset)
            for item, base in self.prompts("train")
            for r, offset in enumerate(e for e, c in enumerate(counts) for _ in range(c))
        ]
        random.Random(self.seed).shuffle(rows)
        return rows

    def eval_rows(self) -> list[dict[str, Any]]:
        """One row per held-out prompt; the offsets are stratified over all of them (Q across the rows)."""
        prompts = self.prompts("eval")
        counts = stratified_counts(self.offset_probs, len(prompts))
        offsets = [e for e, c in enumerate(counts) for _ in range(c)]
        random.Random(self.seed + 1).shuffle(offsets)
        return [
            _row(f"eval-{item}-{base}", item, base, offset)
            for (item, base), offset in zip(prompts, offsets, strict=True)
        ]

    def sft_rows(self) -> list[dict[str, Any]]:
        """One soft-target row per training prompt: `{"prompt", "targets": {digit: probability}}`."""
        return [
            {"prompt": prompt_text(item, base), "targets": self.sft_target(base)}
            for item, base in self.prompts("train")
        ]

    def write(self, out_dir: Path) -> TaskFiles:
        """Write train.jsonl, eval.jsonl and sft.jsonl under `out_dir` (created)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        files = TaskFiles(out_dir / "train.jsonl", out_dir / "eval.jsonl", out_dir / "sft.jsonl")
        for path, rows in (
            (files.train, self.train_rows()),
            (files.eval, self.eval_rows()),
            (files.sft, self.sft_rows()),
        ):
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return files


def _row(row_id: str, item: int, base: int, offset: int) -> dict[str, Any]:
    answer = str((base + offset) % DIGITS)
    return {"id": row_id, "prompt": prompt_text(item, base), "reference": {"answer": answer}}
