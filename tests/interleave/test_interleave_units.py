from __future__ import annotations

import pytest
from lhotse.supervision import AlignmentItem

from jstip.interleave.units import (
    AlignmentError,
    SegmentConfig,
    check_alignment,
    segment_units,
    split_at_longest_pause,
    units_for_supervision,
    word_units,
)
from jstip.text import words


def _ali(spec):
    """[(word, start, end)] -> alignment items."""
    return [AlignmentItem(symbol=w, start=s, duration=round(e - s, 6)) for w, s, e in spec]


# Pauses: 0.5 s after "two,", 0.05 s elsewhere; "three." ends a sentence without a pause after it.
SPEC = [("one", 0.0, 0.3), ("two,", 0.35, 0.7), ("three.", 1.2, 1.5), ("four", 1.55, 1.9), ("five", 1.95, 2.3),
        ("six", 2.35, 2.7)]


def test_word_units_carry_alignment_times():
    units = word_units(_ali(SPEC))
    assert [u.text for u in units] == [w for w, _, _ in SPEC]
    assert [(u.start, u.end) for u in units] == [(s, e) for _, s, e in SPEC]
    assert [(u.first, u.last) for u in units] == [(i, i + 1) for i in range(len(SPEC))]


def test_segments_at_silence_only():
    units = segment_units(_ali(SPEC), SegmentConfig(mode="silence", min_pause=0.2, min_words=1, min_duration=0))
    assert [u.text for u in units] == ["one two,", "three. four five six"]
    assert (units[1].start, units[1].end) == (1.2, 2.7)


def test_segments_at_silence_and_punctuation():
    units = segment_units(_ali(SPEC), SegmentConfig(mode="punctuation", min_pause=0.2, min_words=1, min_duration=0))
    assert [u.text for u in units] == ["one two,", "three.", "four five six"]


def test_segment_bounds_min_and_max():
    ali = _ali(SPEC)
    # min_words=2: "three." alone is too short, so the break after it is skipped.
    units = segment_units(ali, SegmentConfig(mode="punctuation", min_pause=0.2, min_words=2, min_duration=0))
    assert [u.text for u in units] == ["one two,", "three. four five six"]
    # max_words=2 forces breaks without pauses.
    units = segment_units(ali, SegmentConfig(mode="silence", min_pause=0.2, min_words=1, max_words=2, min_duration=0))
    assert all(u.num_words <= 2 for u in units)
    assert " ".join(u.text for u in units) == " ".join(w for w, _, _ in SPEC)
    # max_duration=1.0 s.
    units = segment_units(ali, SegmentConfig(mode="silence", min_pause=5, min_words=1, max_duration=1.0,
                                             min_duration=0))
    assert all(u.duration <= 1.0 + 1e-9 for u in units)
    # Every gap is a break at min_pause=0.04; min_words=3 closes segments after 3 words.
    units = segment_units(ali, SegmentConfig(mode="silence", min_pause=0.04, min_words=3, min_duration=0))
    assert [u.text for u in units] == ["one two, three.", "four five six"]
    # min_words=4: the 2-word tail is merged into the segment before it.
    units = segment_units(ali, SegmentConfig(mode="silence", min_pause=0.04, min_words=4, min_duration=0))
    assert [u.text for u in units] == ["one two, three. four five six"]
    # min_duration=0.6 s: "one two," (0.7 s) may close; "three. four" (0.7 s) too; "five six" (0.75 s) last.
    units = segment_units(ali, SegmentConfig(mode="silence", min_pause=0.04, min_words=1, min_duration=0.6))
    assert [u.text for u in units] == ["one two,", "three. four", "five six"]


def test_split_at_longest_pause():
    units = word_units(_ali(SPEC))
    a, b = split_at_longest_pause(units)
    assert a.text == "one two," and b.text.startswith("three.")


def test_segments_on_tts_cuts_follow_punctuation(tts_cuts):
    cut = tts_cuts["s0"]  # two sentences: the TTS pauses after "daily."
    sup = cut.supervisions[0]
    segs = units_for_supervision(sup, "segment", SegmentConfig(mode="punctuation"))
    assert len(segs) >= 2
    assert segs[0].words[-1] == "daily."
    assert [w for u in segs for w in u.words] == words(sup.text)


@pytest.mark.parametrize("name,fragment", [
    ("no_alignment", "no word alignment"),
    ("wrong_word", "transcript says"),
    ("missing_word", "alignment has"),
    ("backwards", "not monotonic"),
])
def test_bad_alignments_are_named(broken_cuts, name, fragment):
    with pytest.raises(AlignmentError, match=fragment):
        check_alignment(broken_cuts[name].supervisions[0])
