"""TextGrid (Praat, as MFA writes it) and CTM import/export of word alignments.

Export writes one TextGrid per cut (tiers ``words`` and, when present, ``phones``) or one CTM file for all cuts
(``<cut id> 1 <start> <duration> <word> [<score>]``). Files hold times relative to the cut; the cuts hold recording
times (lhotse's convention), so import and export add or subtract ``cut.start``. Zero-length items (punctuation-only words)
cannot live in a TextGrid and are left out; import restores them.

Import maps the labelled intervals back onto the transcript's words: the intervals may carry the transcript words
themselves, or the aligner's normalised tokens (``jstip.align.normalize.tokens_for_word``: lower case, numbers spelled
out, as jstip writes MFA's ``.lab`` files), in order. Silence labels (empty, ``sil``, ``sp``, ``<eps>``) are skipped.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from lhotse.supervision import AlignmentItem
from lhotse.utils import fastcopy

from jstip.align.base import AlignmentError, WordSpanTime, check_spans
from jstip.align.normalize import fold_tokens, tokens_for_word
from jstip.text import strip_punctuation
from jstip.text import words as split_words

SILENCE_LABELS = {"", "sil", "sp", "spn", "<eps>", "<sil>", "silence"}


def read_textgrid_words(path: str | Path, tier: str | None = None) -> list[tuple[str, float, float]]:
    """(label, start, end) of the non-silent intervals of the word tier of a TextGrid.

    The tier is ``tier`` if given, else the first whose name ends with ``words`` (MFA: ``words`` or
    ``<speaker> - words``), else the first interval tier.
    """
    from praatio import textgrid

    tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False, reportingMode="silence")
    names = list(tg.tierNames)
    if tier is None:
        tier = next((n for n in names if n.lower().endswith("words")), names[0] if names else None)
    if tier is None or tier not in names:
        raise AlignmentError(f"TextGrid {path} has no tier {tier!r} (tiers: {names})")
    return [(e.label.strip(), float(e.start), float(e.end)) for e in tg.getTier(tier).entries
            if e.label.strip().lower() not in SILENCE_LABELS]


def spans_from_labelled(words: list[str], labelled: list[tuple[str, float, float]], source: str) -> list[WordSpanTime]:
    """Map (label, start, end) intervals onto transcript words (labels = words or their tokens, in order)."""
    tokens_per_word = [tokens_for_word(w) for w in words]
    n_tokens = sum(len(t) for t in tokens_per_word)
    spoken = [w for w, ts in zip(words, tokens_per_word) if ts]
    norm = [strip_punctuation(lab).lower() for lab, _, _ in labelled]
    if len(labelled) == len(words) and len(words) != n_tokens:
        # One interval per transcript word, unspoken ones included (our own CTM export).
        return [WordSpanTime(w, s, e) for w, (_, s, e) in zip(words, labelled)]
    if len(labelled) == len(spoken) and len(spoken) != n_tokens:
        # One interval per spoken word: expand each to its tokens by sharing the interval.
        segs = []
        for (lab, s, e), ts in zip(labelled, [t for t in tokens_per_word if t]):
            segs.extend([(s, e, None)] * len(ts))
        spans = fold_tokens(words, tokens_per_word, segs)
        # A shared interval is one span: fold_tokens took first start and last end of the same interval.
        return spans
    if len(labelled) == n_tokens:
        expected = [t for ts in tokens_per_word for t in ts]
        bad = [(e, n) for e, n in zip(expected, norm) if n not in (e, "<unk>", "spn") and e not in n]
        if len(bad) > max(1, n_tokens // 5):
            raise AlignmentError(f"{source}: labels do not match the transcript (e.g. {bad[:3]} expected/found)")
        return fold_tokens(words, tokens_per_word, [(s, e, None) for _, s, e in labelled])
    raise AlignmentError(f"{source} has {len(labelled)} word intervals but the transcript has {len(spoken)} spoken "
                         f"words ({n_tokens} aligner tokens): is it the TextGrid of this utterance?")


def _with_word_spans(cut, spans_per_sup: list[list[WordSpanTime]]):
    sups = []
    for sup, spans in zip(cut.supervisions, spans_per_sup):
        check_spans(spans, split_words(sup.text), sup.duration)
        offset = cut.start + sup.start  # alignment items are in recording time (lhotse's convention)
        items = [AlignmentItem(symbol=s.word, start=round(offset + s.start, 4), duration=round(s.end - s.start, 4),
                               score=s.score) for s in spans]
        alignment = dict(sup.alignment or {})
        alignment["word"] = items
        sups.append(fastcopy(sup, alignment=alignment))
    return fastcopy(cut, supervisions=sups)


def cut_with_textgrid(cut, path: str | Path, tier: str | None = None):
    """The cut with ``alignment["word"]`` read from a TextGrid whose times are relative to the cut."""
    labelled = read_textgrid_words(path, tier)
    out = []
    for sup in cut.supervisions:
        inside = [(lab, s - sup.start, e - sup.start) for lab, s, e in labelled
                  if s >= sup.start - 1e-3 and e <= sup.end + 1e-3]
        out.append(spans_from_labelled(split_words(sup.text), inside, f"TextGrid {path}"))
    return _with_word_spans(cut, out)


def write_textgrid(cut, path: str | Path) -> None:
    """Write a cut's word (and phone) alignment as a TextGrid, times relative to the cut."""
    from praatio import textgrid
    from praatio.utilities.constants import Interval

    tg = textgrid.Textgrid()
    for level in ("word", "phone"):
        entries = []
        for sup in cut.supervisions:
            for a in (sup.alignment or {}).get(level, []):
                if a.duration > 0:
                    start = a.start - cut.start  # recording time -> cut time
                    entries.append(Interval(round(start, 4), round(start + a.duration, 4), a.symbol))
        if level == "word" or entries:
            tier = textgrid.IntervalTier(level + "s", entries, 0.0, max(cut.duration, entries[-1][1] if entries else 0))
            tg.addTier(tier)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True, reportingMode="silence")


def write_ctm(cuts, path: str | Path) -> int:
    """Write all word alignments as one CTM file; returns the number of lines."""
    n = 0
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for cut in cuts:
            for sup in cut.supervisions:
                for a in (sup.alignment or {}).get("word", []):
                    score = "" if a.score is None else f" {a.score:g}"
                    f.write(f"{cut.id} 1 {a.start - cut.start:.3f} {a.duration:.3f} {a.symbol}{score}\n")
                    n += 1
    return n


def read_ctm(path: str | Path) -> dict[str, list[tuple[str, float, float]]]:
    """CTM lines grouped by utterance id: {id: [(word, start, end)]} in file order."""
    out: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith(";;"):
                continue
            if len(parts) < 5:
                raise ValueError(f"{path}:{lineno}: a CTM line needs <id> <channel> <start> <duration> <word>")
            start, dur = float(parts[2]), float(parts[3])
            out[parts[0]].append((parts[4], start, start + dur))
    return dict(out)


def cut_with_ctm(cut, entries: list[tuple[str, float, float]]):
    """The cut with ``alignment["word"]`` from CTM entries (times relative to the cut)."""
    labelled = [e for e in entries if e[0].lower() not in SILENCE_LABELS]
    out = []
    for sup in cut.supervisions:
        inside = [(lab, s - sup.start, e - sup.start) for lab, s, e in labelled
                  if s >= sup.start - 1e-3 and e <= sup.end + 1e-3]
        out.append(spans_from_labelled(split_words(sup.text), inside, f"CTM entries of {cut.id}"))
    return _with_word_spans(cut, out)
