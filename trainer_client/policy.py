"""The policy being trained: a causal LM, its tokenizer, and an optional value head for PPO.

`Policy.score` runs the model on prompt + completion token ids and returns the log-prob of every
completion token, which is all the losses need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from trainer_client.config import ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(config: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model named in the config; `tiny` builds a random-weight model with a tokenizer made in code."""
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    if config.name_or_path == "tiny":
        from trainer_client.tiny_model import build_tiny_model

        model, tokenizer = build_tiny_model(seed=config.seed)
        # Built in float32, e.g. to train it in bfloat16 on a GPU. (transformers declares PreTrainedModel.to
        # with functools.wraps(nn.Module.to), which mypy reads as an unbound function: hence the ignores.)
        model = model.to(DTYPES[config.dtype])  # type: ignore[arg-type]
    else:
        tokenizer = AutoTokenizer.from_pretrained(config.name_or_path)
        model = AutoModelForCausalLM.from_pretrained(config.name_or_path, dtype=DTYPES[config.dtype])
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(pick_device(config.device)), tokenizer  # type: ignore[arg-type]


@dataclass
class Scored:
    """Per-token log-probs of completions, padded: token_logp and mask are [N, T]; values [N] or None."""

    token_logp: Tensor
    mask: Tensor
    values: Tensor | None


class Policy(nn.Module):
    def __init__(
        self, model: PreTrainedModel, with_value_head: bool = False, temperature: float = 1.0
    ) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature
        # V(x) reads the hidden state of the last prompt token, so it depends on the prompt only. It is
        # trained at its own learning rate (optim.value_lr) on detached features (see `score`).
        self.value_head = nn.Linear(model.config.hidden_size, 1) if with_value_head else None
        if self.value_head is not None:
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
            self.value_head.to(next(model.parameters()).device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def score(self, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]]) -> Scored:
        """Log-probs (at the sampling temperature) of each completion token given its prompt.

        Args:
            prompt_ids: N prompts' token ids (the prompt of each sequence, repeated for its k samples).
            completion_ids: N completions' token ids (may be empty).
        """
        lengths = [len(p) + len(c) for p, c in zip(prompt_ids, completion_ids, strict=True)]
        width = max(lengths)
        pad = 0
        ids = torch.full((len(lengths), width), pad, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for row, (prompt, completion) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
            ids[row, : lengths[row]] = torch.tensor([*prompt, *completion])
            attention[row, : lengths[row]] = 1
        ids, attention = ids.to(self.device), attention.to(self.device)
        out = self.model(
            input_ids=ids, attention_mask=attention, output_hidden_states=self.value_head is not None
        )
        logp_all = torch.log_softmax(out.logits[:, :-1].float() / self.temperature, dim=-1)  # [N, W-1, V]
        next_logp = logp_all.gather(-1, ids[:, 1:, None]).squeeze(-1)  # log p(token t+1 | ≤ t)

        steps = max((len(c) for c in completion_ids), default=0)
        token_logp = torch.zeros(len(lengths), max(steps, 1), device=self.device)
        mask = torch.zeros_like(token_logp)
        for row, (prompt, completion) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
            start = len(prompt) - 1  # the logits at the last prompt token predict completion token 0
            token_logp[row, : len(completion)] = next_logp[row, start : start + len(completion)]
            mask[row, : len(completion)] = 1
        values = None
        if self.value_head is not None:
            last_prompt = torch.tensor([len(p) - 1 for p in prompt_ids], device=self.device)
            hidden = out.hidden_states[-1][torch.arange(len(lengths), device=self.device), last_prompt]
            # Detached: the value loss trains the head only, never the policy's trunk (a linear value model
            # on the policy's features, in place of appendix A.4's separate V_psi).
            values = self.value_head(hidden.detach().float()).squeeze(-1)
        return Scored(token_logp, mask, values)
