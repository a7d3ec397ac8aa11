"""Packing rendered documents into rows and collating them into a ``SpeechLMBatch``.

Rows are filled first-fit in decreasing length order up to ``max_row_tokens`` positions; a document longer than that
gets a row of its own (it is never cut: cutting would split a speech span). Within a row, documents keep the order in
which they were placed; ``position_ids`` restart at 0 and ``document_ids`` count up per document. One speech stream per
document with speech, in the row-major order of its placeholders (the scatter order of ``jstip.data.batch``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from jstip.data.batch import IGNORE_INDEX, SpeechLMBatch
from jstip.data.render import Rendered


def pack_rows(lengths: Sequence[int], max_row_tokens: int) -> list[list[int]]:
    """Indices of documents per row: first-fit decreasing bin packing by length."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(max(0, max_row_tokens - n))
    return rows


def collate(docs: Sequence[Rendered], streams: Sequence[np.ndarray | None], pad_id: int,
            max_row_tokens: int | None = None, pad_to_multiple: int = 1, stream_per: str = "document") -> SpeechLMBatch:
    """Pack documents into rows and build the batch.

    Args:
        docs: rendered documents.
        streams: per document, its speech stream (``jstip.data.render.speech_stream``) or None when it has no speech.
        pad_id: token id of padding positions.
        max_row_tokens: row capacity; None = one document per row.
        pad_to_multiple: round the row length L up to a multiple of this.
        stream_per: ``document`` (the contract: one stream per document with speech) or ``row`` (the streams of all
            documents of a row concatenated into one, as the paper encodes "all speech spans of a sequence" once:
            less encoder padding, but the encoder then attends across the row's utterances). The scatter order is the
            same either way.
    """
    if stream_per not in ("document", "row"):
        raise ValueError(f"stream_per must be document or row, got {stream_per!r}")
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
        tasks=tasks,
    )


def padding_efficiency(batch: SpeechLMBatch) -> dict[str, float]:
    """Real / allocated positions: LLM side (non-padding of B x L) and encoder side (real samples of S x T)."""
    llm_real = int((batch.document_ids >= 0).sum())
    llm_alloc = int(batch.input_ids.numel())
    enc_real = int(batch.audio_lens.sum())
    enc_alloc = int(batch.audio.numel())
    return {
        "llm_real": llm_real, "llm_alloc": llm_alloc, "enc_real": enc_real, "enc_alloc": enc_alloc,
        "llm": llm_real / llm_alloc if llm_alloc else 1.0,
        "encoder": enc_real / enc_alloc if enc_alloc else 1.0,
    }
