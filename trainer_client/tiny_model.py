"""A tiny random-weight Llama and a character-level tokenizer, built in code with no hub access.

Tests and the end-to-end trainer run use it wherever a real checkpoint would be too big or unreachable:

    model, tokenizer = build_tiny_model(seed=0)
    save_tiny_model("/tmp/tiny")  # a local folder that `from_pretrained` and vLLM can load

The tokenizer maps every printable ASCII character (digits, letters, punctuation, space, newline, so
`\\boxed{...}` answers survive a round trip) to one token, plus `<pad>`, `<bos>`, `<eos>` and `<unk>`. It adds
`<bos>` in front of every encoded text. The model is a `LlamaForCausalLM` with hidden size 64, 2 layers and 2
heads of head_dim 64 (vLLM's CPU attention refuses head_dim 16), float32.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

__all__ = [
    "PAD",
    "BOS",
    "EOS",
    "UNK",
    "SPECIAL_TOKENS",
    "build_tiny_tokenizer",
    "build_tiny_model",
    "save_tiny_model",
]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
# Every printable ASCII character but the vertical tab and form feed, which no completion needs.
CHARACTERS = tuple(ch for ch in string.printable if ch not in "\x0b\x0c")


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer made in code (no files, no hub).

    Returns:
        A `PreTrainedTokenizerFast` with ids 0..3 for `<pad>`, `<bos>`, `<eos>`, `<unk>` and one id per
        printable ASCII character after them. Encoding prepends `<bos>`; decoding joins characters without
        spaces.

    Example:
        >>> tok = build_tiny_tokenizer()
        >>> tok.decode(tok("\\\\boxed{42}")["input_ids"], skip_special_tokens=True)
        '\\\\boxed{42}'
    """
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *CHARACTERS))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # One token per character, the space and newline included.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"(?m)."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def build_tiny_model(
    seed: int = 0,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    head_dim: int = 64,
    intermediate_size: int = 128,
    max_position_embeddings: int = 512,
    initializer_range: float = 0.02,
    tie_word_embeddings: bool = False,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Build the tiny random-weight causal LM and its tokenizer.

    Args:
        seed: seeds the weight initialization, so equal seeds give equal weights.
        hidden_size, num_layers, num_heads, head_dim, intermediate_size: the Llama shape. Keep head_dim at 32
            or more if vLLM is to load the model.
        max_position_embeddings: the longest prompt plus completion the model (and vLLM) will accept.
        initializer_range: std of the random weights; larger values give peakier next-token distributions.
        tie_word_embeddings: share the input embedding with the output head.

    Returns:
        `(model, tokenizer)`, the model in float32, eval mode, on the CPU.

    Example:
        >>> model, tok = build_tiny_model(seed=0)
        >>> model.config.vocab_size == len(tok)
        True
    """
    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        initializer_range=initializer_range,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()  # type: ignore[no-untyped-call]
    return model, tokenizer


def save_tiny_model(directory: str | Path, seed: int = 0, **model_kwargs: Any) -> Path:
    """Build the tiny model and write it, with its tokenizer, to `directory` via `save_pretrained`.

    Args:
        directory: the folder to write (created if missing).
        seed: passed to `build_tiny_model`.
        **model_kwargs: passed to `build_tiny_model`.

    Returns:
        The folder, loadable with `AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained`
        and by `vllm.LLM(model=...)`.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    model, tokenizer = build_tiny_model(seed, **model_kwargs)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
