"""Exact pass@k of one-token answers against brute-force enumeration, Monte Carlo and the tiny model."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from trainer_client.estimators import pass_at_k
from trainer_client.policy import Policy
from trainer_client.reproduce.exact import answer_token_ids, exact_kl, exact_pass_at_k, next_token_probs
from trainer_client.tiny_model import build_tiny_model

PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
ANSWERS = [{0: 0.6, 2: 0.4}, {3: 1.0}]


def brute_force(k: int) -> float:
    """Average over prompts and references of P(some draw of k equals it), by enumerating all k-tuples."""
    total = 0.0
    for probs, answers in zip(PROBS.tolist(), ANSWERS, strict=True):
        for answer, q in answers.items():
            for draws in itertools.product(range(4), repeat=k):
                if answer in draws:
                    total += q * math.prod(probs[d] for d in draws)
    return total / len(ANSWERS)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_exact_pass_at_k_matches_enumeration(k: int) -> None:
    assert exact_pass_at_k(PROBS, ANSWERS, [k])[k] == pytest.approx(brute_force(k), abs=1e-12)


def test_exact_pass_at_k_matches_the_unbiased_estimator_on_samples() -> None:
    generator = torch.Generator().manual_seed(0)
    n, k, estimates = 50, 5, []
    for _ in range(400):
        values = []
        for probs, answers in zip(PROBS, ANSWERS, strict=True):
            reference = list(answers)[
                int(torch.multinomial(torch.tensor(list(answers.values())), 1, generator=generator))
            ]
            draws = torch.multinomial(probs, n, replacement=True, generator=generator)
            values.append(float(pass_at_k(n, int((draws == reference).sum()), k)))
        estimates.append(sum(values) / len(values))
    mean = sum(estimates) / len(estimates)
    se = torch.tensor(estimates).std().item() / math.sqrt(len(estimates))
    assert abs(mean - exact_pass_at_k(PROBS, ANSWERS, [k])[k]) < 4 * se


def test_exact_kl() -> None:
    p = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.25, 0.25, 0.5]], dtype=torch.float64)
    assert exact_kl(p, q) == pytest.approx(math.log(2))
    assert exact_kl(q, q) == 0


def test_next_token_probs_match_the_policy_score() -> None:
    model, tokenizer = build_tiny_model(seed=1)
    prompts = ["Item 1: a digit near 3? The final answer is ", "Item 12: near 9? "]
    probs = next_token_probs(model, tokenizer, prompts)
    assert probs.shape == (2, len(tokenizer)) and torch.allclose(
        probs.sum(-1), torch.ones(2, dtype=torch.float64)
    )
    digit = tokenizer.convert_tokens_to_ids("7")
    with torch.no_grad():
        scored = Policy(model).score([tokenizer(p)["input_ids"] for p in prompts], [[digit], [digit]])
    assert torch.allclose(probs[:, digit], scored.token_logp[:, 0].double().exp(), atol=1e-6)


def test_answers_must_be_one_token() -> None:
    _, tokenizer = build_tiny_model()
    assert answer_token_ids(tokenizer, [{"7": 0.5, "8": 0.5}]) == [
        {tokenizer.convert_tokens_to_ids("7"): 0.5, tokenizer.convert_tokens_to_ids("8"): 0.5}
    ]
    with pytest.raises(ValueError, match="one"):
        answer_token_ids(tokenizer, [{"12": 1.0}])
