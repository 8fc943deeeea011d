"""Runs inside vLLM's worker process: receives the trainer's weights and loads them into the engine's model.

vLLM imports this class by name (`worker_extension_cls`) and mixes it into its worker, so `VLLMSampler` can
call `llm.collective_rpc("load_trainer_weights", args=(payload,))`. vLLM's RPC decodes arguments without type
hints, so tensors cannot travel as tensors; they travel as `(name, dtype, shape, raw bytes)` and are
rebuilt here.
Only torch is imported, so the module also imports where vLLM is absent.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["WeightSyncWorkerExtension", "encode_state_dict", "decode_weights"]

# (parameter name, dtype name such as "bfloat16", shape, contiguous bytes)
EncodedTensor = tuple[str, str, list[int], bytes]


def encode_state_dict(state_dict: dict[str, torch.Tensor]) -> list[EncodedTensor]:
    """Flatten a torch state dict into plain msgpack-friendly tuples (copies each tensor to CPU bytes)."""
    encoded: list[EncodedTensor] = []
    for name, tensor in state_dict.items():
        cpu = tensor.detach().to("cpu").contiguous()
        raw = cpu.reshape(-1).view(torch.uint8).numpy().tobytes()
        encoded.append((name, str(cpu.dtype).removeprefix("torch."), list(cpu.shape), raw))
    return encoded


def decode_weights(payload: list[Any]) -> list[tuple[str, torch.Tensor]]:
    """The inverse of `encode_state_dict` (msgpack turns the tuples into lists on the way)."""
    weights = []
    for name, dtype_name, shape, raw in payload:
        dtype = getattr(torch, dtype_name)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"{name}: unknown dtype {dtype_name!r}")
        flat = (
            torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
        )
        weights.append((name, flat.view(dtype).reshape(shape)))
    return weights


class WeightSyncWorkerExtension:
    """Mixed into vLLM's worker class; `self` is the worker (it has `model_runner`)."""

    def load_trainer_weights(self, payload: list[Any]) -> int:
        """Load checkpoint-format (Hugging Face names) weights into the running model; returns how many."""
        weights = decode_weights(payload)
        reload_weights = getattr(self, "reload_weights", None)
        if reload_weights is not None:
            # vLLM's in-place reload (0.32 has it): also redoes post-load processing (e.g. quantization).
            reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)
        else:
            self.model_runner.model.load_weights(weights=iter(weights))  # type: ignore[attr-defined]
        return len(weights)
