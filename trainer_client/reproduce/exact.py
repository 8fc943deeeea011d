"""Exact pass@k and KL for tasks whose answer is one token: the policy's whole output distribution is one
softmax, so no sampling is needed.

For a prompt whose reference is answer a with probability Q(a) (over the rows of that prompt),

    pass@k = Σ_a Q(a) · [1 − (1 − π(a))^k]

(k independent draws, at least one equal to the reference), averaged over prompts; the KL to a reference
policy is Σ_v π(v) log(π(v)/π_ref(v)) over the vocabulary, the exact sequence KL for one-token completions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trainer_client.next_token import next_token_logprobs

__all__ = ["answer_token_ids", "exact_kl", "exact_pass_at_k", "next_token_probs"]


@torch.no_grad()
def next_token_probs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    temperature: float = 1.0,
) -> Tensor:
    """The distribution of the first completion token after each prompt, [P, V] in float64."""
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    return next_token_logprobs(model, ids, temperature).double().exp().cpu()


def answer_token_ids(
    tokenizer: PreTrainedTokenizerBase, answers: Sequence[Mapping[str, float]]
) -> list[dict[int, float]]:
    """Map each prompt's answer distribution from text to token ids.

    Raises:
        ValueError: an answer that is not exactly one token (its pass@k is then not one softmax away).
    """
    mapped = []
    for dist in answers:
        row: dict[int, float] = {}
        for text, p in dist.items():
            tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(tokens) != 1:
                raise ValueError(f"answer {text!r} is {len(tokens)} tokens; exact pass@k needs one")
            row[tokens[0]] = row.get(tokens[0], 0.0) + p
        mapped.append(row)
    return mapped


def exact_pass_at_k(
    probs: Tensor, answers: Sequence[Mapping[int, float]], ks: Sequence[int]
) -> dict[int, float]:
    """pass@k = mean over prompts of Σ_a Q(a)·[1 − (1 − π(a))^k], for every k in `ks`.

    Args:
        probs: [P, V] next-token distributions (`next_token_probs`).
        answers: per prompt, Q over answer token ids (`answer_token_ids`).
        ks: the k values.

    Example:
        >>> exact_pass_at_k(torch.tensor([[0.5, 0.5, 0.0]]), [{0: 0.5, 2: 0.5}], [1, 2])
        {1: 0.25, 2: 0.375}
    """
    k = torch.tensor(list(ks), dtype=torch.float64)  # [K]
    total = torch.zeros(len(k), dtype=torch.float64)
    for row, dist in zip(probs, answers, strict=True):
        tokens = torch.tensor(list(dist), dtype=torch.long)
        q = torch.tensor(list(dist.values()), dtype=torch.float64)  # [A]
        hit = 1 - (1 - row[tokens].double())[:, None] ** k  # [A, K]: some draw equals answer a
        total += (q[:, None] * hit).sum(0)
    return {int(kk): float(v) for kk, v in zip(ks, total / len(answers), strict=True)}


def exact_kl(probs: Tensor, reference: Tensor) -> float:
    """Mean over prompts of KL(π‖π_ref) = Σ_v π(v) log(π(v)/π_ref(v)); both [P, V]."""
    p, q = probs.double(), reference.double()
    terms = torch.where(p > 0, p * (p.clamp(min=1e-300).log() - q.clamp(min=1e-300).log()), 0.0)
    return float(terms.sum(-1).mean())
