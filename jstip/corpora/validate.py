"""Checks every corpus goes through before its manifests are written: bad supervisions are rejected, not fatal."""

from __future__ import annotations

from pathlib import Path

from lhotse import CutSet

from jstip.rejects import RejectLog
from jstip.text import words


def check_cut(cut) -> str | None:
    """Why a cut cannot be used for ASR/interleaving, or None."""
    if not cut.supervisions:
        return "cut has no supervision (no transcript)"
    if len(cut.supervisions) > 1:
        return f"cut has {len(cut.supervisions)} supervisions; jstip expects one per cut (trim_to_supervisions)"
    sup = cut.supervisions[0]
    if not sup.text or not words(sup.text):
        return f"supervision {sup.id} has an empty transcript"
    if cut.duration <= 0:
        return "cut has no audio (duration 0)"
    if sup.alignment and "word" in sup.alignment:
        symbols = [a.symbol for a in sup.alignment["word"]]
        if symbols != words(sup.text):
            return "word alignment symbols differ from the transcript's words: re-run jstip align"
    for ent in (sup.custom or {}).get("entities", []) or []:
        if sup.text[ent["start"]:ent["end"]] != ent["text"]:
            return f"entity {ent['text']!r} does not match the transcript at [{ent['start']}:{ent['end']}]"
    return None


def validate_and_write(cuts: CutSet, out_dir: str | Path, stage: str = "prepare",
                       rejects: RejectLog | None = None) -> CutSet:
    """Keep the usable cuts, reject the rest to ``out_dir/rejected.jsonl``; write ``out_dir/cuts.jsonl.gz``.

    Without ``rejects``, a previous ``rejected.jsonl`` is replaced (the manifests are rewritten whole).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if rejects is None:
        (out_dir / "rejected.jsonl").unlink(missing_ok=True)
        rejects = RejectLog(out_dir / "rejected.jsonl", stage)
    kept = []
    for cut in cuts:
        reason = check_cut(cut)
        if reason:
            rejects.reject(cut.id, reason)
        else:
            kept.append(cut)
    out = CutSet.from_cuts(kept)
    out.to_file(out_dir / "cuts.jsonl.gz")
    return out
