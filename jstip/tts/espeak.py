"""espeak-ng through libespeak-ng: audio plus the engine's own word events.

libespeak-ng in synchronous mode calls back with blocks of 22.05 kHz samples and the events of each block. A WORD event
carries the character position of the word in the input text and the sample at which the engine starts speaking it;
PHONEME events mark each phoneme, pauses included. A word runs from its WORD event to the first pause phoneme after it
(or the next word's start); the word's edges are then tightened to its voiced part by short-time energy, so that a
word before a pause does not swallow the silence. Every engine word is mapped back to the input word whose characters
contain its text position: "20" spoken as "twenty", or "mg" spoken letter by letter, is still one input word.

The library keeps state from one utterance to the next, so it runs in a helper process (``espeak_engine.py``) that
speaks each utterance in a fresh fork: the same text and voice give the same audio in any worker and any run. One
helper per process that synthesises; requests to it are serialised by a lock (parallelism is by processes).
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import threading
import zlib
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from jstip.text import word_spans
from jstip.audio import SAMPLE_RATE
from jstip.tts.base import Synthesis, SynthesisError, TTSBackend, Voice, WordTime
from jstip.tts.espeak_engine import EVENT_PHONEME, EVENT_WORD, read_frame
from jstip.tts.timing import tighten_to_voiced

# English voices that ship with Debian's espeak-ng-data ("en" is British English), and its voice variants (espeak-ng-data/voices/!v).
ENGLISH_VOICES = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt4"]


class _Helper:
    """The helper process (started on first use, stopped when this process exits) and the pipe protocol to it."""

    def __init__(self) -> None:
        script = Path(__file__).with_name("espeak_engine.py")
        # -I: the helper needs the standard library only, whatever the user's environment variables say.
        self.proc = subprocess.Popen([sys.executable, "-I", str(script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0)
        self.lock = threading.Lock()

    def speak(self, text: str, voice: Voice, words: list[str]) -> tuple[dict, bytes]:
        seed = zlib.crc32(f"{voice.id}\n{text}".encode("utf-8"))
        request = {"text": text, "voice": voice.name, "rate": int(voice.rate or 175), "words": words, "seed": seed}
        with self.lock:
            try:
                self.proc.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
                header, samples = read_frame(self.proc.stdout)
            except (OSError, ValueError, EOFError) as e:
                raise SynthesisError(f"the espeak-ng helper process failed ({e}); "
                                     f"its exit code: {self.proc.poll()}") from e
        if "error" in header:
            raise SynthesisError(header["error"])
        return header, samples

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.stdout.close()


_helper: _Helper | None = None


def _get_helper() -> _Helper:
    global _helper
    if _helper is None or _helper.proc.poll() is not None:
        _helper = _Helper()
        atexit.register(_helper.close)
    return _helper


class EspeakBackend(TTSBackend):
    """espeak-ng voices (``en-us``, ``en-gb-scotland``, ...) with variants (``en-us+f3``) at any rate (80-450 wpm)."""

    engine = "espeak"

    def voices(self) -> list[Voice]:
        return [Voice(self.engine, f"{v}+{var}") for v in ENGLISH_VOICES for var in VARIANTS]

    def synthesize(self, text: str, voice: Voice) -> Synthesis:
        spans = word_spans(text)
        if not spans:
            raise SynthesisError("empty text: nothing to speak")
        header, samples = _get_helper().speak(text, voice, [s.word for s in spans])
        audio22 = np.frombuffer(samples, dtype="<i2").astype(np.float32) / 32768.0
        counts = header["counts"]
        return _to_synthesis(text, spans, audio22, header["rate"], header["events"], lambda w: counts[w])


def _to_synthesis(text, spans, audio, rate, events, phoneme_count) -> Synthesis:
    n_in = len(audio)
    # Group phoneme events under the WORD event they follow: [owner input word, start sample, phoneme samples].
    groups: list[list] = []
    pause_starts: list[int] = []
    for typ, pos, sample, ph in events:
        if typ == EVENT_WORD:
            if pos < 1:  # a closing WORD event at position 0 marks the end of the message, not a word
                continue
            c = pos - 1  # text_position counts characters from 1
            idx = next((i for i, s in enumerate(spans) if s.start <= c < s.end), None)
            if idx is None:  # an event can point at the space before a word: take the next word
                idx = next((i for i, s in enumerate(spans) if s.start >= c), len(spans) - 1)
            if groups and groups[-1][0] == idx:
                continue  # one input word spoken as several engine words ("2,000"): one group
            groups.append([idx, sample, []])
        elif typ == EVENT_PHONEME and groups:
            if ph.startswith("_"):
                pause_starts.append(sample)
            else:
                groups[-1][2].append(sample)
    # WORD events that no phoneme follows mark clause ends (at the last sample), not spoken words.
    groups = [g for g in groups if g[2]]
    if not groups:
        raise SynthesisError("espeak-ng reported no word events (nothing speakable in the text)")
    owners = [g[0] for g in groups]
    if owners != sorted(owners):
        raise SynthesisError("espeak-ng word events are out of order for this text (reordered by its normaliser)")
    # espeak-ng joins unstressed words to their neighbour ("on the" -> one WORD event): give a group all the input
    # words up to the next group's owner, and split its phonemes between them by their phoneme counts.
    starts = [0] * len(spans)
    for gi, (owner, gstart, phones) in enumerate(groups):
        first = 0 if gi == 0 else owner
        last = (groups[gi + 1][0] if gi + 1 < len(groups) else len(spans)) - 1
        members = list(range(first, last + 1))
        if len(members) == 1:
            starts[first] = gstart
            continue
        counts = [phoneme_count(spans[i].word) for i in members]
        total = sum(counts)
        gend = groups[gi + 1][1] if gi + 1 < len(groups) else n_in
        cum = 0
        for k, i in enumerate(members):
            if k == 0:
                starts[i] = gstart
            elif len(phones) >= len(members):
                b = min(max(round(cum / total * len(phones)), k), len(phones) - (len(members) - k))
                starts[i] = phones[b]
            else:
                starts[i] = gstart + (gend - gstart) * k // len(members)
            cum += counts[k]
    ends = []
    for i, b in enumerate(starts):
        nxt = starts[i + 1] if i + 1 < len(starts) else n_in
        pause = next((p for p in pause_starts if b < p < nxt), None)
        ends.append(pause if pause is not None else nxt)
    # Resample to 16 kHz and convert the times.
    g = gcd(SAMPLE_RATE, rate)
    audio16 = resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)
    np.clip(audio16, -1.0, 1.0, out=audio16)
    scale = 1.0 / rate
    raw = [(b * scale, e * scale) for b, e in zip(starts, ends)]
    times = tighten_to_voiced(audio16, SAMPLE_RATE, raw)
    words = [WordTime(s.word, st, en) for s, (st, en) in zip(spans, times)]
    return Synthesis(audio16, words, SAMPLE_RATE, info={"engine": "espeak", "engine_rate": rate})
