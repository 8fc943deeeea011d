"""Samplers: k completions per prompt with their log-probs (`HFSampler`, `VLLMSampler`).

Side-effect-free: import the backend you need from its module (`trainer_client.sampling.hf`,
`trainer_client.sampling.vllm`); vLLM is imported only when a `VLLMSampler` is built.
"""

from trainer_client.sampling.base import SampleBatch, Sampler

__all__ = ["SampleBatch", "Sampler"]
