"""The adapter: encoder frames to LLM positions (subsampling to 80 ms by frame stacking, then an MLP)."""

from __future__ import annotations

import torch
from torch import nn


class SpeechAdapter(nn.Module):
    """Stack ``stack`` consecutive encoder frames and project them to the LLM width with a two-layer MLP.

    With a x4 encoder on 10 ms features, ``stack=2`` gives one output per 80 ms (the JSTIP rate).

    Args:
        encoder_dim: D_enc, width of the encoder output.
        llm_dim: D_llm, width of the LLM embeddings.
        stack: frames stacked into one output frame.
        hidden: hidden width of the MLP (the adapter's size knob; ~20M parameters in the paper).
    """

    def __init__(self, encoder_dim: int, llm_dim: int, stack: int = 2, hidden: int = 1024) -> None:
        super().__init__()
        self.stack = stack
        self.proj = nn.Sequential(nn.Linear(encoder_dim * stack, hidden), nn.GELU(), nn.Linear(hidden, llm_dim))

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (S, T, D_enc), lens (S,) -> (S, ceil(T / stack), D_llm), output lengths (S,)."""
        S, T, D = feats.shape
        pad = (-T) % self.stack
        if pad:
            feats = torch.nn.functional.pad(feats, (0, 0, 0, pad))
        feats = feats.reshape(S, (T + pad) // self.stack, D * self.stack)  # (S, T', k*D)
        return self.proj(feats), torch.div(lens + self.stack - 1, self.stack, rounding_mode="floor")
