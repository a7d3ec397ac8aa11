"""Fixtures for the align tests: real TTS audio written to disk as lhotse cuts with the engine's word times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from lhotse.supervision import AlignmentItem

SENTENCES = [
    "The patient took 20 milligrams of atorvastatin daily.",
    "She walked to the market, and bought three apples.",
    "Please call the doctor before noon tomorrow!",
]
VOICES = ["espeak:en-us+m1@160", "espeak:en-gb-scotland+f2@195", "festival:kal_diphone"]


def make_cut(folder: Path, cut_id: str, audio: np.ndarray, text: str, words=None, audio_path: Path | None = None):
    """A MonoCut over a 16 kHz flac written to ``folder`` (or pointing at ``audio_path``), one supervision."""
    path = audio_path or folder / f"{cut_id}.flac"
    if audio_path is None:
        sf.write(path, audio, 16000)
    duration = round(len(audio) / 16000, 4)
    rec = Recording.from_dict({
        "id": cut_id, "sources": [{"type": "file", "channels": [0], "source": str(path)}],
        "sampling_rate": 16000, "num_samples": len(audio), "duration": duration,
    })
    alignment = None
    if words is not None:
        alignment = {"word": [AlignmentItem(w.word, round(w.start, 4), round(w.end - w.start, 4)) for w in words]}
    sup = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0, duration=duration, channel=0, text=text,
                             language="en", speaker="spk", alignment=alignment)
    return MonoCut(id=cut_id, start=0.0, duration=duration, channel=0, recording=rec, supervisions=[sup])


@pytest.fixture(scope="session")
def cut_maker():
    """``make_cut`` as a fixture (test folders are not packages)."""
    return make_cut


@pytest.fixture(scope="session")
def tts_cuts(tmp_path_factory) -> tuple[Path, CutSet]:
    """Nine synthesized utterances (3 sentences x 3 voices, two engines) with engine word times, on disk."""
    from jstip.tts import synthesize

    folder = tmp_path_factory.mktemp("tts")
    cuts = []
    for v, voice in enumerate(VOICES):
        for s, text in enumerate(SENTENCES):
            syn = synthesize(text, voice)
            cuts.append(make_cut(folder, f"v{v}-s{s}", syn.audio, text, syn.words))
    cutset = CutSet.from_cuts(cuts)
    path = folder / "cuts.jsonl.gz"
    cutset.to_file(path)
    return path, cutset


@pytest.fixture(scope="session")
def bad_cuts(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Two good cuts and one cut per kind of bad input; returns the manifest and {id: expected reason fragment}."""
    from jstip.tts import synthesize

    folder = tmp_path_factory.mktemp("bad")
    a = synthesize("The patient took twenty milligrams of aspirin every morning.", "espeak:en-us+m3@160")
    b = synthesize("Hello there.", "espeak:en-us+f3@175")
    c = synthesize("The patient walked home.", "espeak:en-us+m1@175")
    cuts = [
        make_cut(folder, "good-1", a.audio, "The patient took twenty milligrams of aspirin every morning."),
        make_cut(folder, "good-2", c.audio, "The patient walked home."),
        make_cut(folder, "empty-text", a.audio, "   "),
        make_cut(folder, "unrelated-text", a.audio,
                 "Quickly jumping zebras vex sixty bold knights while a quartz sphinx judges."),
        make_cut(folder, "audio-too-short", b.audio,
                 "The committee will reconvene after the holidays to discuss the budget for the next fiscal year."),
        make_cut(folder, "unspellable-word", c.audio, "The 患者 walked home."),
        make_cut(folder, "missing-audio", c.audio, "The patient walked home.",
                 audio_path=folder / "does-not-exist.flac"),
    ]
    expected = {
        "empty-text": "empty transcript",
        "unrelated-text": "does not match the audio",
        "audio-too-short": "words/s",
        "unspellable-word": "患者",
        "missing-audio": "does-not-exist.flac",
    }
    path = folder / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path, expected
