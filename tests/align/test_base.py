"""The runner contract (in = aligned + rejected, restartable, a crash on one item stays that item's) and the text
normalisation that maps dictionary tokens back to transcript words."""

from __future__ import annotations

import pytest
from lhotse import CutSet

from jstip.align import align_cuts
from jstip.align.base import Aligner, AlignmentError, WordSpanTime
from jstip.sharding import parse_shard
from jstip.align.normalize import fold_tokens, spell_number, spell_ordinal, tokens_for_word
from jstip.rejects import read_rejected
from jstip.text import words as split_words


class _Scripted(Aligner):
    """Even split of the audio; fails on chosen ids, one with an AlignmentError and one with a bug (KeyError)."""

    name = "scripted"

    def __init__(self):
        self.calls = 0

    def align_audio(self, audio, text):
        if "boom" in text:
            raise KeyError("a backend bug")
        if "nope" in text:
            raise AlignmentError("scripted failure")
        words = split_words(text)
        step = len(audio) / 16000 / len(words)
        return [WordSpanTime(w, i * step, (i + 1) * step) for i, w in enumerate(words)]

    def align_cut(self, cut):
        self.calls += 1
        return super().align_cut(cut)


def test_runner_counts_rejects_and_restarts(tts_cuts, tmp_path, cut_maker):
    _, cuts = tts_cuts
    audio = cuts[0].load_audio()[0]
    extra = [cut_maker(tmp_path, "nope", audio, "nope nope"), cut_maker(tmp_path, "boom", audio, "boom boom")]
    all_cuts = CutSet.from_cuts(list(cuts) + extra)
    out = tmp_path / "o" / "cuts.jsonl.gz"
    aligner = _Scripted()
    s = align_cuts(all_cuts, aligner, out, progress=False)
    assert (s.total, s.aligned, s.rejected) == (len(all_cuts), len(cuts), 2)
    reasons = {r["id"]: r["reason"] for r in read_rejected(out.parent / "rejected.jsonl")}
    assert reasons["nope"] == "scripted failure"
    assert "KeyError" in reasons["boom"] and "scripted" in reasons["boom"]
    # A second run does nothing new: aligned and rejected ids are skipped.
    aligner2 = _Scripted()
    s2 = align_cuts(all_cuts, aligner2, out, progress=False)
    assert aligner2.calls == 0 and s2.skipped == s2.total == len(all_cuts)
    assert (s2.aligned, s2.rejected) == (s.aligned, s.rejected)
    assert len(read_rejected(out.parent / "rejected.jsonl")) == 2
    assert len(list(CutSet.from_file(out))) == len(cuts)


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    for bad in ("4/4", "x", "1-4"):
        with pytest.raises(ValueError):
            parse_shard(bad)


@pytest.mark.parametrize("word, tokens", [
    ("20", ["twenty"]), ("20,", ["twenty"]), ("$5", ["five", "dollars"]), ("(10%)", ["ten", "percent"]),
    ("1,200", ["one", "thousand", "two", "hundred"]), ("1998", ["nineteen", "ninety", "eight"]),
    ("2024", ["two", "thousand", "twenty", "four"]), ("21st", ["twenty", "first"]), ("3.5", ["three", "point", "five"]),
    ("1990s", ["nineteen", "nineties"]), ("Smith,", ["smith"]), ("don't", ["don't"]), ("café", ["cafe"]),
    ("well-known", ["well", "known"]), ("covid19", ["covid", "nineteen"]), ("&", ["and"]), ("--", []), ("...", []),
])
def test_tokens_for_word(word, tokens):
    assert tokens_for_word(word) == tokens


def test_number_speller():
    assert spell_number(0) == ["zero"]
    assert spell_number(115) == ["one", "hundred", "fifteen"]
    assert spell_number(2_000_005) == ["two", "million", "five"]
    assert spell_ordinal(12) == ["twelfth"] and spell_ordinal(40) == ["fortieth"] and spell_ordinal(3) == ["third"]


def test_fold_tokens_one_item_per_word():
    words = ["Take", "20,", "--", "mg."]
    tokens = [tokens_for_word(w) for w in words]  # take | twenty | (none) | mg
    spans = fold_tokens(words, tokens, [(0.1, 0.3, -1.0), (0.35, 0.7, -2.0), (0.9, 1.2, -3.0)])
    assert [(s.word, s.start, s.end) for s in spans] == [("Take", 0.1, 0.3), ("20,", 0.35, 0.7), ("--", 0.7, 0.7),
                                                          ("mg.", 0.9, 1.2)]
