"""A pretrained LLM's embeddings are never shrunk to fit a tokenizer that is not its own."""

from __future__ import annotations

import pytest


def test_shrinking_a_pretrained_llm_is_refused_with_the_fix():
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    from jstip.model.llm import resize_for_tokenizer, tiny_llm

    llm = tiny_llm(100, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=32, seed=0)
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({f"w{i}": i for i in range(40)},
                                                                              unk_token="w0")))
    with pytest.raises(ValueError, match="has 40 tokens but the pretrained LLM has 100 embedding rows"):
        resize_for_tokenizer(llm, tok, pretrained=True)
    assert llm.get_input_embeddings().weight.shape[0] == 100
    resize_for_tokenizer(llm, tok)  # a model built for this tokenizer (tiny, random) may be sized to it
    assert llm.get_input_embeddings().weight.shape[0] == 40
