"""CTC Viterbi forced alignment on constructed posteriors where the right path is known."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from jstip.align.base import AlignmentError
from jstip.align.ctc import CTCAligner, ctc_forced_align


def _posteriors(path: list[int], vocab_size: int, sharp: float = 6.0, seed: int = 0) -> torch.Tensor:
    """(T, V) log-probs whose argmax per frame is ``path`` (with noise)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (len(path), vocab_size))
    for t, p in enumerate(path):
        logits[t, p] += sharp
    return torch.log_softmax(torch.tensor(logits, dtype=torch.float32), dim=-1)


def _collapse(path, blank):
    out, prev = [], None
    for p in path:
        if p != prev and p != blank:
            out.append(p)
        prev = p
    return out


def _path_from_spans(spans, T, blank):
    path = [blank] * T
    for s in spans:
        for t in range(s.start, s.end + 1):
            path[t] = s.token
    return path


def test_known_path_with_repeated_tokens():
    blank = 0
    #       b  1  1  b  2  b  2  3  3  b
    path = [0, 1, 1, 0, 2, 0, 2, 3, 3, 0]
    spans = ctc_forced_align(_posteriors(path, 4), [1, 2, 2, 3], blank)
    assert [(s.token, s.start, s.end) for s in spans] == [(1, 1, 2), (2, 4, 4), (2, 6, 6), (3, 7, 8)]


@pytest.mark.parametrize("seed", range(5))
def test_viterbi_matches_brute_force(seed):
    """On random posteriors the returned path is a valid CTC path of the target with the best score of all."""
    blank, V, T = 3, 4, 7
    targets = [0, 1, 1] if seed % 2 else [2, 0]
    lp = _posteriors([blank] * T, V, sharp=0.0, seed=seed)
    spans = ctc_forced_align(lp, targets, blank)
    path = _path_from_spans(spans, T, blank)
    assert _collapse(path, blank) == targets
    score = sum(float(lp[t, p]) for t, p in enumerate(path))
    best = max(sum(float(lp[t, p]) for t, p in enumerate(cand))
               for cand in itertools.product(range(V), repeat=T) if _collapse(cand, blank) == targets)
    assert score == pytest.approx(best, abs=1e-4)


def test_too_few_frames_is_an_alignment_error():
    lp = _posteriors([0, 1, 0], 3)
    with pytest.raises(AlignmentError, match="cannot hold"):
        ctc_forced_align(lp, [1, 1, 2], 0)  # needs 4 frames (a blank between the repeated 1s)


class _FakeCharModel(torch.nn.Module):
    """Stands in for a NeMo char CTC model: vocabulary, 40 ms output frames, fixed posteriors."""

    def __init__(self, vocabulary, path):
        super().__init__()
        self.decoder = SimpleNamespace(vocabulary=vocabulary)
        self.encoder = SimpleNamespace(subsampling_factor=4)
        self.cfg = SimpleNamespace(preprocessor=SimpleNamespace(window_stride=0.01))
        self.path = path

    def forward(self, input_signal, input_signal_length):
        lp = _posteriors(self.path, len(self.decoder.vocabulary) + 1).unsqueeze(0)
        return lp, torch.tensor([len(self.path)]), None


def test_ctc_aligner_words_from_token_spans():
    vocab = [" ", "a", "b", "h", "i", "'"]
    blank = len(vocab)
    ids = {c: i for i, c in enumerate(vocab)}
    # frames:  0-2 blank | 3-4 h | 5 i | 6-7 blank | 8 space | 9 a | 10-11 b | 12-15 blank
    path = [blank] * 3 + [ids["h"]] * 2 + [ids["i"]] + [blank] * 2 + [ids[" "]] + [ids["a"]] + [ids["b"]] * 2 + \
        [blank] * 4
    aligner = CTCAligner(model=_FakeCharModel(vocab, path), refine_db=None)
    audio = np.zeros(int(16 * 0.04 * 16000), np.float32)
    spans = aligner.align_audio(audio, "Hi, -- AB!")
    assert [s.word for s in spans] == ["Hi,", "--", "AB!"]
    assert (spans[0].start, spans[0].end) == pytest.approx((0.12, 0.24))
    assert spans[1].start == spans[1].end == pytest.approx(0.24)  # unspoken: zero length at its boundary
    assert (spans[2].start, spans[2].end) == pytest.approx((0.36, 0.48))


def test_place_boundaries_uses_pauses_and_gaps():
    from jstip.align.base import WordSpanTime
    from jstip.align.ctc import place_boundaries

    t = np.arange(int(1.6 * 16000)) / 16000
    audio = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    audio[: int(0.2 * 16000)] = 0  # leading silence
    audio[int(0.7 * 16000): int(0.9 * 16000)] = 0  # a pause between word 1 and word 2
    audio[int(1.4 * 16000):] = 0  # trailing silence
    # Token spans as a peaky CTC model gives them: short, inside each word.
    spans = [WordSpanTime("one", 0.30, 0.36), WordSpanTime("two", 1.00, 1.04), WordSpanTime("three", 1.20, 1.26)]
    place_boundaries(spans, audio)
    assert spans[0].start == pytest.approx(0.2, abs=0.011)  # voiced onset before the first token
    assert spans[0].end == pytest.approx(0.7, abs=0.011) and spans[1].start == pytest.approx(0.9, abs=0.011)
    assert spans[1].end == spans[2].start == pytest.approx(1.12, abs=0.011)  # no pause: middle of the gap
    assert spans[2].end == pytest.approx(1.4, abs=0.011)  # voiced offset after the last token


class _FakeTokenizer:
    """Sentencepiece-like: each word is one piece, '▁' + word."""

    def __init__(self, pieces):
        self.pieces = pieces

    def text_to_ids(self, text):
        return [self.pieces.index("▁" + w) for w in text.split()]


class _FakeHybridBPEModel(torch.nn.Module):
    """Stands in for a hybrid RNNT/CTC BPE model: forward gives the encoder output, ctc_decoder the log-probs."""

    def __init__(self, pieces, path):
        super().__init__()
        self.tokenizer = _FakeTokenizer(pieces)
        self.ctc_decoder = lambda encoder_output: _posteriors(path, len(pieces) + 1).unsqueeze(0)
        self.ctc_decoder_vocabulary = pieces
        self.encoder = SimpleNamespace(subsampling_factor=8)
        self.cfg = SimpleNamespace(preprocessor=SimpleNamespace(window_stride=0.01))
        self.path = path

    def forward(self, input_signal, input_signal_length):
        return torch.zeros(1, 4, len(self.path)), torch.tensor([len(self.path)])


def test_ctc_aligner_bpe_hybrid_model_numbers_spelled():
    pieces = ["▁take", "▁twenty", "▁pills"]
    blank = len(pieces)
    # 80 ms frames: take 1-2, twenty 4-6, pills 8
    path = [blank, 0, 0, blank, 1, 1, 1, blank, 2, blank]
    aligner = CTCAligner(model=_FakeHybridBPEModel(pieces, path), refine_db=None)
    spans = aligner.align_audio(np.zeros(int(10 * 0.08 * 16000), np.float32), "Take 20 pills.")
    assert [s.word for s in spans] == ["Take", "20", "pills."]
    assert [(s.start, s.end) for s in spans] == [pytest.approx((0.08, 0.24)), pytest.approx((0.32, 0.56)),
                                                 pytest.approx((0.64, 0.72))]
