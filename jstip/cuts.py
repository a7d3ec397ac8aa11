"""The checks every cut goes through, in every stage: bad supervisions and cuts that cannot be used are rejected with
the reason, not fatal (the rejected-items contract of :mod:`jstip.rejects`)."""

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


class CutScreen:
    """The checks a stage runs on each cut, in input order, reading no audio unless asked: a repeated id (the first
    cut keeps it), :func:`check_cut`, the audio sources (a missing file, a 'command' source) or the audio itself, a
    cut longer than a batch budget, and ids the user leaves out.

    Args:
        alignment: a word alignment that disagrees with the transcript is a fault (False: a stage that aligns anew,
            or does not use alignments).
        audio: ``"sources"`` (:func:`jstip.audio.check_sources`), ``"load"`` (:func:`jstip.audio.load_cut_audio`:
            reads the audio once) or ``None`` (left to the stage that reads it).
        max_duration: a batch budget in seconds; a longer cut would make a batch over it on its own.
        exclude: ids the user leaves out (``+data.exclude_ids=[...]``).
        repeats: look for repeated ids (a set of every id seen); False where the caller finds them its own way
            (:class:`jstip.data.sources.TrainCuts`, 8 bytes per cut).
    """

    def __init__(self, alignment: bool = True, audio: str | None = "sources", max_duration: float | None = None,
                 exclude: set[str] | frozenset = frozenset(), repeats: bool = True) -> None:
        self.alignment, self.audio, self.max_duration, self.exclude = alignment, audio, max_duration, exclude
        self.repeats = repeats
        self.seen: set[str] = set()

    def reason(self, cut) -> str | None:
        """Why ``cut`` cannot be used, or None (then its id counts as seen)."""
        from jstip.audio import AudioError, check_sources, load_cut_audio

        if cut.id in self.exclude:
            return "excluded by data.exclude_ids"
        if self.repeats:
            if cut.id in self.seen:
                return "duplicate cut id: only the first cut with this id is used (ids must be unique)"
            self.seen.add(cut.id)
        reason = check_cut(cut, alignment=self.alignment)
        if reason is None and self.audio is not None:
            try:
                load_cut_audio(cut) if self.audio == "load" else check_sources(cut)
            except AudioError as err:
                reason = str(err)
        if reason is None and self.max_duration is not None and cut.duration > self.max_duration:
            reason = (f"cut of {cut.duration:.1f} s is longer than data.max_duration={self.max_duration:g} s, the "
                      "audio budget of a batch: split it, or raise data.max_duration")
        return reason


def too_long_for_encoder(cut, encoder, frame_shift: float | None = None) -> str | None:
    """Why ``cut`` is longer than ``encoder`` takes at once (its ``max_input_seconds``, e.g. Whisper's 30 s), or
    None. With ``frame_shift`` (seconds per speech position) the audio is counted as the model pads it, to whole
    frames: at 160 ms a 30 s cut becomes 188 frames, 30.08 s."""
    limit = getattr(encoder, "max_input_seconds", None)
    seconds = float(cut.duration)
    if frame_shift:
        from jstip.audio import SAMPLE_RATE, num_frames

        seconds = num_frames(int(round(seconds * SAMPLE_RATE)), frame_shift) * frame_shift
    if limit is not None and seconds > limit + 1e-9:
        return (f"cut of {cut.duration:.1f} s is longer than the {limit:g} s the {type(encoder).__name__} encodes at "
                "once: split it into shorter utterances")
    return None


def drop_too_long(cuts, encoder, rejects: RejectLog, what: str = "train",
                  frame_shift: float | None = None) -> CutSet:
    """``cuts`` without those :func:`too_long_for_encoder` finds, each written to ``rejects`` (once)."""
    from jstip.rejects import rejected_ids

    done = rejected_ids(rejects.path, rejects.stage)
    kept = []
    for cut in cuts:
        reason = too_long_for_encoder(cut, encoder, frame_shift)
        if reason is None:
            kept.append(cut)
        elif cut.id not in done:
            rejects.reject(cut.id, f"{what}: {reason}")
    return CutSet.from_cuts(kept)


def screen_cuts(cuts, rejects: RejectLog, max_duration: float | None = None, what: str = "train",
                alignment: bool = True, sources: bool = True, exclude: set[str] | frozenset = frozenset()) -> CutSet:
    """The cuts a run can use, in order; every other one is written to ``rejects`` with ``what`` and the reason of
    :class:`CutScreen` (``sources=False``: audio sources are left for the stage that reads the audio, e.g.
    evaluation, which scores such a cut as missing). Ids already in ``rejects`` (a resumed run) are not written
    again."""
    from jstip.rejects import rejected_ids

    done = rejected_ids(rejects.path, rejects.stage)
    screen = CutScreen(alignment, "sources" if sources else None, max_duration, exclude)
    kept = []
    for cut in cuts:
        reason = screen.reason(cut)
        if reason is None:
            kept.append(cut)
        elif cut.id not in done:
            rejects.reject(cut.id, f"{what}: {reason}")
    return CutSet.from_cuts(kept)


def validate_and_write(cuts: CutSet, out_dir: str | Path, stage: str = "prepare",
                       rejects: RejectLog | None = None, check_audio: bool = False, shard=None,
                       source: str | Path | None = None, options: dict | None = None) -> CutSet:
    """Keep the usable cuts, reject the rest to ``out_dir/rejected.jsonl``; write ``out_dir/cuts.jsonl.gz``.

    Checked: duplicate ids, :func:`check_cut`, the audio sources (missing file, 'command' source), and with
    ``check_audio`` the audio itself (:func:`jstip.audio.load_cut_audio`). Without ``rejects``, a previous
    ``rejected.jsonl`` is replaced (the manifests are rewritten whole). With ``shard`` ``(i, N)`` only the cuts of
    shard i are handled, and ``out_dir/shard.json`` records them (:mod:`jstip.sharding`; ``source`` names the input
    there).
    """
    from jstip.sharding import in_shard, write_record

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if rejects is None:
        (out_dir / "rejected.jsonl").unlink(missing_ok=True)
        rejects = RejectLog(out_dir / "rejected.jsonl", stage)
    kept, assigned = [], []
    screen = CutScreen(audio="load" if check_audio else "sources")
    for cut in cuts:
        if not in_shard(cut.id, shard):
            continue
        assigned.append(cut.id)
        reason = screen.reason(cut)
        if reason:
            rejects.reject(cut.id, reason)
        else:
            kept.append(cut)
    out = CutSet.from_cuts(kept)
    out.to_file(out_dir / "cuts.jsonl.gz")
    write_record(out_dir, stage, shard, source or out_dir, assigned,
                 options={"check_audio": check_audio, **(options or {})})
    return out
