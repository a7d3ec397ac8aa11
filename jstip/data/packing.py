"""Packing rendered documents into rows and collating them into a ``SpeechLMBatch``.

LLM side: documents go into the fewest rows of at most ``max_row_tokens`` positions, balanced in length (``pack_rows``);
a document longer than that gets a row of its own (it is never cut: cutting would split a speech span). Within a row,
``position_ids`` restart at 0 and ``document_ids`` count up per document.

Encoder side (``stream_per``): ``document`` is the batch contract, one stream per document with speech; ``row`` joins the
streams of the documents of one row; ``packed`` joins consecutive documents' streams into as many streams as there are
rows with speech, balanced in length (``partition_streams``). Streams are always in the row-major order of their
placeholders (the scatter order of ``jstip.data.batch``), so the model scatters them the same way in every mode. In
``row`` and ``packed`` modes the encoder attends across the utterances of one stream (never across text of the same
utterance: a stream still holds speech spans only, and no utterance appears twice in a batch). However streams are
formed, the model reads them in calls on groups of similar length (``encoder_groups``), not in one padded call.
"""

from __future__ import annotations

import heapq
from typing import Sequence

import numpy as np
import torch

from jstip.data.batch import IGNORE_INDEX, SpeechLMBatch
from jstip.data.render import Rendered


