"""The adapter: encoder frames to LLM positions (frame stacking to the placeholder rate, optional context layers, MLP).

Stacking ``stack`` consecutive encoder frames gives one output per placeholder (Whisper's 20 ms x 4 = 80 ms; a x4
NeMo encoder's 40 ms x 2). ``layers > 0`` adds a small pre-norm Transformer over the stacked frames (a light version
of the Conformer / Q-Former connectors of SLAM-ASR, arXiv 2309.13963): with a frozen encoder, a frame-wise MLP sees
only 80 ms, and a little context lets the adapter recover words that an unseen speaker or accent blurs. In training
mode the adapter also masks ``time_masks`` random stretches of each stream's frames (SpecAugment's time masks on the
encoder output, each up to ``max_mask`` of the stream), which keeps the adapter from memorising the training voices.
"""

from __future__ import annotations

import torch
from torch import nn


class SpeechAdapter(nn.Module):
    """Stacked encoder frames -> (context layers) -> two-layer MLP to the LLM width.

    Args:
        encoder_dim: D_enc, width of the encoder output.
        llm_dim: D_llm, width of the LLM embeddings.
        stack: frames stacked into one output frame.
        hidden: hidden width of the MLP (the adapter's size knob; ~20M parameters in the paper).
        layers: Transformer layers over the stacked frames (0: a frame-wise MLP only).
        width: model width of those layers.
        time_masks / max_mask: SpecAugment-style time masks per stream in training mode (0: none).
    """

    def __init__(self, encoder_dim: int, llm_dim: int, stack: int = 2, hidden: int = 1024, layers: int = 0,
                 width: int = 384, time_masks: int = 0, max_mask: float = 0.1) -> None:
        super().__init__()
        self.stack = stack
        self.time_masks = int(time_masks)
        self.max_mask = float(max_mask)
        if layers > 0:
            self.in_proj = nn.Linear(encoder_dim * stack, width)
            layer = nn.TransformerEncoderLayer(width, max(1, width // 64), 4 * width, dropout=0.1, batch_first=True,
                                               norm_first=True)
            self.context = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            mlp_in = width
        else:
            self.in_proj, self.context = None, None
            mlp_in = encoder_dim * stack
        self.proj = nn.Sequential(nn.Linear(mlp_in, hidden), nn.GELU(), nn.Linear(hidden, llm_dim))

    def _mask(self, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        feats = feats.clone()
        for s in range(feats.shape[0]):
            n = int(lens[s])
            for _ in range(self.time_masks):
                width = int(torch.randint(0, max(1, int(self.max_mask * n)) + 1, ()).item())
                start = int(torch.randint(0, max(1, n - width) + 1, ()).item())
                feats[s, start:start + width] = 0
        return feats

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (S, T, D_enc), lens (S,) -> (S, ceil(T / stack), D_llm), output lengths (S,)."""
        if self.training and self.time_masks > 0:
            feats = self._mask(feats, lens)
        S, T, D = feats.shape
        pad = (-T) % self.stack
        if pad:
            feats = torch.nn.functional.pad(feats, (0, 0, 0, pad))
        feats = feats.reshape(S, (T + pad) // self.stack, D * self.stack)  # (S, T', k*D)
        out_lens = torch.div(lens + self.stack - 1, self.stack, rounding_mode="floor")
        if self.context is not None:
            x = self.in_proj(feats)  # (S, T', W)
            padding = torch.arange(x.shape[1], device=x.device)[None, :] >= out_lens[:, None]
            feats = nn.functional.gelu(self.context(x, src_key_padding_mask=padding))
        return self.proj(feats), out_lens
