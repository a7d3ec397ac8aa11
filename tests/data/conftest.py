"""Real TTS cuts (espeak-ng through jstip.tts, engine word times), broken variants, and a tiny BPE tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from lhotse import CutSet, fastcopy
from lhotse.supervision import AlignmentItem

SENTENCES = [
    ("d0", "The patient was given metformin twice daily. Her glucose improved after two weeks.", ["metformin"]),
    ("d1", "Doctor Alvarez reviewed her chest scan, then ordered another biopsy.", ["Alvarez", "biopsy"]),
    ("d2", "Please schedule a follow up visit next Tuesday morning.", []),
    ("d3", "Amoxicillin was stopped on Monday; cefalexin was started instead.", ["Amoxicillin", "cefalexin"]),
    ("d4", "Nurse Patel checked his blood pressure twice this morning.", ["Patel"]),
    ("d5", "Good morning everyone.", []),
    ("d6", "Stop.", []),
]
DOMAIN_TEXT = [
    "Lisinopril lowers blood pressure.",
    "Warfarin needs regular blood tests.",
    "The cardiologist ordered an echocardiogram.",
    "Insulin doses were adjusted before meals.",
    "Atorvastatin reduces cholesterol over several months.",
    "The surgeon reviewed the scan with the patient.",
]
VOICES = ["espeak:en-us+f3@160", "espeak:en-gb-x-rp+f2@175", "espeak:en-us+m1@140"]


def _items():
    items = []
    for i, (sid, text, ents) in enumerate(SENTENCES):
        entities = [{"text": e, "category": "term", "start": text.index(e), "end": text.index(e) + len(e)}
                    for e in ents]
        items.append({"id": sid, "text": text, "entities": entities, "voice": VOICES[i % len(VOICES)]})
    return items


@pytest.fixture(scope="session")
def tts_cuts(tmp_path_factory) -> CutSet:
    from jstip.tts.corpus import synthesize_items

    out = tmp_path_factory.mktemp("data_tts")
    for _ in range(3):
        # espeak-ng occasionally reports word events out of order for one item; a second try speaks it.
        cuts = synthesize_items(_items(), out, progress=False)
        if len(cuts) == len(SENTENCES):
            break
        (out / "rejected.jsonl").unlink(missing_ok=True)
    cuts = CutSet.from_file(out / "cuts.jsonl.gz").to_eager()
    assert len(cuts) == len(SENTENCES), "the TTS engine failed on a test sentence"
    return cuts


@pytest.fixture(scope="session")
def tokenizer_factory():
    from jstip.data.toy_tokenizer import toy_tokenizer

    texts = [s for _, s, _ in SENTENCES] + DOMAIN_TEXT
    return lambda: toy_tokenizer(texts * 2, vocab_size=300)


@pytest.fixture()
def tokenizer(tokenizer_factory):
    return tokenizer_factory()


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "domain.txt"
    path.write_text("\n".join(DOMAIN_TEXT) + "\n\n")
    return path


@pytest.fixture(scope="session")
def broken_cuts(tts_cuts) -> dict:
    c = tts_cuts["d2"]
    sup = c.supervisions[0]
    ali = sup.alignment["word"]
    wrong = list(ali)
    wrong[1] = AlignmentItem(symbol="WRONG", start=ali[1].start, duration=ali[1].duration)
    no_audio = fastcopy(c, id="no_audio", recording=fastcopy(
        c.recording, id="no_audio", sources=[fastcopy(c.recording.sources[0], source="/nonexistent/x.flac")]))
    return {
        "no_alignment": fastcopy(c, id="no_alignment", supervisions=[fastcopy(sup, alignment=None)]),
        "wrong_word": fastcopy(c, id="wrong_word", supervisions=[fastcopy(sup, alignment={"word": wrong})]),
        "single_word": tts_cuts["d6"],
        "no_audio": no_audio,
    }
