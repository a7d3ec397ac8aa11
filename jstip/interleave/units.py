"""Interleaving units from word alignments: single words, or segments of words merged between pauses.

Input is ``supervision.alignment["word"]``: one ``AlignmentItem`` per word of ``supervision.text`` (``jstip.text``),
in order. Times follow lhotse's aligners: seconds within the *recording* (lhotse's ``with_offset``, used by padding and
mixing, does not move them). ``alignment_offset(cut, sup)`` is what to add to get seconds within the cut (``-cut.start``
for a plain cut; track offsets added for padded/mixed cuts); every unit carries cut-relative times.

Segment rules (``segment_units``):

* a *break point* lies between word ``i`` and ``i+1`` when the pause ``start[i+1] - end[i]`` is longer than
  ``min_pause`` (mode ``silence``), or when it is, or word ``i`` ends a sentence (``jstip.text.ends_sentence``; mode
  ``punctuation``, the paper's "silence and punctuation");
* a segment is closed at a break point only once it holds at least ``min_words`` words and ``min_duration`` seconds;
* a segment is always closed before it would exceed ``max_words`` words or ``max_duration`` seconds, break point or
  not (then the cut falls between two words, never inside one);
* a last segment shorter than the minimums is merged into the one before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from jstip.text import ends_sentence, words as split_words

SEGMENT_MODES = ("silence", "punctuation")


@dataclass(slots=True)
class Unit:
    """A run of consecutive words of one supervision, with the times of its first word's start and last word's end.

    Attributes:
        first: index of the first word (in ``jstip.text.words(sup.text)``).
        last: index one past the last word.
        words: the words, as written in the transcript.
        start: seconds, within the cut.
        end: seconds, within the cut.
    """

    first: int
    last: int
    words: tuple[str, ...]
    start: float
    end: float

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def num_words(self) -> int:
        return self.last - self.first

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class SegmentConfig:
    """How words are merged into segments (see the module docstring).

    Attributes:
        mode: ``silence`` (break at pauses) or ``punctuation`` (break at pauses and sentence punctuation).
        min_pause: seconds; a pause longer than this is a break point.
        min_words / max_words: segment length bounds in words.
        min_duration / max_duration: segment length bounds in seconds.
    """

    mode: str = "punctuation"
    min_pause: float = 0.15
    min_words: int = 2
    max_words: int = 20
    min_duration: float = 0.3
    max_duration: float = 8.0

    def __post_init__(self) -> None:
        if self.mode not in SEGMENT_MODES:
            raise ValueError(f"segment mode {self.mode!r} is not one of {SEGMENT_MODES}")
        if self.min_words < 1 or self.max_words < self.min_words:
            raise ValueError(f"need 1 <= min_words <= max_words, got {self.min_words} and {self.max_words}")


class AlignmentError(ValueError):
    """A supervision's word alignment cannot be used for interleaving; the message is the reject reason."""


def alignment_offset(cut, sup_id: str) -> float:
    """Seconds to add to the alignment times of supervision ``sup_id`` to make them relative to ``cut``'s start."""
    tracks = getattr(cut, "tracks", None)
    if tracks is None:
        return -float(getattr(cut, "start", 0.0) or 0.0)
    for track in tracks:
        sub = track.cut
        if any(s.id == sup_id for s in getattr(sub, "supervisions", None) or []):
            return float(track.offset) + alignment_offset(sub, sup_id)
    return 0.0


def check_alignment(sup, duration: float | None = None, tolerance: float = 0.05, offset: float = 0.0) -> list:
    """The supervision's word alignment items, validated against its text; raises ``AlignmentError`` with a reason.

    Checks: an alignment with a ``word`` tier exists; one item per transcript word with the same symbol; times (plus
    ``offset``, see ``alignment_offset``) are finite, non-decreasing and inside the supervision (``tolerance`` seconds
    of slack).
    """
    words = split_words(sup.text or "")
    if not words:
        raise AlignmentError("empty transcript")
    alignment = (sup.alignment or {}).get("word")
    if not alignment:
        raise AlignmentError("no word alignment (supervision.alignment['word']): run `jstip align` on these cuts")
    symbols = [a.symbol for a in alignment]
    if len(symbols) != len(words):
        raise AlignmentError(
            f"alignment has {len(symbols)} words but the transcript has {len(words)}: re-align this utterance")
    for i, (sym, w) in enumerate(zip(symbols, words)):
        if sym != w:
            raise AlignmentError(f"alignment word {i} is {sym!r} but the transcript says {w!r}: re-align it")
    sup_start = float(sup.start)
    sup_end = sup_start + float(duration if duration is not None else sup.duration)
    prev_end = -float("inf")
    for i, a in enumerate(alignment):
        start, end = float(a.start) + offset, float(a.start) + float(a.duration) + offset
        if not (start == start and end == end) or a.duration < 0:  # NaN or negative duration
            raise AlignmentError(f"word {i} ({a.symbol!r}) has invalid times start={a.start} duration={a.duration}")
        if start < sup_start - tolerance or end > sup_end + tolerance:
            raise AlignmentError(
                f"word {i} ({a.symbol!r}) at {start:.3f}-{end:.3f}s lies outside the supervision "
                f"({sup_start:.3f}-{sup_end:.3f}s within the cut); alignment times must be recording times "
                "(lhotse's convention): re-align this cut")
        if start < prev_end - tolerance:
            raise AlignmentError(f"word {i} ({a.symbol!r}) starts at {start:.3f}s before word {i - 1} ends "
                                 f"({prev_end:.3f}s): times are not monotonic")
        prev_end = end
    return list(alignment)


