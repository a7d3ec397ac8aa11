"""Forced alignment: word times (``supervision.alignment["word"]``) for real speech; compare, import, export.

Backends: ``pocketsphinx`` (default; en-us model in its wheel, letter-to-sound fallback), ``ctc`` (Viterbi over a NeMo
CTC model), ``mfa`` (the Montreal Forced Aligner's CLI), ``tts`` (keep a TTS engine's own times).
"""

from __future__ import annotations

from jstip.align.base import Aligner, AlignmentError, AlignSummary, WordSpanTime, align_cuts

ALIGNERS = ("pocketsphinx", "ctc", "mfa", "tts")


def get_aligner(name: str, **options) -> Aligner:
    """An aligner by name with backend options (``model_path`` for ctc; ``dictionary``, ``acoustic_model`` for mfa;
    ``phones`` for pocketsphinx)."""
    if name == "pocketsphinx":
        from jstip.align.pocketsphinx import PocketsphinxAligner

        return PocketsphinxAligner(**options)
    if name == "ctc":
        from jstip.align.ctc import CTCAligner

        return CTCAligner(**options)
    if name == "mfa":
        from jstip.align.mfa import MfaAligner

        return MfaAligner(**options)
    if name in ("tts", "tts-native"):
        from jstip.align.tts_native import TTSNativeAligner

        return TTSNativeAligner(**options)
    raise ValueError(f"unknown aligner {name!r}: choose one of {', '.join(ALIGNERS)}")


def compare_alignments(ref_cuts, hyp_cuts, trim_to_voiced: bool = True) -> dict:
    """See ``jstip.align.compare.compare_alignments``."""
    from jstip.align.compare import compare_alignments as _compare

    return _compare(ref_cuts, hyp_cuts, trim_to_voiced=trim_to_voiced)


__all__ = ["ALIGNERS", "Aligner", "AlignmentError", "AlignSummary", "WordSpanTime", "align_cuts", "compare_alignments",
           "get_aligner"]
