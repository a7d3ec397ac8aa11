"""TTS backends that return 16 kHz mono audio and the word times the engine itself reports."""

from __future__ import annotations

from jstip.tts.base import Synthesis, SynthesisError, TTSBackend, Voice, WordTime

_BACKENDS: dict[str, TTSBackend] = {}


def get_backend(engine: str) -> TTSBackend:
    """The backend for ``engine`` (``espeak`` or ``festival``), created once per process."""
    if engine not in _BACKENDS:
        if engine == "espeak":
            from jstip.tts.espeak import EspeakBackend

            _BACKENDS[engine] = EspeakBackend()
        elif engine == "festival":
            from jstip.tts.festival import FestivalBackend

            _BACKENDS[engine] = FestivalBackend()
        else:
            raise ValueError(f"unknown TTS engine {engine!r}: choose espeak or festival")
    return _BACKENDS[engine]


def synthesize(text: str, voice: str | Voice) -> Synthesis:
    """Speak ``text`` with ``voice`` (a ``Voice`` or ``engine:name[@rate]``); raises ``SynthesisError``."""
    if isinstance(voice, str):
        voice = Voice.parse(voice)
    return get_backend(voice.engine).synthesize(text, voice)


def default_voices() -> list[Voice]:
    """A varied default voice list: espeak-ng voices x variants at three rates, and festival's voices."""
    from jstip.tts.voices import DEFAULT_VOICES

    return [Voice.parse(v) for v in DEFAULT_VOICES]


__all__ = [
    "Synthesis", "SynthesisError", "TTSBackend", "Voice", "WordTime",
    "get_backend", "synthesize", "default_voices",
]
