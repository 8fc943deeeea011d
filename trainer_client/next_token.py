"""The distribution of the first completion token after each prompt: the whole policy, for tasks whose
answers are one token (exact pass@k in `trainer_client.reproduce.exact`, soft-target SFT in
`trainer_client.sft`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import PreTrainedModel

__all__ = ["next_token_logprobs"]


def next_token_logprobs(
    model: PreTrainedModel, prompt_ids: Sequence[Sequence[int]], temperature: float = 1.0
) -> Tensor:
    """log π(v | prompt) for every token v, [P, V] float32; differentiable (wrap in no_grad to evaluate).

    Right-padded, so every prompt sees the positions it has when sampled alone.
    """
    width = max(len(row) for row in prompt_ids)
    device = next(model.parameters()).device
    batch = torch.zeros(len(prompt_ids), width, dtype=torch.long)
    attention = torch.zeros_like(batch)
    for i, row in enumerate(prompt_ids):
        batch[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
    logits = model(input_ids=batch.to(device), attention_mask=attention.to(device)).logits  # [P, W, V]
    last = torch.tensor([len(row) - 1 for row in prompt_ids], device=device)
    rows = torch.arange(len(prompt_ids), device=device)
    return torch.log_softmax(logits[rows, last].float() / temperature, dim=-1)
