"""HFSampler on the tiny random Llama: shapes, eos, seeds, and log-probs that a forward pass reproduces."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from trainer_client.sampling import SampleBatch, Sampler
from trainer_client.sampling.hf import HFSampler
from trainer_client.tiny_model import build_tiny_model, build_tiny_tokenizer

Tiny = tuple[LlamaForCausalLM, PreTrainedTokenizerFast]

PROMPTS = ["What is 1+1? Put the answer in \\boxed{}.", "2+2="]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny matmuls gain nothing from threads; on a busy 2-core box OpenMP spinning made them ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    return build_tiny_model(seed=0)


@pytest.fixture(scope="module")
def sampler(tiny: Tiny) -> HFSampler:
    model, tokenizer = tiny
    return HFSampler(model, tokenizer, "cpu")


@pytest.fixture(scope="module")
def batch(sampler: HFSampler) -> SampleBatch:
    return sampler.sample(PROMPTS, 4, max_new_tokens=12, temperature=1.0, seed=0)


def recomputed_logprobs(
    model: torch.nn.Module, prompt_ids: list[int], completion_ids: list[int], temperature: float = 1.0
) -> list[float]:
    """log pi(completion_t | prompt, completion_<t) from one unpadded forward pass."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float() / temperature  # [L + T, vocab]
    # Position i predicts token i + 1, so the completion's predictors start at the prompt's last token.
    predictors = logits[len(prompt_ids) - 1 : -1]
    return (
        torch.log_softmax(predictors, dim=-1).gather(1, torch.tensor(completion_ids)[:, None])[:, 0].tolist()
    )


def test_tokenizer_round_trips_math_text() -> None:
    tokenizer = build_tiny_tokenizer()
    text = "So x = 3.5, and the final answer is $\\boxed{\\frac{7}{2}}$.\nDone!"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_sampler_satisfies_protocol(sampler: HFSampler) -> None:
    assert isinstance(sampler, Sampler)


def test_shapes_are_prompt_major(batch: SampleBatch, tiny: Tiny) -> None:
    _, tokenizer = tiny
    assert batch.num_prompts == 2 and batch.k == 4
    assert [len(group) for group in batch.texts] == [4, 4]
    assert [len(group) for group in batch.completion_ids] == [4, 4]
    assert [len(group) for group in batch.logprobs] == [4, 4]
    assert [len(group) for group in batch.finished] == [4, 4]
    for b, prompt in enumerate(PROMPTS):
        assert batch.prompt_ids[b] == tokenizer(prompt)["input_ids"]
        for ids, lps in zip(batch.completion_ids[b], batch.logprobs[b], strict=True):
            assert 1 <= len(ids) <= 12
            assert len(lps) == len(ids)
    assert len(batch.flat_texts()) == 8


def test_samples_differ(batch: SampleBatch) -> None:
    for group in batch.completion_ids:
        assert len({tuple(ids) for ids in group}) >= 3


def test_logprobs_are_finite_and_nonpositive(batch: SampleBatch) -> None:
    values = [lp for group in batch.logprobs for sample in group for lp in sample]
    assert all(math.isfinite(lp) and lp <= 0 for lp in values)


def test_completions_stop_at_first_eos(tiny: Tiny) -> None:
    model, tokenizer = tiny
    eos = tokenizer.eos_token_id
    # Long completions from many prompts make some samples draw eos (about 1 in 100 per token here).
    big = HFSampler(model, tokenizer).sample(["a"] * 8, 8, max_new_tokens=40, temperature=1.0, seed=1)
    seen_eos = 0
    for ids_group, done_group, text_group in zip(big.completion_ids, big.finished, big.texts, strict=True):
        for ids, done, text in zip(ids_group, done_group, text_group, strict=True):
            # A random model may draw <pad> as a real token, so eos alone marks the end: nothing follows it.
            assert eos not in ids[:-1]
            assert done == (ids[-1] == eos)
            assert done or len(ids) == 40
            assert "<eos>" not in text and "<pad>" not in text
            seen_eos += done
    assert seen_eos > 0


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_match_forward_pass(tiny: Tiny, temperature: float) -> None:
    """The property the PPO ratio and the IS correction rely on: sampler log-probs == trainer log-probs."""
    model, tokenizer = tiny
    sampler = HFSampler(model, tokenizer)
    # Prompts of different lengths, so left padding and its position ids are exercised.
    batch = sampler.sample(PROMPTS, 3, max_new_tokens=10, temperature=temperature, seed=3)
    for b in range(batch.num_prompts):
        for ids, lps in zip(batch.completion_ids[b], batch.logprobs[b], strict=True):
            expected = recomputed_logprobs(model, batch.prompt_ids[b], ids, temperature)
            assert lps == pytest.approx(expected, abs=1e-4)


