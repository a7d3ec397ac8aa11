"""benchmarks/salm_baseline.py: NeMo SALM built from our own parts (the real-size presets' path, at toy size): our
encoder and adapter modules, our LLM's weights, the same LoRA and the same trainable parameters, trained one step."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def test_salm_from_our_parts_trains_what_ours_trains(mini_corpus, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import salm_baseline as sb
    from train_throughput import render_batches

    from lhotse import CutSet

    from jstip.data.render import RenderConfig, add_special_tokens
    from jstip.model.build import build_speechlm
    from jstip.model.tokenizer import build_tokenizer
    from jstip.train.module import apply_lora, set_trainable

    cuts = CutSet.from_file(mini_corpus / "train" / "cuts.jsonl.gz").to_eager().subset(first=6)
    render = RenderConfig()
    tokenizer = build_tokenizer([c.supervisions[0].text for c in cuts], 256)
    add_special_tokens(tokenizer, render)
    torch.manual_seed(0)
    model = build_speechlm({"encoder": {"n_layers": 1, "d_model": 32, "n_heads": 2},
                            "llm": {"hidden_size": 32, "num_layers": 1, "intermediate_size": 64}}, tokenizer)
    lora = OmegaConf.create({"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    apply_lora(model, lora)
    set_trainable(model, ("adapter", "llm"), lora=True)
    model.encoder.eval()
    ours = {n for n, p in model.named_parameters() if p.requires_grad}

    salm = sb.build_salm(model.llm, tokenizer, tmp_path, model.adapter, encoder=sb.SALMEncoder(model.encoder),
                         lora=lora)
    sb.freeze_like_ours(salm, encoder_trains=False)
    theirs = {n for n, p in salm.named_parameters() if p.requires_grad}
    assert sum(p.numel() for n, p in salm.named_parameters() if n in theirs) == \
        sum(p.numel() for n, p in model.named_parameters() if n in ours)
    assert any("lora_" in n for n in theirs) and any("modality_adapter" in n for n in theirs)
    # The same LLM weights (a frozen base weight under LoRA, and the embeddings SALM keeps apart).
    q_ours = next(p for n, p in model.llm.named_parameters() if n.endswith("q_proj.base_layer.weight"))
    q_salm = next(p for n, p in salm.llm.named_parameters() if n.endswith("q_proj.base_layer.weight"))
    assert torch.equal(q_ours, q_salm)
    ours_embed = model.llm.get_input_embeddings().weight
    assert torch.equal(salm.embed_tokens.weight, ours_embed[:salm.embed_tokens.num_embeddings])
    assert salm.perception.encoder.inner is model.encoder and salm.perception.modality_adapter.inner is model.adapter

    settings = {"max_duration": 20.0, "max_row_tokens": 512, "pad_to_multiple": 8, "bucketing": False}
    asr = render_batches(cuts, tokenizer, {"asr": 1.0}, settings, render=render)
    batches = sb.salm_batches(salm, asr, {c.id: c for c in cuts}, tokenizer)
    assert sum(len(b["audio_lens"]) for b in batches) == len(cuts)
    salm.train()
    before = {n: p.detach().clone() for n, p in salm.named_parameters() if n in theirs}
    sb.salm_step_fn(salm, torch.device("cpu"), torch.float32)(batches[0])
    moved = {n for n, p in salm.named_parameters() if n in theirs and not torch.equal(p, before[n])}
    assert any("modality_adapter" in n for n in moved) and any("lora_" in n for n in moved)
    assert not model.encoder.training and all(not p.requires_grad for p in model.encoder.parameters())
