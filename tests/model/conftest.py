"""A tiny speech-LLM (NeMo Conformer + adapter + random Llama), a trained toy tokenizer, and batches built with the
data pipeline's own renderer and collate (``jstip.data``), on noise audio: these tests check tensor plumbing, where
what the audio says does not matter."""

from __future__ import annotations

import pytest
import torch

from model_helpers import TEXTS


@pytest.fixture(scope="session")
def tokenizer():
    from jstip.data.render import RenderConfig, add_special_tokens
    from jstip.model.tokenizer import build_tokenizer

    tok = build_tokenizer(TEXTS * 3, 300)
    add_special_tokens(tok, RenderConfig())
    return tok


@pytest.fixture(scope="session")
def renderer(tokenizer):
    from jstip.data.render import Renderer

    return Renderer(tokenizer)


@pytest.fixture()
def model(tokenizer):
    from jstip.model.build import build_speechlm

    torch.manual_seed(0)
    torch.set_num_threads(1)
    m = build_speechlm({"encoder": {"dropout": 0.0}, "llm": {}, "adapter": {"hidden": 64}}, tokenizer)
    return m.eval()
