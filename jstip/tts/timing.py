"""Word-time helpers shared by the TTS backends."""

from __future__ import annotations

import numpy as np

FRAME = 0.005  # seconds per energy frame
SILENCE_DB = 45.0  # a frame is silent when it is this far below the loudest frame of the utterance


def tighten_to_voiced(audio: np.ndarray, sampling_rate: int, times: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Move each word's start forward and end back to the first/last non-silent 5 ms frame inside it.

    Engines report where a word *begins* and where the next one (or a pause) begins, so a word next to a pause
    otherwise swallows the silence. Words whose whole span is silent keep their times. The result stays monotonic,
    non-overlapping and inside the audio.

    Args:
        audio: (T,) samples.
        sampling_rate: samples per second.
        times: (start, end) in seconds per word, monotonic.
    """
    hop = max(1, int(FRAME * sampling_rate))
    n = len(audio) // hop
    duration = len(audio) / sampling_rate
    if n == 0:
        return [(min(s, duration), min(e, duration)) for s, e in times]
    frames = audio[: n * hop].reshape(n, hop).astype(np.float64)
    energy_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    voiced = energy_db > (energy_db.max() - SILENCE_DB)
    out = []
    prev_end = 0.0
    for start, end in times:
        start, end = max(start, prev_end), min(max(end, start), duration)
        a, b = int(start / FRAME), min(n, int(np.ceil(end / FRAME)))
        idx = np.flatnonzero(voiced[a:b]) if b > a else np.array([], dtype=int)
        if idx.size:
            new_start = max(start, (a + idx[0]) * FRAME)
            new_end = min(end, (a + idx[-1] + 1) * FRAME)
            if new_end > new_start:
                start, end = new_start, new_end
        out.append((round(float(start), 4), round(float(end), 4)))
        prev_end = end
    return out
