"""A tiny byte-level BPE tokenizer trained in memory, for tests, benchmarks and smoke runs without a model hub."""

from __future__ import annotations

from typing import Iterable


def toy_tokenizer(texts: Iterable[str], vocab_size: int = 400):
    """A ``PreTrainedTokenizerFast`` (byte-level BPE, ``<s>``, ``</s>``, ``<pad>``, ``<unk>``) trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
