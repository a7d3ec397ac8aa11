"""espeak-ng through libespeak-ng: audio plus the engine's own word events.

libespeak-ng in synchronous mode calls back with blocks of 22.05 kHz samples and the events of each block. A WORD event
carries the character position of the word in the input text and the sample at which the engine starts speaking it;
PHONEME events mark each phoneme, pauses included. A word runs from its WORD event to the first pause phoneme after it
(or the next word's start); the word's edges are then tightened to its voiced part by short-time energy, so that a
word before a pause does not swallow the silence. Every engine word is mapped back to the input word whose characters
contain its text position: "20" spoken as "twenty", or "mg" spoken letter by letter, is still one input word.

The library is process-global and not thread-safe; one process synthesises at a time (parallelism is by processes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from math import gcd

import numpy as np
from scipy.signal import resample_poly

from jstip.text import word_spans
from jstip.tts.base import SAMPLING_RATE, Synthesis, SynthesisError, TTSBackend, Voice, WordTime
from jstip.tts.timing import tighten_to_voiced

_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_PARAM_RATE = 1
_PARAM_WORDGAP = 7

# English voices that ship with Debian's espeak-ng-data, and its voice variants (espeak-ng-data/voices/!v).
ENGLISH_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt4"]


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _Lib:
    """The loaded library and the buffers its callback fills."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as e:
            raise SynthesisError(
                f"libespeak-ng not found ({e}); install it with: apt-get install espeak-ng libespeak-ng1"
            ) from e
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 500, None,
                                               _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if self.rate <= 0:
            raise SynthesisError("espeak_Initialize failed: is espeak-ng-data installed (apt-get install espeak-ng)?")
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, str]] = []  # (type, text_position, sample, phoneme)
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: the library holds a raw pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_audio(self, wav, numsamples, events) -> int:
        if numsamples > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            phoneme = ev.id.string.decode("utf-8", "replace") if ev.type == _EVENT_PHONEME else ""
            self.events.append((ev.type, ev.text_position, ev.sample, phoneme))
            i += 1
        return 0


_lib: _Lib | None = None


def _get_lib() -> _Lib:
    global _lib
    if _lib is None:
        _lib = _Lib()
    return _lib


class EspeakBackend(TTSBackend):
    """espeak-ng voices (``en-us``, ``en-gb-scotland``, ...) with variants (``en-us+f3``) at any rate (80-450 wpm)."""

    engine = "espeak"

    def voices(self) -> list[Voice]:
        return [Voice(self.engine, f"{v}+{var}") for v in ENGLISH_VOICES for var in VARIANTS]

    def synthesize(self, text: str, voice: Voice) -> Synthesis:
        spans = word_spans(text)
        if not spans:
            raise SynthesisError("empty text: nothing to speak")
        lib = _get_lib()
        with lib.lock:
            if lib.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise SynthesisError(f"espeak-ng has no voice {voice.name!r}; list them with: espeak-ng --voices=en")
            lib.lib.espeak_SetParameter(_PARAM_RATE, int(voice.rate or 175), 0)
            lib.chunks, lib.events = [], []
            data = text.encode("utf-8") + b"\0"
            err = lib.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != 0:
                raise SynthesisError(f"espeak_Synth failed with error {err}")
            chunks, events = lib.chunks, lib.events
        if not chunks:
            raise SynthesisError("espeak-ng produced no audio for this text")
        audio22 = np.concatenate(chunks).astype(np.float32) / 32768.0
        return _to_synthesis(text, spans, audio22, lib.rate, events)


def _to_synthesis(text, spans, audio, rate, events) -> Synthesis:
    n_in = len(audio)
    # Engine word starts and pause starts, in samples of the engine's rate.
    word_events = [(pos, sample) for typ, pos, sample, _ in events if typ == _EVENT_WORD]
    pause_starts = sorted(s for typ, _, s, ph in events if typ == _EVENT_PHONEME and ph.startswith("_"))
    if not word_events:
        raise SynthesisError("espeak-ng reported no word events (nothing speakable in the text)")
    # Character position (1-based, in characters) -> index of the input word that contains it.
    owner = []
    for pos, sample in word_events:
        c = pos - 1
        idx = next((i for i, s in enumerate(spans) if s.start <= c < s.end), None)
        if idx is None:  # events can point at the space before a word: take the next word
            idx = next((i for i, s in enumerate(spans) if s.start >= c), len(spans) - 1)
        owner.append((idx, sample))
    starts: dict[int, int] = {}
    for idx, sample in owner:
        starts.setdefault(idx, sample)
    missing = [spans[i].word for i in range(len(spans)) if i not in starts]
    if missing:
        raise SynthesisError(
            f"espeak-ng spoke nothing for word(s) {missing[:5]}: spell them out or remove them from the text"
        )
    bounds = [starts[i] for i in range(len(spans))]
    if any(b2 < b1 for b1, b2 in zip(bounds, bounds[1:])):
        raise SynthesisError("espeak-ng word events are out of order for this text (reordered by its normaliser)")
    ends = []
    for i, b in enumerate(bounds):
        nxt = bounds[i + 1] if i + 1 < len(bounds) else n_in
        pause = next((p for p in pause_starts if b < p < nxt), None)
        ends.append(pause if pause is not None else nxt)
    # Resample to 16 kHz and convert the times.
    g = gcd(SAMPLING_RATE, rate)
    audio16 = resample_poly(audio, SAMPLING_RATE // g, rate // g).astype(np.float32)
    np.clip(audio16, -1.0, 1.0, out=audio16)
    scale = 1.0 / rate
    raw = [(b * scale, e * scale) for b, e in zip(bounds, ends)]
    times = tighten_to_voiced(audio16, SAMPLING_RATE, raw)
    words = [WordTime(s.word, st, en) for s, (st, en) in zip(spans, times)]
    return Synthesis(audio16, words, SAMPLING_RATE, info={"engine": "espeak", "engine_rate": rate})
