"""The TTS backend interface: 16 kHz mono audio plus the word times the engine itself reports.

Every backend maps the engine's words back to the words of the input text (``jstip.text.words``): an input word the
engine expands ("20" -> "twenty", "mg" -> "milligrams") still yields exactly one ``WordTime`` whose ``word`` is the
input word, spanning all the speech the engine made for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jstip.audio import SAMPLE_RATE



class SynthesisError(Exception):
    """The engine could not speak this text; the message is the reason written to ``rejected.jsonl``."""


@dataclass(frozen=True)
class Voice:
    """One voice of one engine at one speaking rate.

    Attributes:
        engine: backend name (``espeak``, ``festival``).
        name: the engine's voice name, with variant where the engine has them (``en-us+f3``).
        rate: speaking rate in words per minute (espeak) or a duration stretch in percent (festival), None = default.
    """

    engine: str
    name: str
    rate: int | None = None

    @property
    def speaker(self) -> str:
        """Speaker id used in manifests: the voice without its rate (the same voice at two rates is one speaker)."""
        return f"{self.engine}:{self.name}"

    @property
    def id(self) -> str:
        return self.speaker if self.rate is None else f"{self.speaker}@{self.rate}"

    @classmethod
    def parse(cls, spec: str) -> "Voice":
        """Parse ``engine:name[@rate]`` (e.g. ``espeak:en-us+f3@160``, ``festival:kal_diphone``)."""
        if ":" not in spec:
            raise ValueError(f"voice {spec!r} is not of the form engine:name[@rate], e.g. espeak:en-us+f3@160")
        engine, rest = spec.split(":", 1)
        rate = None
        if "@" in rest:
            rest, r = rest.rsplit("@", 1)
            rate = int(r)
        return cls(engine, rest, rate)


@dataclass
class WordTime:
    """One input word and where the engine spoke it (seconds from the start of the audio)."""

    word: str
    start: float
    end: float


@dataclass
class Synthesis:
    """What a backend returns for one text.

    Attributes:
        audio: (T,) float32 samples in [-1, 1], mono, at ``sampling_rate``.
        words: one entry per input word, in order, monotonic and non-overlapping, inside the audio.
    """

    audio: np.ndarray
    words: list[WordTime]
    sampling_rate: int = SAMPLE_RATE
    info: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sampling_rate


class TTSBackend:
    """Base class of TTS backends. Subclasses set ``engine`` and implement ``voices`` and ``synthesize``."""

    engine: str = ""

    def voices(self) -> list[Voice]:
        """Voices this engine offers here (rate None)."""
        raise NotImplementedError

    def synthesize(self, text: str, voice: Voice) -> Synthesis:
        """Speak ``text`` with ``voice``. Raises ``SynthesisError`` with a reason when it cannot."""
        raise NotImplementedError
