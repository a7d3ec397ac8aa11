from __future__ import annotations

import pytest
import torch

from model_helpers import TEXTS


def test_tokenizer_trains_saves_and_loads(tmp_path):
    from jstip.model.tokenizer import build_tokenizer, load_tokenizer

    tok = build_tokenizer(TEXTS * 3, 300, tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    text = "the patient was given metformin"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.decode(again(text)["input_ids"]) == text
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert getattr(again, name) is not None


def test_added_special_tokens_resize_embeddings():
    from jstip.data.render import RenderConfig, add_special_tokens
    from jstip.model.llm import resize_for_tokenizer, tiny_llm
    from jstip.model.tokenizer import build_tokenizer

    tok = build_tokenizer(TEXTS, 280)
    llm = tiny_llm(len(tok))
    n = len(tok)
    add_special_tokens(tok, RenderConfig())
    assert len(tok) == n + 3
    resize_for_tokenizer(llm, tok)
    assert llm.get_input_embeddings().weight.shape[0] == len(tok)
    assert llm(torch.tensor([[tok.convert_tokens_to_ids("<speech>")]])).logits.shape[-1] == len(tok)


def test_adapter_rate_mismatch_is_an_error(tmp_path):
    from jstip.model.build import build_speechlm
    from jstip.model.tokenizer import build_tokenizer

    tok = build_tokenizer(TEXTS, 280)
    with pytest.raises(ValueError, match="model.adapter.stack"):
        build_speechlm({"encoder": {"n_layers": 1}, "adapter": {"stack": 3}}, tok)


@pytest.mark.slow
def test_smollm2_gguf_loads_and_speaks():
    from jstip.model.llm import load_gguf_llm, smollm2_gguf_path
    from jstip.model.tokenizer import load_tokenizer

    path = smollm2_gguf_path()
    tok = load_tokenizer(path)
    llm = load_gguf_llm(path).eval()
    assert llm.config.hidden_size == 576
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = llm.generate(ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])
