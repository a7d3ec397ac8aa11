"""Voice lists: the default pool, and the held-out voices of the mini corpus."""

from __future__ import annotations

import random
import zlib

from jstip.tts.base import Voice
from jstip.tts.espeak import ENGLISH_VOICES, VARIANTS
from jstip.tts.festival import VOICES as FESTIVAL_VOICES

ESPEAK_RATES = [140, 160, 175, 195, 215]  # words per minute
FESTIVAL_STRETCH = [90, 100, 115]  # percent duration

DEFAULT_VOICES = [f"espeak:{v}+{var}" for v in ENGLISH_VOICES for var in VARIANTS] + [
    f"festival:{v}" for v in FESTIVAL_VOICES
]

# Held-out accents for the mini corpus: no test (dev) voice is ever heard in training.
TEST_ACCENTS = ("en-029", "en-gb-x-gbcwmd")
DEV_ACCENTS = ("en-gb-x-gbclan",)
TEST_FESTIVAL = ("cmu_us_slt_arctic_hts",)


def split_of_voice(voice: Voice) -> str:
    """Which mini-corpus split a voice belongs to: ``train``, ``dev`` or ``test``."""
    if voice.engine == "festival":
        return "test" if voice.name in TEST_FESTIVAL else "train"
    accent = voice.name.split("+")[0]
    if accent in TEST_ACCENTS:
        return "test"
    if accent in DEV_ACCENTS:
        return "dev"
    return "train"


def voices_for_split(split: str) -> list[Voice]:
    return [v for v in (Voice.parse(s) for s in DEFAULT_VOICES) if split_of_voice(v) == split]


def pick_voice(item_id: str, voices: list[Voice], seed: int = 0) -> Voice:
    """A deterministic voice and speaking rate for an item (stable across runs and processes)."""
    rng = random.Random(zlib.crc32(f"{seed}:{item_id}".encode()))
    voice = voices[rng.randrange(len(voices))]
    if voice.rate is not None:
        return voice
    rate = rng.choice(ESPEAK_RATES if voice.engine == "espeak" else FESTIVAL_STRETCH)
    return Voice(voice.engine, voice.name, rate)