def word_units(alignment: Sequence, offset: float = 0.0) -> list[Unit]:
    """One unit per aligned word. ``offset`` is added to every time (to make them cut-relative)."""
    return [
        Unit(i, i + 1, (a.symbol,), round(float(a.start) + offset, 6), round(float(a.start + a.duration) + offset, 6))
        for i, a in enumerate(alignment)
    ]


def _break_after(alignment: Sequence, i: int, cfg: SegmentConfig) -> bool:
    if i + 1 >= len(alignment):
        return True
    pause = float(alignment[i + 1].start) - float(alignment[i].start + alignment[i].duration)
    if pause > cfg.min_pause:
        return True
    return cfg.mode == "punctuation" and ends_sentence(alignment[i].symbol)


def segment_units(alignment: Sequence, cfg: SegmentConfig = SegmentConfig(), offset: float = 0.0) -> list[Unit]:
    """Words merged into segments at pauses (and sentence punctuation), within the length bounds of ``cfg``."""
    words = word_units(alignment, offset)
    if not words:
        return []
    groups: list[list[Unit]] = []
    current: list[Unit] = []
    for i, w in enumerate(words):
        if current and (len(current) + 1 > cfg.max_words or w.end - current[0].start > cfg.max_duration):
            groups.append(current)
            current = []
        current.append(w)
        long_enough = len(current) >= cfg.min_words and current[-1].end - current[0].start >= cfg.min_duration
        if long_enough and _break_after(alignment, i, cfg) and i + 1 < len(words):
            groups.append(current)
            current = []
    if current:
        short = len(current) < cfg.min_words or current[-1].end - current[0].start < cfg.min_duration
        if short and groups:
            groups[-1] = groups[-1] + current
        else:
            groups.append(current)
    return [merge_units(g) for g in groups]


def split_at_longest_pause(units: Sequence[Unit], min_words: int = 1) -> list[Unit]:
    """Split one segment's word units in two at the longest pause (ties: the split nearest the middle), leaving at
    least ``min_words`` words on each side when the segment is long enough. Used when an utterance has a single
    segment, so that segment-level interleaving still has two segments."""
    n = len(units)
    if n < 2:
        return list(units)
    lo = min(max(1, min_words), n // 2)
    candidates = range(lo, n - lo + 1) if n - lo >= lo else range(1, n)
    best = max(candidates, key=lambda k: (round(units[k].start - units[k - 1].end, 3), -abs(n / 2 - k)))
    return [merge_units(units[:best]), merge_units(units[best:])]


def merge_units(units: Sequence[Unit]) -> Unit:
    """One unit spanning consecutive units."""
    words = tuple(w for u in units for w in u.words)
    return Unit(units[0].first, units[-1].last, words, units[0].start, units[-1].end)


def units_for_supervision(sup, level: str, segment_cfg: SegmentConfig | None = None,
                          duration: float | None = None, offset: float = 0.0) -> list[Unit]:
    """Validated units (``level`` ``word`` or ``segment``) of a supervision; ``offset`` (``alignment_offset``) makes
    their times relative to the cut.

    Raises:
        AlignmentError: the alignment is missing or disagrees with the text (see ``check_alignment``).
    """
    alignment = check_alignment(sup, duration, offset=offset)
    if level == "word":
        return word_units(alignment, offset)
    if level == "segment":
        return segment_units(alignment, segment_cfg or SegmentConfig(), offset)
    raise ValueError(f"unit level {level!r} is not word or segment")
