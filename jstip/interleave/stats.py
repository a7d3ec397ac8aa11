"""Statistics of interleaving over a cut set: units, segment lengths, speech share, rejects."""

from __future__ import annotations

from collections import Counter

from jstip.interleave.examples import InterleaveConfig, interleave_cut, NotInterleavable, the_supervision
from jstip.interleave.units import AlignmentError, alignment_offset, units_for_supervision

# Segment length histogram bins, in words: 1, 2, 3-4, 5-8, 9-16, 17+.
_BINS = [(1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 10**9)]


def _bin(n: int) -> str:
    for lo, hi in _BINS:
        if lo <= n <= hi:
            return str(lo) if lo == hi else (f"{lo}-{hi}" if hi < 10**9 else f"{lo}+")
    return "0"


def interleave_stats(cuts, level: str, cfg: InterleaveConfig | None = None, seed: int = 0, epoch: int = 0) -> dict:
    """Counts over ``cuts``: cuts, examples, rejects by reason, words, word and segment units, segment length
    histograms (words, seconds), segments per example by modality, and the speech share (by words) of the examples."""
    cfg = cfg or InterleaveConfig()
    n_cuts = n_examples = n_words = n_segment_units = 0
    reasons: Counter = Counter()
    seg_words: Counter = Counter()
    seg_secs: Counter = Counter()
    variants: Counter = Counter()
    speech_words = all_words = 0
    n_speech_segments = n_text_segments = 0
    for cut in cuts:
        n_cuts += 1
        try:
            sup = the_supervision(cut)
            units = units_for_supervision(sup, "segment", cfg.segment, offset=alignment_offset(cut, sup.id))
            n_words += sum(u.num_words for u in units)
            n_segment_units += len(units)
            for u in units:
                seg_words[_bin(u.num_words)] += 1
                seg_secs[f"{min(int(u.duration), 10)}{'+' if u.duration >= 10 else ''}s"] += 1
        except (AlignmentError, NotInterleavable):
            pass
        try:
            ex = interleave_cut(cut, level, cfg, seed, epoch)
        except NotInterleavable as e:
            reasons[str(e).split(":")[0]] += 1
            continue
        n_examples += 1
        variants[f"{ex['units']}/{ex['variant']}"] += 1
        for s in ex["segments"]:
            k = len(s["text"].split())
            all_words += k
            if s["modality"] == "speech":
                speech_words += k
                n_speech_segments += 1
            else:
                n_text_segments += 1
    order = [_bin(lo) for lo, _ in _BINS]
    return {
        "cuts": n_cuts,
        "examples": n_examples,
        "rejected": sum(reasons.values()),
        "reject_reasons": dict(reasons),
        "words": n_words,
        "word_units": n_words,
        "segment_units": n_segment_units,
        "segment_words_histogram": {k: seg_words[k] for k in order if seg_words[k]},
        "segment_seconds_histogram": dict(sorted(seg_secs.items(), key=lambda kv: float(kv[0].rstrip("s+")))),
        "variants": dict(variants),
        "speech_segments": n_speech_segments,
        "text_segments": n_text_segments,
        "speech_share": round(speech_words / all_words, 4) if all_words else 0.0,
    }


def format_stats(stats: dict) -> str:
    """A plain-text table of ``interleave_stats``."""
    lines = [
        f"cuts             {stats['cuts']}",
        f"examples         {stats['examples']}",
        f"rejected         {stats['rejected']}  {stats['reject_reasons'] or ''}",
        f"word units       {stats['word_units']}",
        f"segment units    {stats['segment_units']}",
        f"speech segments  {stats['speech_segments']}",
        f"text segments    {stats['text_segments']}",
        f"speech share     {stats['speech_share']:.3f} (of the examples' words)",
        f"variants         {stats['variants']}",
        "segment length (words):",
    ]
    total = max(1, sum(stats["segment_words_histogram"].values()))
    for k, v in stats["segment_words_histogram"].items():
        lines.append(f"  {k:>6} {v:6d} {'#' * int(round(40 * v / total))}")
    lines.append("segment length (seconds):")
    total = max(1, sum(stats["segment_seconds_histogram"].values()))
    for k, v in stats["segment_seconds_histogram"].items():
        lines.append(f"  {k:>6} {v:6d} {'#' * int(round(40 * v / total))}")
    return "\n".join(lines)
