"""A tiny random Whisper (Hugging Face folder) and a CTranslate2 ``model.bin`` writer for it, for the reader tests."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

DTYPE_IDS = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3,
             np.dtype("float16"): 4}


def tiny_whisper(seed: int = 0, d_model: int = 32, layers: int = 2, heads: int = 2, vocab: int = 120):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(vocab_size=vocab, num_mel_bins=80, d_model=d_model, encoder_layers=layers,
                           decoder_layers=layers, encoder_attention_heads=heads, decoder_attention_heads=heads,
                           encoder_ffn_dim=4 * d_model, decoder_ffn_dim=4 * d_model, max_source_positions=1500,
                           max_target_positions=64, decoder_start_token_id=vocab - 2, eos_token_id=vocab - 3,
                           pad_token_id=vocab - 3, bos_token_id=vocab - 3)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # k projections have no bias in Whisper; give the others non-zero values to test the split
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    return model


def write_ctranslate2(model, path: Path, dtype=np.float16) -> Path:
    """Write a Hugging Face Whisper as CTranslate2's WhisperSpec (binary version 6), fused q/k/v as CT2 stores them."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    cfg = model.config
    out: dict[str, np.ndarray] = {}

    def lin(dst, src, bias=True):
        out[f"{dst}/weight"] = sd[f"{src}.weight"]
        if bias:
            out[f"{dst}/bias"] = sd[f"{src}.bias"]

    def norm(dst, src):
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def fused(dst, src, parts):
        out[f"{dst}/weight"] = np.concatenate([sd[f"{src}.{p}.weight"] for p in parts])
        out[f"{dst}/bias"] = np.concatenate([sd.get(f"{src}.{p}.bias", np.zeros(cfg.d_model, np.float32))
                                             for p in parts])

    lin("encoder/conv1", "model.encoder.conv1")
    lin("encoder/conv2", "model.encoder.conv2")
    out["encoder/position_encodings/encodings"] = sd["model.encoder.embed_positions.weight"]
    out["encoder/num_heads"] = np.array(cfg.encoder_attention_heads, dtype=np.int16)
    for i in range(cfg.encoder_layers):
        s, d = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        norm(f"{d}/self_attention/layer_norm", f"{s}.self_attn_layer_norm")
        fused(f"{d}/self_attention/linear_0", f"{s}.self_attn", ["q_proj", "k_proj", "v_proj"])
        lin(f"{d}/self_attention/linear_1", f"{s}.self_attn.out_proj")
        norm(f"{d}/ffn/layer_norm", f"{s}.final_layer_norm")
        lin(f"{d}/ffn/linear_0", f"{s}.fc1")
        lin(f"{d}/ffn/linear_1", f"{s}.fc2")
    norm("encoder/layer_norm", "model.encoder.layer_norm")
    out["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    out["decoder/position_encodings/encodings"] = sd["model.decoder.embed_positions.weight"]
    out["decoder/num_heads"] = np.array(cfg.decoder_attention_heads, dtype=np.int16)
    for i in range(cfg.decoder_layers):
        s, d = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        norm(f"{d}/self_attention/layer_norm", f"{s}.self_attn_layer_norm")
        fused(f"{d}/self_attention/linear_0", f"{s}.self_attn", ["q_proj", "k_proj", "v_proj"])
        lin(f"{d}/self_attention/linear_1", f"{s}.self_attn.out_proj")
        norm(f"{d}/attention/layer_norm", f"{s}.encoder_attn_layer_norm")
        lin(f"{d}/attention/linear_0", f"{s}.encoder_attn.q_proj")
        fused(f"{d}/attention/linear_1", f"{s}.encoder_attn", ["k_proj", "v_proj"])
        lin(f"{d}/attention/linear_2", f"{s}.encoder_attn.out_proj")
        norm(f"{d}/ffn/layer_norm", f"{s}.final_layer_norm")
        lin(f"{d}/ffn/linear_0", f"{s}.fc1")
        lin(f"{d}/ffn/linear_1", f"{s}.fc2")
    norm("decoder/layer_norm", "model.decoder.layer_norm")

    def string(f, text):
        raw = text.encode() + b"\0"
        f.write(struct.pack("<H", len(raw)) + raw)

    path = Path(path)
    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6))
        string(f, "WhisperSpec")
        f.write(struct.pack("<I", 3))
        f.write(struct.pack("<I", len(out)))
        for name, value in sorted(out.items()):
            value = np.asarray(value)
            if value.dtype == np.float32 and value.ndim > 0:
                value = value.astype(dtype)
            string(f, name)
            f.write(struct.pack("<B", value.ndim) + b"".join(struct.pack("<I", n) for n in value.shape))
            f.write(struct.pack("<B", DTYPE_IDS[value.dtype]) + struct.pack("<I", value.nbytes))
            f.write(value.tobytes())
        f.write(struct.pack("<I", 1))
        string(f, "decoder/projection/weight")
        string(f, "decoder/embeddings/weight")
    return path
