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
from jstip.audio import SAMPLE_RATE
from jstip.tts.base import Synthesis, SynthesisError, TTSBackend, Voice, WordTime
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

# English voices that ship with Debian's espeak-ng-data ("en" is British English), and its voice variants (espeak-ng-data/voices/!v).
ENGLISH_VOICES = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
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
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
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
            return _to_synthesis(text, spans, audio22, lib.rate, events, lambda w: _phoneme_count(lib.lib, w))


def _phoneme_count(lib, word: str) -> int:
    """How many phonemes espeak-ng makes of ``word`` on its own (the current voice)."""
    ptr = ctypes.c_char_p(word.encode("utf-8"))
    out = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, ord("|") << 8) or b""
    return max(1, len([p for p in out.decode("utf-8", "replace").replace(" ", "|").split("|") if p.strip("'\",")]))


def _to_synthesis(text, spans, audio, rate, events, phoneme_count) -> Synthesis:
    n_in = len(audio)
    # Group phoneme events under the WORD event they follow: [owner input word, start sample, phoneme samples].
    groups: list[list] = []
    pause_starts: list[int] = []
    for typ, pos, sample, ph in events:
        if typ == _EVENT_WORD:
            if pos < 1:  # a closing WORD event at position 0 marks the end of the message, not a word
                continue
            c = pos - 1  # text_position counts characters from 1
            idx = next((i for i, s in enumerate(spans) if s.start <= c < s.end), None)
            if idx is None:  # an event can point at the space before a word: take the next word
                idx = next((i for i, s in enumerate(spans) if s.start >= c), len(spans) - 1)
            if groups and groups[-1][0] == idx:
                continue  # one input word spoken as several engine words ("2,000"): one group
            groups.append([idx, sample, []])
        elif typ == _EVENT_PHONEME and groups:
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
