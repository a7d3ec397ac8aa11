"""Boundary accuracy of one word alignment against another (``jstip align compare``).

Both alignments must carry the same words (``alignment["word"]`` symbols) for a cut; each word contributes its start and
its end as two boundaries. Reported per utterance and overall: mean absolute start and end error in milliseconds, and
the share of boundaries within 20 ms and 50 ms.

Silence: a TTS engine (or a human annotator) may put a word's edge anywhere in the pause next to it, while an aligner
puts it at the speech. ``trim_to_voiced=True`` moves every word edge of *both* alignments to the first/last voiced 5 ms
frame inside the word (short-time energy within 45 dB of the utterance's loudest frame, the rule jstip's TTS backends
use for their own times), so that only the spoken part is compared. The TTS backends already report tightened times,
so for synthesized cuts the trim mostly matters for the hypothesis side.
"""

from __future__ import annotations

import numpy as np

from jstip.align.base import load_cut_audio
from jstip.audio import SAMPLE_RATE



def _word_times(cut) -> list[tuple[str, float, float]] | None:
    """(symbol, start, end) of every word item, in seconds within the cut (items hold recording time)."""
    items = []
    for sup in cut.supervisions:
        ali = (sup.alignment or {}).get("word")
        if ali is None:
            return None
        items.extend((a.symbol, a.start - cut.start, a.start + a.duration - cut.start) for a in ali)
    return items


def _trim(times: list[tuple[str, float, float]], audio: np.ndarray) -> list[tuple[str, float, float]]:
    from jstip.tts.timing import tighten_to_voiced

    tightened = tighten_to_voiced(audio, SAMPLE_RATE, [(s, e) for _, s, e in times])
    return [(w, s, e) for (w, _, _), (s, e) in zip(times, tightened)]


PAUSE_REF = 0.1  # a gap of at least this between two reference words is a pause
PAUSE_HYP = 0.05  # ... and the hypothesis keeps it if its gap there is at least this


def _pauses(ref, hyp) -> tuple[int, int, int]:
    """(reference pauses, of them kept by the hypothesis, hypothesis pauses where the reference has none)."""
    n_ref = kept = spurious = 0
    for k in range(len(ref) - 1):
        ref_gap, hyp_gap = ref[k + 1][1] - ref[k][2], hyp[k + 1][1] - hyp[k][2]
        if ref_gap >= PAUSE_REF - 1e-9:
            n_ref += 1
            kept += hyp_gap >= PAUSE_HYP - 1e-9
        elif hyp_gap >= PAUSE_REF - 1e-9 and ref_gap < PAUSE_HYP:
            spurious += 1
    return n_ref, kept, spurious


def _stats(start_err: np.ndarray, end_err: np.ndarray) -> dict:
    both = np.concatenate([start_err, end_err])
    if both.size == 0:
        return {"n_words": 0}
    return {
        "n_words": int(start_err.size),
        "mean_abs_start_ms": round(float(start_err.mean()) * 1000, 2),
        "mean_abs_end_ms": round(float(end_err.mean()) * 1000, 2),
        "mean_abs_ms": round(float(both.mean()) * 1000, 2),
        "within_20ms": round(float((both <= 0.020 + 1e-9).mean()), 4),
        "within_50ms": round(float((both <= 0.050 + 1e-9).mean()), 4),
    }


def compare_alignments(ref_cuts, hyp_cuts, trim_to_voiced: bool = True) -> dict:
    """Compare word boundaries of ``hyp_cuts`` against ``ref_cuts`` (matched by cut id).

    Args:
        ref_cuts: cuts with the reference ``alignment["word"]`` (e.g. a TTS engine's times).
        hyp_cuts: cuts with the alignment under test; cuts missing here are listed, not scored.
        trim_to_voiced: compare only the voiced part of each word (default; loads the audio of the ref cut; see the
            module doc). False compares the raw times.

    Returns:
        ``{"overall": {...}, "utterances": {cut_id: {...}}, "missing": [ids], "mismatched": [ids]}`` where each
        stats dict has ``n_words``, ``mean_abs_start_ms``, ``mean_abs_end_ms``, ``mean_abs_ms``, ``within_20ms``,
        ``within_50ms`` (shares in [0, 1]), and pause agreement on the raw times: ``ref_pauses`` (gaps of at least
        100 ms between reference words), ``kept_pauses``/``pause_recall`` (of those, where the hypothesis has a gap of
        at least 50 ms) and ``spurious_pauses`` (hypothesis gaps of at least 100 ms where the reference has under
        50 ms).
    """
    hyp_by_id = {c.id: c for c in hyp_cuts}
    per_utt, missing, mismatched = {}, [], []
    all_start, all_end, all_pauses = [], [], []
    for ref in ref_cuts:
        hyp = hyp_by_id.get(ref.id)
        ref_times = _word_times(ref)
        if hyp is None or ref_times is None:
            missing.append(ref.id)
            continue
        hyp_times = _word_times(hyp)
        if hyp_times is None or [w for w, _, _ in hyp_times] != [w for w, _, _ in ref_times]:
            mismatched.append(ref.id)
            continue
        pauses = _pauses(ref_times, hyp_times)  # on the raw times: pauses are what segmentation sees
        all_pauses.append(pauses)
        if trim_to_voiced:
            audio = load_cut_audio(ref)
            ref_times, hyp_times = _trim(ref_times, audio), _trim(hyp_times, audio)
        start_err = np.array([abs(h[1] - r[1]) for r, h in zip(ref_times, hyp_times)])
        end_err = np.array([abs(h[2] - r[2]) for r, h in zip(ref_times, hyp_times)])
        per_utt[ref.id] = _stats(start_err, end_err)
        per_utt[ref.id].update(ref_pauses=pauses[0], kept_pauses=pauses[1], spurious_pauses=pauses[2])
        all_start.append(start_err)
        all_end.append(end_err)
    overall = _stats(np.concatenate(all_start) if all_start else np.zeros(0),
                     np.concatenate(all_end) if all_end else np.zeros(0))
    overall["n_utterances"] = len(per_utt)
    n_ref, kept, spurious = (int(sum(p[i] for p in all_pauses)) for i in range(3))
    overall.update(ref_pauses=n_ref, pause_recall=round(kept / n_ref, 4) if n_ref else None, spurious_pauses=spurious)
    return {"overall": overall, "utterances": per_utt, "missing": missing, "mismatched": mismatched,
            "trim_to_voiced": trim_to_voiced}
