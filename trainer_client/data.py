"""Prompts with their references, read from JSONL.

A row is either `{"prompt": ..., "reference": {...}, "backend"?: ...}` or MATH-style
`{"problem": ..., "answer": ...}` (then the reference is `{"answer": answer}`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from trainer_client.config import DataConfig


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    reference: dict[str, Any] = field(hash=False)
    backend: str


def load_prompts(config: DataConfig) -> list[Prompt]:
    prompts = []
    with config.path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "reference" in row:
                reference = row["reference"]
            elif "answer" in row:
                reference = {"answer": row["answer"]}
            else:
                raise ValueError(f"{config.path}:{number}: a row needs `reference` or `answer`")
            problem = row.get("prompt", row.get("problem"))
            if problem is None:
                raise ValueError(f"{config.path}:{number}: a row needs `prompt` or `problem`")
            text = row["prompt"] if "prompt" in row else config.prompt_template.format(problem=problem)
            prompt_id = str(row.get("id", row.get("unique_id", number)))
            prompts.append(Prompt(prompt_id, text, reference, row.get("backend", config.backend)))
    if not prompts:
        raise ValueError(f"{config.path}: no prompts")
    return prompts
