"""The sampler interface: k completions per prompt, with the log-probs the policy gave each sampled token.

A sampler is anything with `sample(...)` and `update_weights(model)`. Two ship here: `HFSampler` (Hugging
Face `generate` on the live torch model) and `VLLMSampler` (a vLLM engine that is handed the trainer's weights
after each optimizer step).

Log-prob convention (both samplers): `logprobs[b][j][t]` is log pi(token_t | prompt, tokens_<t) under the
distribution the token was actually drawn from, i.e. the log-softmax of the logits after temperature (and
top-p) are applied. At temperature 1 and top_p 1 this is the model's own log-prob, which is what the trainer's
forward pass recomputes for the PPO ratio and the importance-sampling correction; at another temperature the
trainer must divide its logits by the same temperature to compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

__all__ = ["SampleBatch", "Sampler"]


@dataclass(frozen=True)
class SampleBatch:
    """k completions for each of B prompts; completions of prompt b are `[b][0..k-1]`.

    Attributes:
        texts: `[B][k]` decoded completions, special tokens (eos, pad) removed.
        prompt_ids: `[B][L_b]` token ids of each prompt as the model saw it (no padding; bos included if the
            tokenizer adds one).
        completion_ids: `[B][k][T]` sampled token ids, up to and including the first eos when the sample
            stopped there (its log-prob is part of the policy), never any padding after it. T varies by
            sample.
        logprobs: `[B][k][T]` log-prob of each sampled token under the sampling distribution (see the module
            docstring), all finite and <= 0, aligned with `completion_ids`.
        finished: `[B][k]` True when the sample ended with eos, False when it hit `max_new_tokens`; empty when
            whoever built the batch did not say.
    """

    texts: list[list[str]]
    prompt_ids: list[list[int]]
    completion_ids: list[list[list[int]]]
    logprobs: list[list[list[float]]]
    finished: list[list[bool]] = field(default_factory=list)

    @property
    def num_prompts(self) -> int:
        return len(self.texts)

    @property
    def k(self) -> int:
        return len(self.texts[0]) if self.texts else 0

    def flat_texts(self) -> list[str]:
        """The `B * k` completions prompt-major, the order the reward server's groups expect."""
        return [text for group in self.texts for text in group]


@runtime_checkable
class Sampler(Protocol):
    """Draws k completions per prompt from the current policy."""

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
        """Sample `k` completions for every prompt.

        Args:
            prompts: B prompt strings, tokenized by the sampler's tokenizer.
            k: completions per prompt.
            max_new_tokens: the most tokens each completion may have.
            temperature: > 0; logits are divided by it before sampling.
            top_p: nucleus sampling mass in (0, 1]; 1 disables it.
            seed: makes the draw reproducible when given; None uses the sampler's running random state.

        Returns:
            A `SampleBatch` with `[B][k]` completions.
        """
        ...

    def update_weights(self, model: torch.nn.Module) -> None:
        """Make the sampler draw from `model`'s current weights (a no-op where it samples the live model)."""
        ...


def check_sampling_args(
    prompts: list[str], k: int, max_new_tokens: int, temperature: float, top_p: float
) -> None:
    """Reject arguments no sampler can honour, naming the bad one."""
    if not prompts:
        raise ValueError("prompts must not be empty")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not temperature > 0:
        raise ValueError(
            f"temperature must be > 0 (greedy decoding is not a sampling policy), got {temperature}"
        )
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
