"""Helpers of the model tests: sentences, noise audio, and documents of every shape rendered by ``jstip.data``."""

from __future__ import annotations

import numpy as np

TEXTS = ["the patient was given metformin twice daily", "good morning everyone", "stop the bleeding now",
         "please schedule a follow up visit next tuesday", "the surgeon reviewed the scan with the patient"]


def noise(seconds: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


def make_docs(renderer):
    """Documents of every shape: ASR, word-level (3 speech spans), segment-level (2 spans), text-only. Returns
    (docs, streams)."""
    from jstip.data.render import speech_stream

    docs, streams = [], []
    a = noise(1.3, 0)
    docs.append(renderer.asr("asr0", TEXTS[0], 0.0, 1.3))
    streams.append(speech_stream(a, docs[-1].spans)[0])
    words = TEXTS[3].split()  # 8 words, 0.25 s each
    segs = []
    for i, w in enumerate(words):
        segs.append({"modality": "speech" if i % 2 == 0 else "text", "text": w, "start": 0.25 * i,
                     "end": 0.25 * (i + 1), "first": i})
    segs = segs[:7]  # ends in text? index 6 is speech; make it end in text
    segs = segs[:6]
    word_ex = {"id": "word0", "units": "word", "segments": segs}
    docs.append(renderer.interleaved(word_ex, task="word_il"))
    streams.append(speech_stream(noise(2.0, 1), docs[-1].spans)[0])
    seg_ex = {"id": "seg0", "units": "segment", "segments": [
        {"modality": "speech", "text": "the surgeon", "start": 0.0, "end": 0.61, "first": 0},
        {"modality": "text", "text": "reviewed the scan", "start": 0.61, "end": 1.4, "first": 2},
        {"modality": "speech", "text": "with the", "start": 1.4, "end": 1.93, "first": 5},
        {"modality": "text", "text": "patient", "start": 1.93, "end": 2.4, "first": 7}]}
    docs.append(renderer.interleaved(seg_ex, task="segment_il"))
    streams.append(speech_stream(noise(2.4, 2), docs[-1].spans)[0])
    docs.append(renderer.text("text0", [TEXTS[1], TEXTS[2]]))
    streams.append(None)
    docs.append(renderer.asr("asr1", TEXTS[2], 0.0, 0.7))
    streams.append(speech_stream(noise(0.7, 3), docs[-1].spans)[0])
    return docs, streams
