"""Fixtures shared by every stage's tests: real TTS audio and a small mini corpus on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory) -> Path:
    """A 40-utterance mini corpus (train/dev/test cuts with engine word times and entities)."""
    from jstip.corpora.mini import prepare_mini

    out = tmp_path_factory.mktemp("mini")
    prepare_mini(out, num_utterances=40, seed=0, num_jobs=1, progress=False)
    return out


@pytest.fixture(scope="session")
def tts_cuts_dir(tmp_path_factory) -> Path:
    """Six sentences spoken by three voices of two engines, with entities: OUT/cuts.jsonl.gz."""
    from jstip.tts.corpus import synthesize_items

    out = tmp_path_factory.mktemp("tts")
    text = "Take 20 mg of atorvastatin daily, Dr. Smith said."
    items = [
        {"id": "med-1", "text": text, "voice": "espeak:en-us+f3@160",
         "entities": [{"text": "atorvastatin", "category": "drug", "start": 14, "end": 26}]},
        {"id": "med-2", "text": "The colonoscopy showed no evidence of acute appendicitis.",
         "voice": "festival:kal_diphone",
         "entities": [{"text": "colonoscopy", "category": "procedure", "start": 4, "end": 15},
                      {"text": "acute appendicitis", "category": "condition", "start": 38, "end": 56}]},
        {"id": "gen-1", "text": "The quick brown fox jumps over the lazy dog.", "voice": "espeak:en-gb-scotland+m3@190"},
        {"id": "gen-2", "text": "Our flight to Boston was delayed by 3 hours, so we waited.",
         "voice": "espeak:en-us+m1@175"},
        {"id": "gen-3", "text": "Please send the report to Anna by Friday.", "voice": "festival:cmu_us_slt_arctic_hts"},
        {"id": "gen-4", "text": "I will meet you at the station at noon.", "voice": "espeak:en-029+f2@150"},
    ]
    synthesize_items(items, out, progress=False)
    return out


@pytest.fixture(scope="session")
def make_librispeech_tree(tmp_path_factory):
    """A factory: ``make({part: {utt_id: TEXT}})`` writes a LibriSpeech-shaped tree and returns the folder holding
    ``LibriSpeech/``: ``<part>/<spk>/<chapter>/<utt>.flac`` + ``<spk>-<chapter>.trans.txt``, spoken by espeak-ng with
    one voice per speaker."""
    import soundfile as sf

    from jstip.tts import synthesize

    voices = ["espeak:en-us+m2@170", "espeak:en-us+f3@160", "espeak:en-gb-x-rp+m3@165", "espeak:en-us+f2@175"]

    def make(parts: dict[str, dict[str, str]]) -> Path:
        root = tmp_path_factory.mktemp("ls") / "LibriSpeech"
        speakers: list[str] = []
        for part, utts in parts.items():
            by_chapter: dict[Path, list[str]] = {}
            for utt, text in utts.items():
                spk, chapter, _ = utt.split("-")
                if spk not in speakers:
                    speakers.append(spk)
                d = root / part / spk / chapter
                d.mkdir(parents=True, exist_ok=True)
                syn = synthesize(text.lower(), voices[speakers.index(spk) % len(voices)])
                sf.write(d / f"{utt}.flac", syn.audio, 16000)
                by_chapter.setdefault(d / f"{spk}-{chapter}.trans.txt", []).append(f"{utt} {text}")
            for path, lines in by_chapter.items():
                path.write_text("\n".join(lines) + "\n")
        return root.parent

    return make
