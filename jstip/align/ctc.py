"""CTC forced alignment: Viterbi over the frame log-probabilities of a NeMo CTC model, in plain PyTorch.

The trellis runs over the target with a blank between and around its tokens (2L+1 states). A path may stay in a state,
advance by one, or skip the blank between two different tokens. The best path is traced back, and each token's span
is the frames its state holds; a word spans from its first token's first frame to its last token's last frame.
torchaudio's ``forced_align`` and k2 are not needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from jstip.align.base import Aligner, AlignmentError, WordSpanTime
from jstip.align.normalize import tokens_for_word
from jstip.text import words as split_words
from jstip.audio import SAMPLE_RATE


@dataclass
class TokenSpan:
    """Frames [start, end] (inclusive) where the best path emits one target token, and its mean log-prob there."""

    token: int
    start: int
    end: int
    score: float


def ctc_forced_align(log_probs: torch.Tensor, targets: list[int] | torch.Tensor, blank: int) -> list[TokenSpan]:
    """Best CTC path of ``targets`` through ``log_probs``.

    Args:
        log_probs: (T, V) log-probabilities per frame (log-softmax output).
        targets: (L,) token ids, without blanks.
        blank: the blank id.

    Returns:
        One ``TokenSpan`` per target token, in order. Raises ``AlignmentError`` if no path exists (too few frames for
        the tokens: a CTC path needs one frame per token plus one per repeated neighbour).
    """
    log_probs = log_probs.detach().float().cpu()
    targets = torch.as_tensor(targets, dtype=torch.long).cpu()
    T, L = log_probs.shape[0], targets.numel()
    if L == 0:
        raise AlignmentError("nothing to align: empty target")
    repeats = int((targets[1:] == targets[:-1]).sum()) if L > 1 else 0
    if T < L + repeats:
        raise AlignmentError(f"{T} frames cannot hold {L} tokens ({L + repeats} frames needed): audio shorter than "
                             "its words")
    S = 2 * L + 1
    ext = torch.full((S,), blank, dtype=torch.long)
    ext[1::2] = targets
    # A state may be entered from two back (skipping a blank) only if it is a token different from the one before.
    can_skip = torch.zeros(S, dtype=torch.bool)
    can_skip[3::2] = targets[1:] != targets[:-1]
    neg_inf = torch.tensor(float("-inf"))
    emit = log_probs[:, ext]  # (T, S)
    score = torch.full((S,), float("-inf"))
    score[0] = emit[0, 0]
    score[1] = emit[0, 1]
    back = torch.zeros((T, S), dtype=torch.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, T):
        stay = score
        step = torch.cat([neg_inf.view(1), score[:-1]])
        skip = torch.cat([neg_inf.expand(2), score[:-2]])
        skip = torch.where(can_skip, skip, neg_inf)
        cand = torch.stack([stay, step, skip])  # (3, S)
        best, arg = cand.max(dim=0)
        score = best + emit[t]
        back[t] = arg.to(torch.int8)
    # The path ends in the last token or the final blank.
    end_state = S - 1 if score[S - 1] >= score[S - 2] else S - 2
    if not torch.isfinite(score[end_state]):
        raise AlignmentError("no CTC path through the audio for this text")
    states = np.empty(T, dtype=np.int64)
    s = end_state
    back_np = back.numpy()
    for t in range(T - 1, -1, -1):
        states[t] = s
        s -= int(back_np[t, s])
    if s != 0 and states[0] not in (0, 1):
        raise AlignmentError("CTC backtrack did not reach the start")
    emit_np = emit.numpy()
    spans: list[TokenSpan] = []
    for k in range(L):
        frames = np.flatnonzero(states == 2 * k + 1)
        if frames.size == 0:
            raise AlignmentError("CTC path skipped a token")  # cannot happen for a valid path
        spans.append(TokenSpan(int(targets[k]), int(frames[0]), int(frames[-1]),
                               float(emit_np[frames, 2 * k + 1].mean())))
    return spans


class CTCAligner(Aligner):
    """Forced alignment with a NeMo CTC model (``EncDecCTCModel``, its BPE variant, or a hybrid model's CTC head).

    Args:
        model_path: a ``.nemo`` file, loaded with ``ASRModel.restore_from`` on the CPU.
        model: an already loaded model (instead of ``model_path``; used by tests).
        device: torch device for the forward pass.
        refine_db: place word edges with the audio's energy (see ``place_boundaries``); None: raw token spans.
    """

    name = "ctc"

    def __init__(self, model_path: str | None = None, model=None, device: str = "cpu",
                 refine_db: float | None = 30.0) -> None:
        self.refine_db = refine_db
        if model_path is None and model is None:
            raise ValueError("CTCAligner needs a .nemo model: --model PATH")
        self.model_path = model_path
        self.device = device
        self._model = model

    def __getstate__(self):
        state = self.__dict__.copy()
        if self.model_path is not None:
            state["_model"] = None  # each worker loads its own copy
        return state

    @property
    def model(self):
        if self._model is None:
            from nemo.collections.asr.models import ASRModel

            self._model = ASRModel.restore_from(self.model_path, map_location=torch.device(self.device))
        self._model.eval()
        return self._model

    # --- tokenisation -------------------------------------------------------------------------------------------
    def _vocabulary(self) -> list[str] | None:
        decoder = getattr(self.model, "ctc_decoder", None) or self.model.decoder
        vocab = getattr(decoder, "vocabulary", None)
        tokenizer = getattr(self.model, "tokenizer", None)
        return None if tokenizer is not None else list(vocab)

    def word_token_ids(self, words: list[str]) -> list[list[int]]:
        """Token ids of each word (character models: a space token between words goes to the previous word's gap,
        not to either word)."""
        tokenizer = getattr(self.model, "tokenizer", None)
        out = []
        if tokenizer is not None:
            for w in words:
                text = " ".join(tokens_for_word(w))
                out.append(list(tokenizer.text_to_ids(text)) if text else [])
            return out
        vocab = {c: i for i, c in enumerate(self._vocabulary())}
        for w in words:
            text = " ".join(tokens_for_word(w))
            ids = [vocab[c] for c in text if c in vocab]
            if text and not ids:
                raise AlignmentError(f"word {w!r} has no character in the model's vocabulary")
            out.append(ids)
        return out

    def log_probs(self, audio: np.ndarray) -> tuple[torch.Tensor, float]:
        """(T, V) log-probabilities and seconds per output frame."""
        model = self.model
        signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0).to(self.device)
        length = torch.tensor([signal.shape[1]], device=self.device)
        with torch.inference_mode():
            if hasattr(model, "ctc_decoder"):  # hybrid RNNT/CTC: run the CTC head on the encoder output
                encoded, enc_len = model.forward(input_signal=signal, input_signal_length=length)
                lp = model.ctc_decoder(encoder_output=encoded)
            else:
                lp, enc_len, _ = model.forward(input_signal=signal, input_signal_length=length)
        n = int(enc_len[0])
        lp = lp[0, :n].float().cpu()
        shift = None
        try:
            stride = float(model.cfg.preprocessor.window_stride)
            sub = getattr(model.encoder, "subsampling_factor", None) or getattr(model.encoder, "_subsampling_factor", None)
            if isinstance(sub, (int, float)) and sub > 0:
                shift = stride * sub
        except Exception:  # noqa: BLE001 - fall back to the duration ratio
            shift = None
        if shift is None:
            shift = len(audio) / SAMPLE_RATE / max(n, 1)
        return lp, shift

    def align_audio(self, audio: np.ndarray, text: str) -> list[WordSpanTime]:
        words = split_words(text)
        ids_per_word = self.word_token_ids(words)
        if not any(ids_per_word):
            raise AlignmentError(f"no spoken word in {text!r}: nothing to align")
        lp, shift = self.log_probs(audio)
        blank = lp.shape[1] - 1  # NeMo puts the blank last
        space = None
        vocab = self._vocabulary()
        if vocab is not None and " " in vocab:
            space = vocab.index(" ")
        targets, owner = [], []
        for i, ids in enumerate(ids_per_word):
            if not ids:
                continue
            if space is not None and targets:
                targets.append(space)
                owner.append(-1)
            targets.extend(ids)
            owner.extend([i] * len(ids))
        spans = ctc_forced_align(lp, targets, blank)
        duration = len(audio) / SAMPLE_RATE
        out: list[WordSpanTime] = []
        for i, w in enumerate(words):
            mine = [sp for sp, o in zip(spans, owner) if o == i]
            if not mine:
                out.append(WordSpanTime(w, -1.0, -1.0))
                continue
            start = mine[0].start * shift
            end = min(duration, (mine[-1].end + 1) * shift)
            out.append(WordSpanTime(w, round(start, 3), round(end, 3),
                                    round(float(np.mean([m.score for m in mine])), 3)))
        if self.refine_db is not None:
            place_boundaries([w for w in out if w.start >= 0], audio, self.refine_db)
        for i, w in enumerate(out):  # unspoken words: zero length at their boundary
            if w.start < 0:
                t = out[i - 1].end if i > 0 else next((x.start for x in out if x.start >= 0), 0.0)
                w.start = w.end = t
        return out


def place_boundaries(spans: list[WordSpanTime], audio: np.ndarray, drop_db: float = 30.0, min_pause: float = 0.03,
                     step: float = 0.01) -> None:
    """Word edges from CTC token spans, in place.

    CTC emits each token on one or a few frames somewhere inside its sound and blank elsewhere, so raw token spans
    cover only part of each word. Between two words, the blank frames are split: if they contain a pause (frames
    quieter than the loudest frame minus ``drop_db`` for at least ``min_pause``), the first word ends where the quiet
    run starts and the next begins where it ends; otherwise the boundary goes to the middle of the quietest stretch
    (or of the gap). The first word starts at the voiced onset before its first token, the last ends at the voiced
    offset after its last token.

    Args:
        spans: spoken words in order, times in seconds (token spans).
        audio: (T,) 16 kHz samples.
    """
    hop = int(step * SAMPLE_RATE)
    n = len(audio) // hop
    if n == 0 or not spans:
        return
    frames = audio[: n * hop].reshape(n, hop).astype(np.float64)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    voiced = energy > energy.max() - drop_db

    def is_voiced(i: int) -> bool:
        return 0 <= i < n and bool(voiced[i])

    duration = len(audio) / SAMPLE_RATE
    i = int(round(spans[0].start / step))
    while i - 1 >= 0 and is_voiced(i - 1):
        i -= 1
    spans[0].start = round(min(spans[0].start, i * step), 3)
    min_run = int(round(min_pause / step))
    for left, right in zip(spans, spans[1:]):
        e, s = int(round(left.end / step)), int(round(right.start / step))  # gap = frames [e, s)
        if s <= e:
            continue
        a = e
        while a < s and is_voiced(a):
            a += 1
        if a == s:  # voiced all through: no pause, split the gap in the middle
            left.end = right.start = round((left.end + right.start) / 2, 3)
            continue
        b = s
        while b > a and is_voiced(b - 1):
            b -= 1
        if b - a >= min_run:
            left.end, right.start = round(a * step, 3), round(b * step, 3)
        else:  # a short dip (a stop closure): the boundary goes into it
            left.end = right.start = round((a + b) / 2 * step, 3)
    i = int(round(spans[-1].end / step))
    while i < n and is_voiced(i):
        i += 1
    spans[-1].end = round(min(duration, max(spans[-1].end, i * step)), 3)
