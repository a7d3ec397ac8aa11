"""Checks every corpus goes through before its manifests are written: bad supervisions are rejected, not fatal."""

from __future__ import annotations

from pathlib import Path

from lhotse import CutSet

from jstip.rejects import RejectLog
from jstip.text import words


MIN_DURATION = 0.1
"""Shortest audio (s) a cut may have: below it no encoder frame, nor any word, fits."""
MAX_WORDS_PER_SECOND = 12.0
"""Most words per second of audio a transcript may have: fast read speech is ~4-5; far above it the transcript belongs
to other (or truncated) audio."""


def check_cut(cut, alignment: bool = True) -> str | None:
    """Why a cut cannot be used for ASR/interleaving, or None. Reads no audio. ``alignment=False``: do not compare
    an existing word alignment with the transcript (a stage that aligns anew)."""
    if not cut.supervisions:
        return "cut has no supervision (no transcript)"
    if len(cut.supervisions) > 1:
        return f"cut has {len(cut.supervisions)} supervisions; jstip expects one per cut (trim_to_supervisions)"
    sup = cut.supervisions[0]
    if not sup.text or not words(sup.text):
        return f"supervision {sup.id} has an empty transcript"
    if not any(ch.isalnum() for ch in sup.text):
        return f"supervision {sup.id} has no word in its transcript ({sup.text[:40]!r}: punctuation only)"
    if cut.duration <= 0:
        return "cut has no audio (duration 0)"
    if cut.duration < MIN_DURATION:
        return (f"cut has {cut.duration * 1000:.1f} ms of audio, shorter than the {MIN_DURATION * 1000:.0f} ms a "
                "transcript can be heard in; drop it or fix its start/duration")
    rate = len(words(sup.text)) / cut.duration
    if rate > MAX_WORDS_PER_SECOND:
        return (f"transcript of {len(words(sup.text))} words for {cut.duration:.2f} s of audio ({rate:.0f} words/s; "
                f"speech stays under {MAX_WORDS_PER_SECOND:.0f}): the transcript belongs to other or truncated audio")
    if alignment and sup.alignment and "word" in sup.alignment:
        symbols = [a.symbol for a in sup.alignment["word"]]
        if symbols != words(sup.text):
            return "word alignment symbols differ from the transcript's words: re-run jstip align"
    for ent in (sup.custom or {}).get("entities", []) or []:
        if sup.text[ent["start"]:ent["end"]] != ent["text"]:
            return f"entity {ent['text']!r} does not match the transcript at [{ent['start']}:{ent['end']}]"
    return None


def screen_cuts(cuts, rejects: RejectLog, max_duration: float | None = None, what: str = "train",
                alignment: bool = True, sources: bool = True, exclude: set[str] | frozenset = frozenset()) -> CutSet:
    """The cuts a run can use, in order; every other one is written to ``rejects`` with its reason: a duplicate id
    (the first is kept), an audio source that is missing or would run a command (:func:`jstip.audio.check_sources`),
    what :func:`check_cut` finds, and a cut longer than ``max_duration`` (a batch budget in seconds: such a cut would
    make a batch over it on its own). Reads no audio. Ids already in ``rejects`` (a resumed run) are not written
    again. ``alignment=False``: a word alignment that disagrees with the transcript is not a fault; ``sources=False``:
    audio sources are left for the stage that reads the audio to check (evaluation scores such a cut as missing)."""
    from jstip.audio import AudioError, check_sources
    from jstip.rejects import rejected_ids

    done = rejected_ids(rejects.path, rejects.stage)
    seen: set[str] = set()
    kept = []
    for cut in cuts:
        reason = None
        if cut.id in exclude:
            reason = "excluded by data.exclude_ids"
        elif cut.id in seen:
            reason = f"duplicate cut id in the {what} cuts: only the first cut with this id is used (ids must be unique)"
        else:
            seen.add(cut.id)
            try:
                if sources:
                    check_sources(cut)
                reason = check_cut(cut, alignment=alignment)
            except AudioError as err:
                reason = str(err)
        if reason is None and max_duration is not None and cut.duration > max_duration:
            reason = (f"cut of {cut.duration:.1f} s is longer than data.max_duration={max_duration:g} s, the audio "
                      "budget of a batch: split it, or raise data.max_duration")
        if reason is None:
            kept.append(cut)
        elif cut.id not in done:
            rejects.reject(cut.id, f"{what}: {reason}")
    return CutSet.from_cuts(kept)


def validate_and_write(cuts: CutSet, out_dir: str | Path, stage: str = "prepare",
                       rejects: RejectLog | None = None, check_audio: bool = False) -> CutSet:
    """Keep the usable cuts, reject the rest to ``out_dir/rejected.jsonl``; write ``out_dir/cuts.jsonl.gz``.

    Checked: duplicate ids, :func:`check_cut`, the audio sources (missing file, 'command' source), and with
    ``check_audio`` the audio itself (:func:`jstip.audio.load_cut_audio`). Without ``rejects``, a previous
    ``rejected.jsonl`` is replaced (the manifests are rewritten whole).
    """
    from jstip.audio import AudioError, check_sources, load_cut_audio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if rejects is None:
        (out_dir / "rejected.jsonl").unlink(missing_ok=True)
        rejects = RejectLog(out_dir / "rejected.jsonl", stage)
    kept, seen = [], set()
    for cut in cuts:
        reason = ("duplicate cut id: only the first cut with this id is kept (ids must be unique)" if cut.id in seen
                  else check_cut(cut))
        seen.add(cut.id)
        if reason is None:
            try:
                load_cut_audio(cut) if check_audio else check_sources(cut)
            except AudioError as err:
                reason = str(err)
        if reason:
            rejects.reject(cut.id, reason)
        else:
            kept.append(cut)
    out = CutSet.from_cuts(kept)
    out.to_file(out_dir / "cuts.jsonl.gz")
    return out
