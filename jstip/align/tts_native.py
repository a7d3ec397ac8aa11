"""TTS-native "aligner": synthesized cuts keep the word times their engine reported; this only validates them."""

from __future__ import annotations

from jstip.align.base import Aligner, AlignmentError, WordSpanTime, check_spans
from jstip.text import words as split_words


class TTSNativeAligner(Aligner):
    """Keeps ``alignment["word"]`` as written by ``jstip synthesize`` and rejects cuts whose times are missing or
    invalid (wrong words, not monotonic, outside the audio). Reads no audio."""

    name = "tts"

    def align_cut(self, cut):
        if not cut.supervisions:
            raise AlignmentError(f"cut {cut.id} has no supervision: nothing to align")
        for sup in cut.supervisions:
            words = split_words(sup.text or "")
            if not words:
                raise AlignmentError(f"supervision {sup.id} has empty text: nothing to align")
            items = (sup.alignment or {}).get("word")
            if not items:
                raise AlignmentError(f"supervision {sup.id} has no engine word times (alignment['word']): align it "
                                     "with --aligner pocketsphinx instead")
            origin = cut.start + sup.start  # items are in recording time
            spans = [WordSpanTime(a.symbol, a.start - origin, a.start + a.duration - origin) for a in items]
            check_spans(spans, words, sup.duration)
        return cut
