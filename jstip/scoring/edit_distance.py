"""Edit-distance alignment of token sequences and the error counts built on it: WER, CER, TER, B-WER/U-WER.

(Not forced alignment, which is :mod:`jstip.align`: this aligns a hypothesis with its reference.)

Alignment is by minimum weighted edit cost with the NIST sclite weights: substitution 4, insertion 3, deletion 3
(a match costs 0). Because a substitution is cheaper than an insertion plus a deletion but dearer than either alone,
these weights decide the substitution/insertion/deletion split differently from unit-cost Levenshtein (test-clean
of the biasing benchmark: 1501/195/225 against 1503/194/224), and so which reference words are in error, which
matters for B-WER. Among paths of equal cost the choice is fixed, cell by cell while filling the table: the diagonal
(match or substitution) wins ties, then the insertion, and a deletion is taken only when strictly cheaper; the path
is read back from the last cell. This is the tie-breaking of the published biasing scorer (Le et al. 2021), which
``jstip score`` reproduces to the count on LibriSpeech (tests/scoring/test_conformance.py). kaldialign's
``sclite_mode`` uses the same weights but breaks ties differently (it gives 735/180 instead of 725/190 U-WER
substitutions/deletions on test-clean), so it is not used for words.

The dynamic programme is vectorised with numpy over a batch of utterances and over the hypothesis axis: row ``i``
of the cost table is ``min(diagonal, deletion)`` from row ``i - 1``, then the chain of insertions along the row is a
running minimum (``D[j] = min(cand[j], D[j - 1] + 3)`` = ``3 j + cummin(cand[k] - 3 k)``). CER uses kaldialign's
unit-cost edit distance over characters (the usual definition, as in jiwer).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

SUB_COST = 4
INS_COST = 3
DEL_COST = 3

MATCH, SUB, INS, DEL = "C", "S", "I", "D"
_DIAG, _INS, _DEL = 0, 1, 2


class AlignedPair(NamedTuple):
    """One step of an alignment: ``op`` is ``C`` (correct), ``S``, ``I`` or ``D``.

    ``ref_index`` is None for an insertion, ``hyp_index`` is None for a deletion.
    """

    op: str
    ref_index: int | None
    hyp_index: int | None


class EditAlignment(Sequence):
    """The alignment of one utterance: a sequence of :class:`AlignedPair` steps in order.

    Stored compactly (``ops``: one letter C/S/I/D per step; token indices with -1 for none), because a test set has
    hundreds of thousands of steps and most figures only need the letters.
    """

    __slots__ = ("ops", "_ref", "_hyp")

    def __init__(self, ops: str, ref_index: list[int], hyp_index: list[int]):
        self.ops = ops
        self._ref = ref_index
        self._hyp = hyp_index

    def __len__(self) -> int:
        return len(self.ops)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        r, h = self._ref[k], self._hyp[k]
        return AlignedPair(self.ops[k], None if r < 0 else r, None if h < 0 else h)

    def __iter__(self):
        for op, r, h in zip(self.ops, self._ref, self._hyp):
            yield AlignedPair(op, None if r < 0 else r, None if h < 0 else h)

    def __repr__(self) -> str:
        return f"EditAlignment({self.ops!r})"


@dataclass
class ErrorCounts:
    """Substitutions, insertions and deletions against a number of reference units (words or characters)."""

    ref_words: int = 0
    subs: int = 0
    ins: int = 0
    dels: int = 0

    @property
    def errors(self) -> int:
        return self.subs + self.ins + self.dels

    @property
    def rate(self) -> float | None:
        """errors / ref_words as a fraction, or None when there is no reference unit."""
        return self.errors / self.ref_words if self.ref_words else None

    def add(self, other: ErrorCounts) -> None:
        self.ref_words += other.ref_words
        self.subs += other.subs
        self.ins += other.ins
        self.dels += other.dels

    def to_dict(self) -> dict:
        return {"ref_words": self.ref_words, "subs": self.subs, "ins": self.ins, "dels": self.dels,
                "errors": self.errors}


def _encode(pairs: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]]):
    """Token ids of all sequences: (flat ids, ref lengths, hyp lengths), refs first then hyps per pair."""
    tokens: list[Hashable] = []
    ref_lens = np.empty(len(pairs), dtype=np.int64)
    hyp_lens = np.empty(len(pairs), dtype=np.int64)
    for k, (ref, hyp) in enumerate(pairs):
        tokens.extend(ref)
        tokens.extend(hyp)
        ref_lens[k], hyp_lens[k] = len(ref), len(hyp)
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    ids = np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    return ids, ref_lens, hyp_lens


def _align_bucket(ref_ids: np.ndarray, hyp_ids: np.ndarray, ref_lens: np.ndarray, hyp_lens: np.ndarray):
    """Align a bucket of padded utterances.

    Args:
        ref_ids: (B, N) token ids, padded with -1; hyp_ids: (B, M) padded with -2 (padding never matches).
        ref_lens, hyp_lens: (B,) true lengths.

    Returns:
        (codes, ref_index, hyp_index), each (B, N + M): per utterance the alignment steps in order, right-aligned
        (left padding has code -1). Codes 0..3 = C, S, I, D; indices are -1 where the step has no ref/hyp token.
        Padding is harmless in the table: cell (i, j) depends only on cells (<= i, <= j), and each utterance is read
        back from its own last cell (ref_len, hyp_len).
    """
    batch, n_max = ref_ids.shape
    m_max = hyp_ids.shape[1]
    cols = np.arange(m_max + 1, dtype=np.int64) * INS_COST  # (M + 1,)
    back = np.empty((batch, n_max + 1, m_max + 1), dtype=np.int8)  # back-pointers _DIAG / _INS / _DEL
    back[:, 0, :] = _INS
    prev = np.broadcast_to(cols, (batch, m_max + 1)).copy()  # (B, M + 1) costs of row i - 1
    row = np.empty_like(prev)
    for i in range(1, n_max + 1):
        diag = prev[:, :-1] + np.where(ref_ids[:, i - 1 : i] == hyp_ids, 0, SUB_COST)  # (B, M)
        dele = prev[:, 1:] + DEL_COST
        row[:, 0] = i * DEL_COST
        row[:, 1:] = np.minimum(diag, dele)
        # Insertions chain along the row: D[j] = min(cand[j], D[j-1] + 3) is a running minimum.
        row[:] = np.minimum.accumulate(row - cols, axis=1) + cols
        ins = row[:, :-1] + INS_COST
        # Ties: diagonal first, then insertion; a deletion only when strictly cheaper than both.
        back[:, i, 1:] = np.where(diag <= ins, np.where(diag <= dele, _DIAG, _DEL), np.where(ins <= dele, _INS, _DEL))
        back[:, i, 0] = _DEL
        prev, row = row, prev

    # Read all paths back at once, from each utterance's last cell; steps are collected last-first.
    length = n_max + m_max
    steps = np.full((batch, length), -1, dtype=np.int8)
    i, j = ref_lens.copy(), hyp_lens.copy()
    rows = np.arange(batch)
    for t in range(length):
        active = (i > 0) | (j > 0)
        if not active.any():
            break
        step = np.where(active, back[rows, i, j], -1)
        steps[:, t] = step
        i -= (step == _DIAG) | (step == _DEL)
        j -= (step == _DIAG) | (step == _INS)
    forward = steps[:, ::-1]  # in order, left-padded with -1
    uses_ref = (forward == _DIAG) | (forward == _DEL)
    uses_hyp = (forward == _DIAG) | (forward == _INS)
    ref_index = np.where(uses_ref, np.cumsum(uses_ref, axis=1) - 1, -1)
    hyp_index = np.where(uses_hyp, np.cumsum(uses_hyp, axis=1) - 1, -1)
    equal = (np.take_along_axis(ref_ids, np.clip(ref_index, 0, max(n_max - 1, 0)), axis=1) ==
             np.take_along_axis(hyp_ids, np.clip(hyp_index, 0, max(m_max - 1, 0)), axis=1)) if n_max and m_max \
        else np.zeros_like(forward, dtype=bool)
    codes = np.select([forward == _DIAG, forward == _INS, forward == _DEL], [np.where(equal, 0, 1), 2, 3], -1)
    return codes, ref_index, hyp_index


_OP_LETTERS = np.frombuffer(b"CSID", dtype=np.uint8)


def edit_align_batch(
    pairs: Sequence[tuple[Sequence[Hashable], Sequence[Hashable]]], bucket_cells: int = 4_000_000
) -> list[EditAlignment]:
    """Align many (reference, hypothesis) token sequences with the sclite weights (see the module docstring).

    Args:
        pairs: (ref tokens, hyp tokens) per utterance; tokens are any hashable values compared with ``==``.
        bucket_cells: at most this many table cells per vectorised bucket (memory: one byte per cell).

    Returns:
        One :class:`EditAlignment` per pair.
    """
    ids, ref_lens, hyp_lens = _encode(pairs)
    offsets = np.concatenate([[0], np.cumsum(ref_lens + hyp_lens)])
    order = np.lexsort((hyp_lens, ref_lens))  # by length: buckets of similar sizes waste little padding
    results: list[EditAlignment | None] = [None] * len(pairs)
    start = 0
    while start < len(order):
        end = start + 1
        n_max, m_max = ref_lens[order[start]], hyp_lens[order[start]]
        while end < len(order):
            n2, m2 = max(n_max, ref_lens[order[end]]), max(m_max, hyp_lens[order[end]])
            if (end - start + 1) * (n2 + 1) * (m2 + 1) > bucket_cells:
                break
            n_max, m_max, end = n2, m2, end + 1
        bucket = order[start:end]
        ref_ids = np.full((len(bucket), n_max), -1, dtype=np.int64)
        hyp_ids = np.full((len(bucket), m_max), -2, dtype=np.int64)
        for b, k in enumerate(bucket):
            o, n, m = offsets[k], ref_lens[k], hyp_lens[k]
            ref_ids[b, :n] = ids[o : o + n]
            hyp_ids[b, :m] = ids[o + n : o + n + m]
        codes, ref_index, hyp_index = _align_bucket(ref_ids, hyp_ids, ref_lens[bucket], hyp_lens[bucket])
        width = codes.shape[1]
        first = (width - (codes >= 0).sum(axis=1)).tolist()
        letters = _OP_LETTERS[np.maximum(codes, 0)]
        for b, k in enumerate(bucket):
            f = first[b]
            results[k] = EditAlignment(letters[b, f:].tobytes().decode("ascii"), ref_index[b, f:].tolist(),
                                   hyp_index[b, f:].tolist())
        start = end
    return results  # type: ignore[return-value]


def edit_align(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> EditAlignment:
    """Align one reference with one hypothesis (see :func:`edit_align_batch`)."""
    return edit_align_batch([(ref, hyp)])[0]


def count_errors(alignment: Sequence[AlignedPair]) -> ErrorCounts:
    """Error counts of one alignment."""
    if isinstance(alignment, EditAlignment):
        ops = alignment.ops
        ins = ops.count(INS)
        return ErrorCounts(ref_words=len(ops) - ins, subs=ops.count(SUB), ins=ins, dels=ops.count(DEL))
    counts = ErrorCounts()
    for pair in alignment:
        if pair.op != INS:
            counts.ref_words += 1
        if pair.op == SUB:
            counts.subs += 1
        elif pair.op == INS:
            counts.ins += 1
        elif pair.op == DEL:
            counts.dels += 1
    return counts


def biased_counts(
    alignment: Sequence[AlignedPair], ref: Sequence[str], hyp: Sequence[str], biasing_words: set[str]
) -> tuple[ErrorCounts, ErrorCounts]:
    """Split the errors of an alignment into biased (B-WER) and unbiased (U-WER) counts (Le et al. 2021).

    A reference word counts toward B-WER when it is in ``biasing_words`` and toward U-WER otherwise; an insertion
    counts toward B-WER only when the inserted word is in ``biasing_words``.

    Returns:
        (biased, unbiased) counts.
    """
    biased, unbiased = ErrorCounts(), ErrorCounts()
    for pair in alignment:
        if pair.op == INS:
            (biased if hyp[pair.hyp_index] in biasing_words else unbiased).ins += 1
            continue
        counts = biased if ref[pair.ref_index] in biasing_words else unbiased
        counts.ref_words += 1
        if pair.op == SUB:
            counts.subs += 1
        elif pair.op == DEL:
            counts.dels += 1
    return biased, unbiased


def char_counts(ref: str, hyp: str) -> ErrorCounts:
    """Character error counts (unit-cost edit distance; spaces between words count as characters)."""
    import kaldialign

    if not ref and not hyp:
        return ErrorCounts()
    result = kaldialign.edit_distance(ref, hyp)
    return ErrorCounts(ref_words=len(ref), subs=result["sub"], ins=result["ins"], dels=result["del"])
