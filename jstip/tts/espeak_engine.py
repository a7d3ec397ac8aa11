"""libespeak-ng in a helper process that speaks every utterance from the same fresh state (standard library only).

Why a helper: libespeak-ng 1.51 carries state from one utterance to the next (its pitch-flutter phase is a
function-static counter that only grows, besides the wave generator's phase) and seeds libc's rand() from the clock.
Speaking one text twice in one process gives two slightly different waves, and a corpus spoken by a pool of workers
came out different on every run (only 132 of 300 mini test cuts had the same duration in two runs). Here a small
process initialises the engine once, never speaks itself, and forks one child per utterance: the child seeds rand()
from the request, speaks, sends back the samples, the engine's events and the phoneme count of each word, and exits.
The same text and voice therefore give the same samples whatever was spoken before, in any worker, in any run. A
child that crashes (an engine bug on some text) is reported as an error for that utterance, not a dead worker.

The helper is this file run as a script (``python espeak_engine.py``), so that it imports nothing but the standard
library and forks cheaply. Protocol, one request at a time: the parent writes a JSON line ``{"text", "voice", "rate",
"words", "seed"}``; the helper answers with an 8-byte little-endian length, a JSON header (``{"rate", "events",
"counts"}`` or ``{"error"}``), another 8-byte length and the int16 samples at the engine's rate.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import struct
import sys

EVENT_WORD = 1
"""Event types the parent reads in an answer's ``events``: a word starts (at its text position and sample)..."""
EVENT_PHONEME = 7
"""... and a phoneme starts (a name beginning with ``_`` is a pause)."""
_EVENT_LIST_TERMINATED = 0
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_PARAM_RATE = 1


class EngineError(Exception):
    """The engine could not speak this request; the message is the reason."""


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


class Engine:
    """The loaded, initialised library and the buffers its callback fills."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as e:
            raise EngineError(
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
            raise EngineError("espeak_Initialize failed: is espeak-ng-data installed (apt-get install espeak-ng)?")
        self.chunks: list[bytes] = []
        self.events: list[list] = []  # [type, text_position, sample, phoneme]
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: the library holds a raw pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, numsamples, events) -> int:
        if numsamples > 0:
            self.chunks.append(ctypes.string_at(wav, numsamples * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            phoneme = ev.id.string.decode("utf-8", "replace") if ev.type == EVENT_PHONEME else ""
            self.events.append([ev.type, ev.text_position, ev.sample, phoneme])
            i += 1
        return 0

    def speak(self, text: str, voice: str, rate: int, words: list[str]) -> tuple[dict, bytes]:
        """Speak ``text``; return the header (engine rate, events, phoneme count per word) and the int16 samples."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EngineError(f"espeak-ng has no voice {voice!r}; list them with: espeak-ng --voices=en")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        self.chunks, self.events = [], []
        data = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise EngineError(f"espeak_Synth failed with error {err}")
        if not self.chunks:
            raise EngineError("espeak-ng produced no audio for this text")
        counts = {w: self.phoneme_count(w) for w in dict.fromkeys(words)}
        return {"rate": self.rate, "events": self.events, "counts": counts}, b"".join(self.chunks)

    def phoneme_count(self, word: str) -> int:
        """How many phonemes espeak-ng makes of ``word`` on its own (the current voice)."""
        ptr = ctypes.c_char_p(word.encode("utf-8"))
        out = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, ord("|") << 8) or b""
        phones = out.decode("utf-8", "replace").replace(" ", "|").split("|")
        return max(1, len([p for p in phones if p.strip("'\",")]))


def frame(header: dict, samples: bytes = b"") -> bytes:
    raw = json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<Q", len(samples)) + samples


def read_frame(stream) -> tuple[dict, bytes]:
    """The reading side of :func:`frame`: (header, samples) from a binary ``stream``.

    Raises:
        EOFError: the stream ends before the frame does (the helper died).
    """
    def exactly(n: int) -> bytes:
        parts, left = [], n
        while left:
            chunk = stream.read(left)
            if not chunk:
                raise EOFError("the helper closed its output")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    header = json.loads(exactly(struct.unpack("<Q", exactly(8))[0]))
    return header, exactly(struct.unpack("<Q", exactly(8))[0])


def answer(engine: Engine, request: dict) -> bytes:
    """Speak one request in this process (the forked child does this); the framed answer."""
    ctypes.CDLL(None).srand(ctypes.c_uint(request["seed"]))
    try:
        header, samples = engine.speak(request["text"], request["voice"], request["rate"], request["words"])
    except EngineError as e:
        return frame({"error": str(e)})
    return frame(header, samples)


def answer_in_child(engine: Engine, request: dict) -> bytes:
    """Fork, let the child speak from the engine's untouched state, and return what it sent (or an error frame)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            msg = answer(engine, request)
            with os.fdopen(w, "wb") as f:
                f.write(msg)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) or os.WEXITSTATUS(status) != 0 or len(msg) < 16:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"
        return frame({"error": f"espeak-ng crashed on this text ({how})"})
    return msg


def serve(stdin=None, stdout=None) -> None:
    """The helper's loop: one JSON request line in, one framed answer out, until stdin closes."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    try:
        engine: Engine | None = Engine()
        failure = ""
    except EngineError as e:
        engine, failure = None, str(e)
    for line in stdin:
        request = json.loads(line)
        if engine is None:
            msg = frame({"error": failure})
        elif hasattr(os, "fork"):
            msg = answer_in_child(engine, request)
        else:  # no fork (Windows): spoken in this process, and the same text varies slightly from run to run
            msg = answer(engine, request)
        stdout.write(msg)
        stdout.flush()


if __name__ == "__main__":
    serve()
