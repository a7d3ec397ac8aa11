"""Forced alignment with pocketsphinx (the en-us acoustic model and cmudict shipped in its wheel): word and phone times.

Per utterance: each transcript word becomes its dictionary tokens (``jstip.align.normalize``); tokens missing from
cmudict get a letter-to-sound pronunciation (``jstip.align.pronounce``); the token sequence is aligned with
``Decoder.set_align_text`` (optional silences between words); with ``phones=True`` a second pass
(``Decoder.set_alignment``) gives phone times. Tokens are folded back into one item per transcript word, and word edges
next to pauses are moved off silence. A transcript that does not match the audio is rejected, either because no path
exists or because most words score poorly (``_check_match``). An utterance that finds no alignment path at the
default beams is retried once with wider beams (as MFA does); if that fails too, once more at 5 ms frames, for speech
whose phones are shorter than the model's 30 ms minimum at 10 ms frames (fast synthetic voices); then it is rejected.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from jstip.align.base import Aligner, AlignmentError, WordSpanTime
from jstip.align.normalize import fold_tokens, tokens_for_word
from jstip.align.pronounce import letter_to_sound
from jstip.text import words as split_words
from jstip.audio import SAMPLE_RATE

FRAME = 0.01  # seconds per pocketsphinx frame (frate 100)
MIN_FRAMES_PER_PHONE = 3  # one per HMM state: fewer frames than this cannot hold the phones
DEFAULT_BEAMS = dict(beam=1e-48, wbeam=7e-29, pbeam=1e-48)
WIDE_BEAMS = dict(beam=1e-80, wbeam=1e-60, pbeam=1e-80)
# Last resort for fast speech: the en-us model's phones have 3 states and no skips, so a phone takes at least 3 frames
# (30 ms at the usual 100 frames/s); fast synthetic voices speak shorter phones and no path exists at any beam.
# At 200 frames/s the same model holds 15 ms phones (measured on the mini corpus: rescues most such utterances).
FAST_SPEECH = dict(frate=200)


class PocketsphinxAligner(Aligner):
    """pocketsphinx forced aligner.

    Args:
        phones: also write ``alignment["phone"]`` (a second decoding pass: about 2.5x the time of words alone).
        poor_word_score, max_poor_share, min_mean_score: the transcript-mismatch check. A word's score is its mean
            acoustic log-score per frame (pocketsphinx log base 1.0001, relative to the best path through the
            acoustic model alone, so 0 is a perfect fit). An alignment is rejected when at least ``max_poor_share``
            of its words score below ``poor_word_score``, or its mean word score is below ``min_mean_score``.
            Measured here: matched real speech (pocketsphinx-testdata) has mean word scores of -9000 to -13000 and no
            poor word; matched synthetic speech (espeak, festival; 6 voices) -9600 to -39000 and at most 36% poor
            words; the testdata utterances paired with each other's transcripts, where a path exists at all,
            mostly -34000 to -85000 with 25-100% poor words.
        refine_db: word edges next to a pause (or the utterance edge) are moved inward past frames quieter than the
            utterance's loudest 10 ms frame minus this many dB: the silence model absorbs breath noise and decay
            tails poorly, so the word otherwise runs on into the pause. None: keep the decoder's edges.
        hmm, dict: acoustic model folder and dictionary (default: the en-us model shipped with pocketsphinx).
    """

    name = "pocketsphinx"

    def __init__(self, phones: bool = False, poor_word_score: float = -40000.0, max_poor_share: float = 0.5,
                 min_mean_score: float = -50000.0, refine_db: float | None = 30.0,
                 hmm: str | None = None, dict: str | None = None) -> None:  # noqa: A002 - pocketsphinx's name
        self.phones = phones
        self.refine_db = refine_db
        self.poor_word_score = poor_word_score
        self.max_poor_share = max_poor_share
        self.min_mean_score = min_mean_score
        self.hmm = hmm
        self.dict = dict
        self._decoders = None
        self._added: set[str] = set()
        self.retried = 0  # utterances that needed a retry (and then aligned), in this process
        self.attempts: Counter = Counter()  # aligned utterances per attempt: 0 default, 1 wide beams, 2 5 ms frames

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_decoders"] = None  # decoders are created in each worker
        state["_added"] = set()
        return state

    def _get_decoders(self):
        if self._decoders is None:
            from pocketsphinx import Decoder

            extra = {k: v for k, v in (("hmm", self.hmm), ("dict", self.dict)) if v}
            self._decoders = [(Decoder(lm=None, loglevel="FATAL", **extra, **opts), 1.0 / opts.get("frate", 100))
                              for opts in (DEFAULT_BEAMS, WIDE_BEAMS, FAST_SPEECH)]
        return self._decoders

    def pronunciation(self, token: str) -> list[str]:
        """CMU phones of a token: cmudict's first pronunciation, or the letter-to-sound fallback (then added to the
        decoders' dictionaries)."""
        decoders = self._get_decoders()
        phones = decoders[0][0].lookup_word(token)
        if phones is not None:
            return phones.split()
        lts = list(letter_to_sound(token))
        if token not in self._added:
            for d, _ in decoders:
                d.add_word(token, " ".join(lts), True)
            self._added.add(token)
        return lts

    def align_audio(self, audio: np.ndarray, text: str) -> list[WordSpanTime]:
        words = split_words(text)
        tokens_per_word = [tokens_for_word(w) for w in words]
        tokens = [t for ts in tokens_per_word for t in ts]
        if not tokens:
            raise AlignmentError(f"no spoken word in {text!r} (punctuation only): nothing to align")
        n_phones = sum(len(self.pronunciation(t)) for t in tokens)
        shortest = MIN_FRAMES_PER_PHONE * n_phones / FAST_SPEECH["frate"]  # even at the finest frame rate
        if len(audio) / SAMPLE_RATE < shortest:
            raise AlignmentError(f"audio of {len(audio) / SAMPLE_RATE:.2f} s is too short for its {len(words)} words "
                                 f"({n_phones} phones need at least {shortest:.2f} s): "
                                 "the transcript probably belongs to a longer recording")
        # Digital silence (exact zeros, common in synthetic speech) gives -inf log energies that derail the
        # features; a fixed, inaudible dither (about -80 dBFS) keeps them finite and the result reproducible.
        dither = np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32) * 1e-4
        pcm = (np.clip(audio + dither, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        segs, phones, score = None, [], None
        for attempt, (decoder, frame) in enumerate(self._get_decoders()):
            segs, phones, score = self._decode(decoder, frame, pcm, " ".join(tokens), len(tokens))
            if segs is not None:
                self.retried += int(attempt > 0)
                self.attempts[attempt] += 1
                break
        if segs is None:
            raise AlignmentError("no alignment path at default beams, wide beams or 5 ms frames: the text does not "
                                 "match the audio "
                                 "(wrong transcript, or speech too noisy or too far from the acoustic model)")
        spans = fold_tokens(words, tokens_per_word, segs, phones)
        self._check_match(spans)
        if self.refine_db is not None:
            refine_pause_edges(spans, audio, self.refine_db)
        return spans

    def _check_match(self, spans: list[WordSpanTime]) -> None:
        """Raise ``AlignmentError`` when the word scores say the transcript does not match the audio."""
        scored = [s for s in spans if s.score is not None]
        if not scored:
            return
        poor = sorted((s for s in scored if s.score < self.poor_word_score), key=lambda s: s.score)
        mean = float(np.mean([s.score for s in scored]))
        if len(poor) >= self.max_poor_share * len(scored) or mean < self.min_mean_score:
            worst = ", ".join(f"{s.word!r} at {s.start:.2f}s" for s in poor[:3])
            raise AlignmentError(f"the transcript does not match the audio: {len(poor)} of {len(scored)} words fit "
                                 f"poorly (score < {self.poor_word_score:.0f}; worst: {worst or 'none'}), mean word "
                                 f"score {mean:.0f}; check the transcript (or loosen poor_word_score/max_poor_share "
                                 "for speech far from the en-us model)")

    def _decode(self, decoder, frame: float, pcm: bytes, token_text: str, n_tokens: int):
        """(token segments [(start_s, end_s, score)], phones [(token index, phone, start_s, end_s)], mean score) or
        (None, [], None) when this decoder finds no path."""
        try:
            # A fresh front end for every utterance (noise estimate, cepstral mean): an utterance aligns the same
            # whatever was aligned, or failed, before it in this process, so restarts and -j N give the same bytes.
            decoder.reinit_feat()
            decoder.set_align_text(token_text)
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
        except RuntimeError:
            try:
                decoder.end_utt()  # never leave an utterance open for the next one
            except RuntimeError:
                pass
            return None, [], None
        raw = decoder.seg()
        if raw is None:
            return None, [], None
        logmath = decoder.get_logmath()
        segs, total, frames = [], 0.0, 0
        for s in raw:
            if s.word.startswith(("<", "[", "+")):  # <sil>, <s>, </s>, fillers
                continue
            n = s.end_frame - s.start_frame + 1
            log_score = logmath.log(s.ascore) if s.ascore > 0 else -1e9 * n
            total += log_score
            frames += n
            segs.append((s.start_frame * frame, (s.end_frame + 1) * frame, log_score / max(n, 1)))
        if len(segs) != n_tokens:
            return None, [], None
        phones: list[tuple[int, str, float, float]] = []
        if self.phones:
            try:
                decoder.reinit_feat()
                decoder.set_alignment()
                decoder.start_utt()
                decoder.process_raw(pcm, full_utt=True)
                decoder.end_utt()
                alignment = decoder.get_alignment()
            except RuntimeError:
                alignment = None
            if alignment is not None:
                k = -1
                word_times = []
                for w in alignment:
                    if w.name.startswith(("<", "[", "+")):
                        continue
                    k += 1
                    word_times.append((w.start * frame, (w.start + w.duration) * frame))
                    for p in w:
                        phones.append((k, p.name, p.start * frame, (p.start + p.duration) * frame))
                if k + 1 != n_tokens:
                    phones = []
                else:  # the state-level pass refines the word edges too: keep words and phones consistent
                    segs = [(s, e, seg[2]) for (s, e), seg in zip(word_times, segs)]
        return segs, phones, total / max(frames, 1)


def refine_pause_edges(spans: list[WordSpanTime], audio: np.ndarray, drop_db: float, min_word: float = 0.03,
                       min_pause: float = 0.1) -> None:
    """Move word edges off silence, in place.

    An edge that borders a pause the decoder found (or the utterance edge) moves inward past all quiet frames. An
    edge between two words without a decoder pause moves only past a quiet run of at least ``min_pause`` (the decoder
    sometimes lets a word swallow a short pause; shorter quiet runs are stop closures and stay in their word), so that
    the pause shows as a gap between the items.

    Args:
        spans: monotonic word spans in seconds (zero-length ones are left alone).
        audio: (T,) 16 kHz samples.
        drop_db: frames below the loudest 10 ms frame of the utterance minus this are quiet.
        min_word: never shrink a word below this many seconds.
        min_pause: shortest quiet run taken out of a word where the decoder found no pause.
    """
    hop = int(FRAME * SAMPLE_RATE)
    n = len(audio) // hop
    if n == 0:
        return
    frames = audio[: n * hop].reshape(n, hop).astype(np.float64)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = energy > energy.max() - drop_db
    # Inside a word (no decoder pause) only deeper quiet counts: fricatives and closures can be 30 dB down.
    audible = energy > energy.max() - drop_db - 5.0
    spoken = [i for i, s in enumerate(spans) if s.end > s.start]
    for j, i in enumerate(spoken):
        s = spans[i]
        prev_end = spans[spoken[j - 1]].end if j > 0 else None
        next_start = spans[spoken[j + 1]].start if j + 1 < len(spoken) else None
        a, b = int(round(s.start / FRAME)), min(n, int(round(s.end / FRAME)))
        idx = np.flatnonzero(loud[a:b])
        if idx.size == 0:
            continue
        start, end = s.start, s.end
        heard = np.flatnonzero(audible[a:b])
        lead_quiet = (heard[0] if heard.size else b - a) * FRAME
        trail_quiet = (b - a - heard[-1] - 1 if heard.size else b - a) * FRAME
        if prev_end is None or s.start - prev_end >= FRAME - 1e-6 or lead_quiet >= min_pause - 1e-6:
            start = max(start, (a + idx[0]) * FRAME)
        if next_start is None or next_start - s.end >= FRAME - 1e-6 or trail_quiet >= min_pause - 1e-6:
            end = min(end, (a + idx[-1] + 1) * FRAME)
        if end - start >= min_word:
            s.start, s.end = round(float(start), 3), round(float(end), 3)
        for k, (name, ps, pe) in enumerate(s.phones):  # keep phones inside their word
            ps, pe = min(max(ps, s.start), s.end), max(min(pe, s.end), s.start)
            s.phones[k] = (name, ps, max(ps, pe))
