"""CTC over the LLM's own vocabulary, read through the LLM's input embeddings.

The adapter's output frames live in the LLM's input-embedding space. Scoring a frame against the (frozen) embedding
rows of the LLM's tokens gives CTC logits over the LLM vocabulary (cosine similarity times a learnt scale, plus a learnt
blank vector), so that training the adapter with CTC pulls each frame towards the embedding of the token spoken there:
the LLM then receives frames that already look like its own tokens (the idea of LegoSLM, arXiv 2505.11352, and of
CTC-based connectors, 2309.08876, here as a warm start of an ordinary frame-stacking adapter). The vocabulary is a
subset of the LLM's token ids (those that occur in the training text), which keeps the output layer small.
"""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingCTCHead(nn.Module):
    """Logits ``(..., 1 + V')``: index 0 is blank, index ``k >= 1`` the LLM token ``token_ids[k - 1]``.

    Args:
        token_ids: (V',) LLM token ids the head can emit.
        dim: width of the frames (the LLM width).
        scale: initial logit scale of the cosine similarities.
    """

    def __init__(self, token_ids, dim: int, scale: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("token_ids", torch.as_tensor(token_ids, dtype=torch.long), persistent=True)
        self.blank = nn.Parameter(torch.randn(dim) * 0.02)
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, frames: torch.Tensor, embeddings: torch.Tensor | None = None,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """frames (..., D), and ``embeddings`` (V, D) the LLM's input embedding matrix or ``rows`` (V', D) its rows
        of ``token_ids`` -> (..., 1 + V') logits."""
        if rows is None:
            rows = embeddings[self.token_ids]
        table = torch.cat([self.blank[None].to(rows.dtype), rows], 0)  # (1+V', D)
        table = nn.functional.normalize(table.float(), dim=-1)
        frames = nn.functional.normalize(frames.float(), dim=-1)
        return self.scale * frames @ table.T

    def greedy(self, logits: torch.Tensor, length: int | None = None) -> list[int]:
        """Best-path CTC decoding of (T, 1 + V') logits: repeated labels merged, blanks removed, as LLM token ids."""
        best = logits[:length].argmax(-1).tolist()
        out, prev = [], 0
        for k in best:
            if k != prev and k != 0:
                out.append(int(self.token_ids[k - 1]))
            prev = k
        return out