def test_top_p_logprobs_are_of_the_truncated_distribution(tiny: Tiny) -> None:
    model, tokenizer = tiny
    batch = HFSampler(model, tokenizer).sample(
        PROMPTS[:1], 2, max_new_tokens=6, temperature=1.0, top_p=0.5, seed=0
    )
    ids, lps = batch.completion_ids[0][0], batch.logprobs[0][0]
    full = recomputed_logprobs(model, batch.prompt_ids[0], ids)
    # Renormalizing over the nucleus raises every kept token's log-prob above its full-softmax value.
    assert all(lp > f for lp, f in zip(lps, full, strict=True))
    assert all(lp <= 0 for lp in lps)


def test_seed_reproduces_and_leaves_global_rng_alone(sampler: HFSampler) -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = sampler.sample(PROMPTS, 3, max_new_tokens=8, temperature=1.0, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    second = sampler.sample(PROMPTS, 3, max_new_tokens=8, temperature=1.0, seed=7)
    other = sampler.sample(PROMPTS, 3, max_new_tokens=8, temperature=1.0, seed=8)
    assert first == second
    assert other.completion_ids != first.completion_ids


def test_chunked_batches_keep_order(tiny: Tiny) -> None:
    model, tokenizer = tiny
    prompts = ["a", "bb", "ccc"]
    batch = HFSampler(model, tokenizer, batch_size=2).sample(
        prompts, 2, max_new_tokens=4, temperature=1.0, seed=0
    )
    assert batch.prompt_ids == [tokenizer(p)["input_ids"] for p in prompts]
    assert batch.k == 2 and batch.num_prompts == 3


def test_training_mode_is_restored(tiny: Tiny) -> None:
    model, tokenizer = tiny
    model.train()
    try:
        HFSampler(model, tokenizer).sample(["a"], 1, max_new_tokens=2, temperature=1.0, seed=0)
        assert model.training
    finally:
        model.eval()  # type: ignore[no-untyped-call]


def test_update_weights_is_a_noop_and_sampling_sees_new_weights() -> None:
    model, tokenizer = build_tiny_model(seed=0)
    sampler = HFSampler(model, tokenizer)
    before = sampler.sample(["a"], 1, max_new_tokens=4, temperature=1.0, seed=0)
    with torch.no_grad():
        model.lm_head.weight.mul_(10.0)
    sampler.update_weights(model)
    after = sampler.sample(["a"], 1, max_new_tokens=4, temperature=1.0, seed=0)
    assert after.logprobs != before.logprobs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"prompts": []}, "prompts"),
    ],
)
def test_bad_arguments_are_named(sampler: HFSampler, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"prompts": ["a"], "k": 2, "max_new_tokens": 4, "temperature": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sampler.sample(**args)


def test_tokenizer_without_pad_token_works(tiny: Tiny) -> None:
    model, _ = tiny
    tokenizer = build_tiny_tokenizer()
    tokenizer.pad_token = None
    tokenizer.padding_side = "right"
    batch = HFSampler(model, tokenizer).sample(PROMPTS, 2, max_new_tokens=5, temperature=1.0, seed=0)
    for b in range(batch.num_prompts):
        for ids, lps in zip(batch.completion_ids[b], batch.logprobs[b], strict=True):
            assert lps == pytest.approx(recomputed_logprobs(model, batch.prompt_ids[b], ids), abs=1e-4)