def pack_rows(lengths: Sequence[int], max_row_tokens: int) -> list[list[int]]:
    """Indices of documents per row, rows balanced in length.

    The fewest rows that can hold the documents (``ceil(total / max_row_tokens)``, one more while the longest-first
    greedy assignment to the least-filled row overflows one), so that rows end up nearly equally long and the batch's
    row length L (the longest row) wastes little. A document longer than ``max_row_tokens`` gets a row of its own.
    """
    long_docs = [i for i, n in enumerate(lengths) if n > max_row_tokens]
    rest = sorted((i for i, n in enumerate(lengths) if n <= max_row_tokens), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = [[i] for i in long_docs]
    if not rest:
        return rows
    num = max(1, -(-sum(lengths[i] for i in rest) // max_row_tokens))
    while True:
        heap = [(0, r) for r in range(num)]
        bins: list[list[int]] = [[] for _ in range(num)]
        for i in rest:
            load, r = heapq.heappop(heap)
            bins[r].append(i)
            heapq.heappush(heap, (load + lengths[i], r))
        if max(load for load, _ in heap) <= max_row_tokens:
            break
        num += 1
    return rows + [b for b in bins if b]


def partition_streams(lengths: Sequence[int], parts: int) -> list[list[int]]:
    """Split a sequence of stream lengths into at most ``parts`` contiguous groups with the smallest longest group
    (order kept: the scatter order of the batch is the order of the streams)."""
    if not lengths:
        return []
    parts = max(1, min(parts, len(lengths)))

    def greedy(cap: int) -> list[list[int]]:
        groups, cur, load = [], [], 0
        for i, n in enumerate(lengths):
            if cur and load + n > cap:
                groups.append(cur)
                cur, load = [], 0
            cur.append(i)
            load += n
        groups.append(cur)
        return groups

    lo, hi = max(lengths), sum(lengths)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(greedy(mid)) <= parts:
            hi = mid
        else:
            lo = mid + 1
    return greedy(lo)


def encoder_groups(lengths: Sequence[int], min_efficiency: float) -> list[list[int]]:
    """Streams grouped for separate encoder calls, so that padding wastes little: indices per group.

    A group is read as ``len(group) x its longest stream``. The streams sorted by length (longest first) are split into
    the fewest contiguous groups whose real / read samples is at least ``min_efficiency`` (for each number of groups,
    the split that reads the fewest samples: dynamic programming). Each stream is still encoded on its own (padding is
    masked), so the outputs are those of one padded call, at a fraction of its cost when lengths differ.
    ``min_efficiency <= 0``: one group in the given order (one padded call).
    """
    n = len(lengths)
    if n == 0:
        return []
    if min_efficiency <= 0:
        return [list(range(n))]
    order = sorted(range(n), key=lambda i: (-int(lengths[i]), i))
    L = np.array([float(lengths[i]) for i in order])
    budget = L.sum() / min(float(min_efficiency), 1.0) * (1 + 1e-9)
    i_idx, j_idx = np.arange(n)[:, None], np.arange(1, n + 1)[None, :]
    read = np.where(i_idx < j_idx, (j_idx - i_idx) * L[:, None], np.inf)  # read[i, j-1]: group order[i:j]
    cost = np.full(n + 1, np.inf)
    cost[0] = 0.0
    back = []
    while True:  # groups = len(back) + 1; at most n rounds (n groups read exactly the real samples)
        total = cost[:-1, None] + read  # (i, j-1)
        start = total.argmin(axis=0)
        cost = np.concatenate([[np.inf], total[start, np.arange(n)]])
        back.append(start)
        if cost[n] <= budget:
            break
    groups, j = [], n
    for start in reversed(back):
        i = int(start[j - 1])
        groups.append([order[k] for k in range(i, j)])
        j = i
    return groups[::-1]


def collate(docs: Sequence[Rendered], streams: Sequence[np.ndarray | None], pad_id: int,
            max_row_tokens: int | None = None, pad_to_multiple: int = 1, stream_per: str = "document") -> SpeechLMBatch:
    """Pack documents into rows and build the batch.

    Args:
        docs: rendered documents.
        streams: per document, its speech stream (``jstip.data.render.speech_stream``) or None when it has no speech.
        pad_id: token id of padding positions.
        max_row_tokens: row capacity; None = one document per row.
        pad_to_multiple: round the row length L up to a multiple of this.
        stream_per: ``document``, ``row`` or ``packed`` (module docstring).
    """
    if stream_per not in ("document", "row", "packed"):
        raise ValueError(f"stream_per must be document, row or packed, got {stream_per!r}")
    if not docs:
        raise ValueError("no documents to collate")
    lengths = [len(d) for d in docs]
    rows = [[i] for i in range(len(docs))] if max_row_tokens is None else pack_rows(lengths, max_row_tokens)
    L = max(sum(lengths[i] for i in row) for row in rows)
    L = -(-L // pad_to_multiple) * pad_to_multiple
    B = len(rows)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    labels = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
    speech_mask = torch.zeros((B, L), dtype=torch.bool)
    position_ids = torch.zeros((B, L), dtype=torch.long)
    document_ids = torch.full((B, L), -1, dtype=torch.long)
    stream_list: list[np.ndarray] = []
    stream_frames: list[int] = []
    span_frames: list[list[int]] = []
    example_ids: list[str] = []
    cut_ids: list[str | None] = []
    tasks: list[str] = []
    for b, row in enumerate(rows):
        pos = 0
        row_streams: list[np.ndarray] = []
        row_spans: list[int] = []
        for doc_idx, i in enumerate(row):
            d, n = docs[i], lengths[i]
            input_ids[b, pos:pos + n] = torch.tensor(d.input_ids, dtype=torch.long)
            labels[b, pos:pos + n] = torch.tensor(d.labels, dtype=torch.long)
            speech_mask[b, pos:pos + n] = torch.tensor(d.speech_mask, dtype=torch.bool)
            position_ids[b, pos:pos + n] = torch.arange(n)
            document_ids[b, pos:pos + n] = doc_idx
            pos += n
            example_ids.append(d.example_id)
            cut_ids.append(d.cut_id)
            tasks.append(d.task)
            if d.span_frames:
                stream = streams[i]
                if stream is None:
                    raise ValueError(f"{d.example_id}: has speech positions but no audio stream")
                if stream_per == "row":
                    row_streams.append(stream)
                    row_spans.extend(d.span_frames)
                else:
                    stream_list.append(stream)
                    stream_frames.append(sum(d.span_frames))
                    span_frames.append(list(d.span_frames))
        if row_streams:
            stream_list.append(np.concatenate(row_streams))
            stream_frames.append(sum(row_spans))
            span_frames.append(row_spans)
    if stream_per == "packed" and stream_list:
        rows_with_speech = int(speech_mask.any(dim=1).sum())
        groups = partition_streams([len(x) for x in stream_list], rows_with_speech)
        stream_list = [np.concatenate([stream_list[i] for i in g]) for g in groups]
        stream_frames = [sum(stream_frames[i] for i in g) for g in groups]
        span_frames = [[n for i in g for n in span_frames[i]] for g in groups]
    T = max((len(s) for s in stream_list), default=0)
    audio = torch.zeros((len(stream_list), T), dtype=torch.float32)
    for s, x in enumerate(stream_list):
        audio[s, :len(x)] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return SpeechLMBatch(
        input_ids=input_ids,
        speech_mask=speech_mask,
        labels=labels,
        position_ids=position_ids,
        document_ids=document_ids,
        audio=audio,
        audio_lens=torch.tensor([len(x) for x in stream_list], dtype=torch.long),
        stream_frames=torch.tensor(stream_frames, dtype=torch.long),
        span_frames=span_frames,
        example_ids=example_ids,
        cut_ids=cut_ids,
        tasks=tasks,
    )


def padding_efficiency(batch: SpeechLMBatch, encoder_min_efficiency: float = 0.0) -> dict[str, float]:
    """Real / allocated positions: LLM side (non-padding of B x L) and encoder side (real samples over the samples the
    encoder reads: one padded call over S x T, or with ``encoder_min_efficiency`` (the model's
    ``model.encoder.min_efficiency``) its calls on :func:`encoder_groups` of the streams, as the model makes them;
    ``enc_calls`` of them)."""
    llm_real = int((batch.document_ids >= 0).sum())
    llm_alloc = int(batch.input_ids.numel())
    lens = batch.audio_lens.tolist()
    groups = encoder_groups(lens, encoder_min_efficiency)
    enc_real = int(sum(lens))
    enc_alloc = sum(len(g) * max(lens[i] for i in g) for g in groups)
    return {
        "llm_real": llm_real, "llm_alloc": llm_alloc, "enc_real": enc_real, "enc_alloc": enc_alloc,
        "enc_calls": len(groups),
        "llm": llm_real / llm_alloc if llm_alloc else 1.0,
        "encoder": enc_real / enc_alloc if enc_alloc else 1.0,
    }
