"""Tokenizers for the LLM side: a byte-level BPE trained on the corpus (tiny LLMs), or a local HF folder / GGUF file."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

SPECIALS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}


def build_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path | None = None):
    """Train a byte-level BPE (``tokenizers``) on ``texts`` with ``<s>``, ``</s>``, ``<pad>``, ``<unk>``.

    Args:
        texts: training sentences.
        vocab_size: target vocabulary size (the byte alphabet and the specials included).
        out_dir: if given, the tokenizer is saved there as a Hugging Face tokenizer folder.

    Returns:
        A ``PreTrainedTokenizerFast``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("build_tokenizer: no text to train on")
    tok = Tokenizer(models.BPE(unk_token=SPECIALS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIALS)
    if out_dir is not None:
        hf.save_pretrained(str(out_dir))
    return hf


def load_tokenizer(path: str | Path):
    """A tokenizer from a local Hugging Face folder, or from a ``.gguf`` file (its embedded vocabulary)."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"tokenizer not found: {path} (give a Hugging Face folder or a .gguf file)")
    if path.suffix == ".gguf":
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return AutoTokenizer.from_pretrained(str(path))
