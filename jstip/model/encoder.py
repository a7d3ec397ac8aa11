"""The speech encoder: NeMo's mel preprocessor + (Fast)Conformer, built from sizes or taken from a ``.nemo`` model."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from jstip.audio import SAMPLE_RATE


class SpeechEncoder(nn.Module):
    """Waveform to encoder frames: NeMo ``AudioToMelSpectrogramPreprocessor`` then ``ConformerEncoder``.

    Attributes:
        frame_shift: seconds per output frame (window stride x subsampling factor).
        dim: width of the output frames.
    """

    def __init__(self, preprocessor: nn.Module, encoder: nn.Module, window_stride: float, subsampling_factor: int,
                 dim: int) -> None:
        super().__init__()
        self.preprocessor = preprocessor
        self.encoder = encoder
        self.frame_shift = window_stride * subsampling_factor
        self.dim = dim

    def forward(self, audio: torch.Tensor, audio_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """audio (S, T) float32 at 16 kHz, audio_lens (S,) -> frames (S, T_enc, D), lengths (S,)."""
        with torch.autocast(device_type=audio.device.type, enabled=False):
            mel, mel_lens = self.preprocessor(input_signal=audio.float(), length=audio_lens)  # (S, 80, T_mel)
        out, out_lens = self.encoder(audio_signal=mel, length=mel_lens)  # (S, D, T_enc)
        return out.transpose(1, 2), out_lens


def conformer_encoder(n_mels: int = 80, n_layers: int = 2, d_model: int = 64, n_heads: int = 4,
                      subsampling: str = "striding", subsampling_factor: int = 4, ff_expansion_factor: int = 2,
                      conv_kernel_size: int = 9, dropout: float = 0.1, window_stride: float = 0.01,
                      dither: float = 1e-5) -> SpeechEncoder:
    """A randomly initialised NeMo Conformer (``subsampling="dw_striding"``, factor 8 = FastConformer) on 80 log-mels
    with a 10 ms shift."""
    from nemo.collections.asr.modules import AudioToMelSpectrogramPreprocessor, ConformerEncoder

    pre = AudioToMelSpectrogramPreprocessor(sample_rate=SAMPLE_RATE, window_size=0.025, window_stride=window_stride,
                                            features=n_mels, pad_to=0, dither=dither)
    enc = ConformerEncoder(feat_in=n_mels, n_layers=n_layers, d_model=d_model, n_heads=n_heads,
                           subsampling=subsampling, subsampling_factor=subsampling_factor,
                           ff_expansion_factor=ff_expansion_factor, conv_kernel_size=conv_kernel_size,
                           dropout=dropout, dropout_pre_encoder=dropout, dropout_emb=0.0, dropout_att=dropout)
    return SpeechEncoder(pre, enc, window_stride, subsampling_factor, d_model)


def nemo_encoder(nemo_path: str | Path) -> SpeechEncoder:
    """The preprocessor and encoder of a user's ``.nemo`` ASR checkpoint (CTC, RNNT, ...); the decoder is dropped."""
    from nemo.collections.asr.models import ASRModel

    nemo_path = Path(nemo_path)
    if not nemo_path.is_file():
        raise FileNotFoundError(f".nemo checkpoint not found: {nemo_path}")
    model = ASRModel.restore_from(str(nemo_path), map_location="cpu")
    pre_cfg = model.cfg.preprocessor
    enc_cfg = model.cfg.encoder
    stride = float(pre_cfg.get("window_stride", 0.01))
    factor = int(enc_cfg.get("subsampling_factor", 4))
    return SpeechEncoder(model.preprocessor, model.encoder, stride, factor, int(enc_cfg.d_model))
