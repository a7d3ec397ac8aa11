"""The rendered-batch contract between the data pipeline (``jstip.data``) and the model (``jstip.model``).

Speech frames. Every speech span of an example becomes ``n`` placeholder positions, one per encoder output frame
(``frame_shift`` = 0.08 s by default, i.e. 1280 samples at 16 kHz). The rounding rule:

    n = max(1, floor(num_samples / samples_per_frame + 0.5))          # round half up, never zero

and the span's audio is cut or zero-padded at its end to exactly ``n * samples_per_frame`` samples. The spans of one
example are concatenated, in order, into one *stream*; a stream of ``N * samples_per_frame`` samples yields exactly
``N`` frames from the model (it trims or pads the encoder's last frame to ``N``). A stream therefore holds audio of
speech spans only: never audio of words that its example shows as text.

Scatter order. Speech positions of the batch, read in row-major order of ``(B, L)``, receive the frames of stream 0,
then stream 1, ..., each stream's frames in time order. So ``speech_mask.sum() == stream_frames.sum()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


IGNORE_INDEX = -100


@dataclass
class SpeechLMBatch:
    """One training/decoding batch. Shapes: B rows, L positions, S speech streams, T samples.

    Attributes:
        input_ids: (B, L) long. Token ids; speech positions hold ``placeholder_id`` (never embedded as a token);
            padding positions hold the pad id.
        speech_mask: (B, L) bool. True at speech placeholder positions.
        labels: (B, L) long. Hugging Face convention: the token id at positions whose token is a training target,
            ``IGNORE_INDEX`` elsewhere (speech positions, special/marker tokens, prompts, padding). The model shifts.
            ``labels != IGNORE_INDEX`` is the loss mask: 1 on text tokens only, plus the EOS that closes a
            transcript or text document (by default; ``RenderConfig.eos_in_loss``): without it as a target a model
            never learns to stop decoding.
        position_ids: (B, L) long. Restart at 0 at the first position of every packed document.
        document_ids: (B, L) long. Document index within the row (0, 1, ...); -1 on padding. Positions attend only
            to earlier positions with the same document id.
        audio: (S, T) float32. Speech streams, zero-padded to the longest.
        audio_lens: (S,) long. Real samples per stream (a multiple of samples_per_frame).
        stream_frames: (S,) long. Frames (= placeholder positions) per stream.
        span_frames: list (per stream) of lists of frame counts per span, in order (sums to stream_frames).
        example_ids: one id per document, in row-major order.
        cut_ids: the cut each document comes from (None for a text document), in the same order.
        tasks: the task of each document (``asr``, ``word_il``, ``segment_il``, ``mixed_il``, ``text``, ``tts_il``).
    """

    input_ids: torch.Tensor
    speech_mask: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    document_ids: torch.Tensor
    audio: torch.Tensor
    audio_lens: torch.Tensor
    stream_frames: torch.Tensor
    span_frames: list[list[int]] = field(default_factory=list)
    example_ids: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    cut_ids: list[str | None] = field(default_factory=list)

    @property
    def loss_mask(self) -> torch.Tensor:
        return self.labels != IGNORE_INDEX

    def to(self, device) -> "SpeechLMBatch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return SpeechLMBatch(**moved)

    def validate(self) -> None:
        """Check the invariants above; raises ValueError naming the broken one."""
        B, L = self.input_ids.shape
        for name in ("speech_mask", "labels", "position_ids", "document_ids"):
            if tuple(getattr(self, name).shape) != (B, L):
                raise ValueError(f"{name} has shape {tuple(getattr(self, name).shape)}, expected {(B, L)}")
        if int(self.speech_mask.sum()) != int(self.stream_frames.sum()):
            raise ValueError(
                f"{int(self.speech_mask.sum())} speech positions but {int(self.stream_frames.sum())} stream frames"
            )
        if bool((self.labels[self.speech_mask] != IGNORE_INDEX).any()):
            raise ValueError("a speech position carries a training label")
        if self.audio.shape[0] != self.audio_lens.shape[0] or self.audio_lens.shape[0] != self.stream_frames.shape[0]:
            raise ValueError("audio, audio_lens and stream_frames disagree on the number of streams")
