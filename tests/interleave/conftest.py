"""Real TTS cuts (espeak-ng via jstip.tts, engine word times) and broken variants of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from lhotse import CutSet, fastcopy
from lhotse.supervision import AlignmentItem

SENTENCES = [
    ("s0", "The patient was given metformin twice daily. Her glucose improved after two weeks.",
     [("metformin", "drug")]),
    ("s1", "Doctor Alvarez reviewed her chest scan, then ordered another biopsy.",
     [("Alvarez", "person"), ("biopsy", "procedure")]),
    ("s2", "Please schedule a follow up visit next Tuesday morning.", []),
    ("s3", "Amoxicillin was stopped on Monday; cefalexin was started instead.",
     [("Amoxicillin", "drug"), ("cefalexin", "drug")]),
    ("s4", "Good morning everyone.", []),
    ("s6", "Nurse Patel checked his blood pressure twice this morning.", [("Patel", "person")]),
    ("s5", "Stop.", []),  # a single word: ASR only
]


def _items():
    items = []
    for i, (sid, text, ents) in enumerate(SENTENCES):
        entities = []
        for etext, cat in ents:
            start = text.index(etext)
            entities.append({"text": etext, "category": cat, "start": start, "end": start + len(etext)})
        voice = ["espeak:en-us+f3@160", "espeak:en-gb-x-rp+f2@175", "espeak:en-us+m1@140"][i % 3]
        items.append({"id": sid, "text": text, "entities": entities, "voice": voice})
    return items


@pytest.fixture(scope="session")
def tts_dir(tmp_path_factory) -> Path:
    from jstip.tts.corpus import synthesize_items

    out = tmp_path_factory.mktemp("tts_cuts")
    for _ in range(3):
        # espeak-ng occasionally reports word events out of order for one item; a second try speaks it.
        cuts = synthesize_items(_items(), out, progress=False)
        if len(cuts) == len(SENTENCES):
            break
        (out / "rejected.jsonl").unlink(missing_ok=True)
    return out


@pytest.fixture(scope="session")
def tts_cuts(tts_dir) -> CutSet:
    cuts = CutSet.from_file(tts_dir / "cuts.jsonl.gz").to_eager()
    assert len(cuts) == len(SENTENCES), "the TTS engine failed on a test sentence"
    return cuts


def _with_sup(cut, **changes):
    sup = fastcopy(cut.supervisions[0], **changes)
    return fastcopy(cut, supervisions=[sup])


@pytest.fixture(scope="session")
def broken_cuts(tts_cuts) -> dict:
    """Cuts whose alignment cannot be used: none, wrong words, too few words, out-of-order times."""
    c = tts_cuts["s2"]
    ali = c.supervisions[0].alignment["word"]
    swapped = list(ali)
    swapped[1] = AlignmentItem(symbol="WRONG", start=ali[1].start, duration=ali[1].duration)
    backwards = list(ali)
    backwards[2] = AlignmentItem(symbol=ali[2].symbol, start=0.0, duration=0.05)
    return {
        "no_alignment": fastcopy(_with_sup(c, alignment=None), id="no_alignment"),
        "wrong_word": fastcopy(_with_sup(c, alignment={"word": swapped}), id="wrong_word"),
        "missing_word": fastcopy(_with_sup(c, alignment={"word": list(ali[:-1])}), id="missing_word"),
        "backwards": fastcopy(_with_sup(c, alignment={"word": backwards}), id="backwards"),
        "single_word": tts_cuts["s5"],
    }
