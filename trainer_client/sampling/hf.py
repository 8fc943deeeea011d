"""Sampling with Hugging Face `generate` on the live torch policy (the fallback where vLLM is absent).

    sampler = HFSampler(model, tokenizer, "cpu")
    batch = sampler.sample(["1+1=", "2+2="], k=4, max_new_tokens=32, temperature=1.0, seed=0)

It draws from the very model the trainer updates, so `update_weights` has nothing to do. Slower than vLLM
(no paged attention, no continuous batching), but exact: the returned log-probs are those of the distribution
each token was drawn from, which the trainer's forward pass reproduces (see `trainer_client.sampling.base`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from trainer_client.sampling.base import SampleBatch, check_sampling_args

__all__ = ["HFSampler"]


class HFSampler:
    """k samples per prompt from `model.generate(num_return_sequences=k, do_sample=True)`.

    Log-probs are `log_softmax` of generate's *processed* scores (`output_scores=True`): the logits after
    the temperature and top-p warpers, i.e. exactly the distribution each token was sampled from. Top-k is
    switched off (transformers would otherwise apply its default top_k=50) and so is any repetition penalty
    a checkpoint's `generation_config.json` sets, so the policy is softmax(logits / temperature),
    nucleus-truncated when top_p < 1. (Options such as `min_p` that a checkpoint's generation config sets
    are still applied, and the log-probs then include them.)

    Memory: `generate` keeps one `[B_chunk * k, vocab]` score tensor per generated step; bound it with
    `batch_size` (prompts per `generate` call) for large vocabularies.

    Args:
        model: a causal LM (`PreTrainedModel` with `generate`), already on `device`.
        tokenizer: its tokenizer; needs an eos token (a pad token is optional). Prompts are left-padded.
        device: where the inputs go; defaults to the model's device.
        batch_size: prompts per `generate` call; None puts every prompt in one call.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        device: str | torch.device | None = None,
        *,
        batch_size: int | None = None,
    ) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token, so samples could never finish")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.batch_size = batch_size
        self.eos_token_ids = _eos_token_ids(model, tokenizer)
        # Padding only fills rows that finished early and is cut off again; any id works if there is none.
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad) if pad is not None else self.eos_token_ids[0]

    def update_weights(self, model: torch.nn.Module) -> None:
        """No-op: this sampler generates with the live model the trainer updates in place."""

    def sample(
        self,
        prompts: list[str],
        k: int,
        *,
        max_new_tokens: int,
        temperature: float,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> SampleBatch:
        """Sample `k` completions per prompt; see `trainer_client.sampling.base.Sampler.sample`.

        With a seed, the draw is reproducible (for the same model, prompts, batch_size and device), and the
        global torch random state is left as it was.
        """
        check_sampling_args(prompts, k, max_new_tokens, temperature, top_p)
        config = GenerationConfig(  # type: ignore[no-untyped-call]
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            top_k=0,
            typical_p=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            min_length=0,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            num_return_sequences=k,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
        result = SampleBatch(texts=[], prompt_ids=[], completion_ids=[], logprobs=[], finished=[])
        was_training = self.model.training
        self.model.eval()  # type: ignore[no-untyped-call]
        rng_devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=rng_devices, enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(seed)
                for chunk in _chunks(prompts, self.batch_size or len(prompts)):
                    self._sample_chunk(chunk, k, config, result)
        finally:
            self.model.train(was_training)
        return result

    def _sample_chunk(self, prompts: list[str], k: int, config: GenerationConfig, out: SampleBatch) -> None:
        # Left-pad by hand, so tokenizers without a pad token (or set to pad right) work as they are.
        encoded: list[list[int]] = [list(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(encoded), width), self.pad_token_id, dtype=torch.long)  # [B, L]
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        generated = self.model.generate(  # type: ignore[operator]
            input_ids=input_ids, attention_mask=attention_mask, generation_config=config
        )
        prompt_len = input_ids.shape[1]
        tokens = generated.sequences[:, prompt_len:]  # [B*k, T], prompt-major: rows b*k .. b*k+k-1
        # One step at a time, so only one [B*k, vocab] log-softmax is alive at once.
        logprobs = torch.empty(tokens.shape, dtype=torch.float32, device=tokens.device)
        for t, scores in enumerate(generated.scores):  # scores: [B*k, vocab], after temperature / top-p
            step = torch.log_softmax(scores.float(), dim=-1)
            logprobs[:, t] = step.gather(1, tokens[:, t : t + 1]).squeeze(1)

        eos = torch.tensor(self.eos_token_ids, device=tokens.device)
        is_eos = torch.isin(tokens, eos)  # [B*k, T]
        has_eos = is_eos.any(dim=1)
        # Keep up to and including the first eos; rows that never stopped keep all T tokens.
        lengths = torch.where(has_eos, is_eos.int().argmax(dim=1) + 1, tokens.shape[1])

        token_rows = tokens.tolist()
        logprob_rows = logprobs.tolist()
        for b in range(len(prompts)):
            out.prompt_ids.append(encoded[b])
            ids_b, lps_b, texts_b, done_b = [], [], [], []
            for row in range(b * k, (b + 1) * k):
                n = int(lengths[row])
                ids_b.append(token_rows[row][:n])
                lps_b.append(logprob_rows[row][:n])
                texts_b.append(str(self.tokenizer.decode(token_rows[row][:n], skip_special_tokens=True)))
                done_b.append(bool(has_eos[row]))
            out.completion_ids.append(ids_b)
            out.logprobs.append(lps_b)
            out.texts.append(texts_b)
            out.finished.append(done_b)


def _eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's eos plus any the model's generation config adds (chat models often stop on several)."""
    ids: list[int] = [int(tokenizer.eos_token_id)]
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        configured = [configured]
    for token_id in configured or []:
        if int(token_id) not in ids:
            ids.append(int(token_id))
    return ids


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
