""""Does it listen": a speech-LLM's loss on each transcript with its own audio and with another utterance's audio.

A model that leans on its LLM prior and ignores the audio scores about the same either way; a model that listens
becomes much less sure of a transcript when it hears something else. The utterances are sorted by duration and
swapped in neighbouring pairs (0 <-> 1, 2 <-> 3, ...; an odd last one with its predecessor), so the other audio has
a similar length and the prompt the same number of speech positions, give or take a frame. Losses are per transcript
token (the ASR format of :mod:`jstip.data.render`, EOS included), averaged over all tokens of the utterances scored.
"""

from __future__ import annotations

import torch
from jstip.audio import SAMPLE_RATE


def swap_partners(durations: list[float]) -> list[int]:
    """For each utterance, the index of the utterance whose audio it is scored with in the mismatched condition."""
    order = sorted(range(len(durations)), key=lambda i: (durations[i], i))
    partner = list(range(len(durations)))
    for k in range(0, len(order) - 1, 2):
        a, b = order[k], order[k + 1]
        partner[a], partner[b] = b, a
    if len(order) % 2 == 1 and len(order) > 1:
        partner[order[-1]] = order[-2]
    return partner


@torch.no_grad()
def listening_figure(model, tokenizer, config, cuts, max_utterances: int | None = 100, batch_size: int = 8) -> dict:
    """``{"loss_own", "loss_other", "rise", "tokens", "utterances"}``: mean loss per token (nats) with each
    utterance's own audio and with its partner's (:func:`swap_partners`); ``rise`` = other - own.

    Args:
        model: a ``SpeechLM``; tokenizer / config: its run's (the ASR prompt format of ``data.render``).
        cuts: lhotse cuts with transcripts; the first ``max_utterances`` readable ones are used.
    """
    from jstip.data.packing import collate
    from jstip.data.render import Renderer, speech_stream
    from jstip.audio import load_cut_audio
    from jstip.evaluate.decode import render_config

    renderer = Renderer(tokenizer, render_config(config))
    frame_shift = renderer.cfg.frame_shift
    rows = []
    for cut in cuts:
        text = " ".join(s.text for s in cut.supervisions if s.text).strip()
        if not text:
            continue
        try:
            audio = load_cut_audio(cut)
        except Exception:  # noqa: BLE001 -- unreadable audio is reported by decoding; not scored here
            continue
        if audio.size == 0:
            continue
        rows.append((cut.id, text, audio))
        if max_utterances is not None and len(rows) >= max_utterances:
            break
    if len(rows) < 2:
        return {"loss_own": None, "loss_other": None, "rise": None, "tokens": 0, "utterances": len(rows)}
    partner = swap_partners([len(a) for _, _, a in rows])
    was_training = model.training
    model.eval()
    totals = {}
    # A model with a first pass reads its transcript of the audio too: with another utterance's audio, that audio's.
    hyps = model.hypotheses([a for _, _, a in rows]) if getattr(model, "first_pass", None) is not None else None
    try:
        for name, source in (("own", list(range(len(rows)))), ("other", partner)):
            loss_sum, count = 0.0, 0
            for start in range(0, len(rows), batch_size):
                docs, streams = [], []
                for i in range(start, min(start + batch_size, len(rows))):
                    cut_id, text, _ = rows[i]
                    audio = rows[source[i]][2]
                    doc = renderer.asr(f"{cut_id}_{name}", text, 0.0, len(audio) / SAMPLE_RATE, cut_id=cut_id,
                                       hypothesis=None if hyps is None else hyps[source[i]])
                    stream, _ = speech_stream(audio, doc.spans, frame_shift)
                    docs.append(doc)
                    streams.append(stream)
                batch = collate(docs, streams, renderer.pad_id, None, 8, "document")
                device = next(model.parameters()).device
                out = model(batch.to(device), compute_logits=False, reduction="none")
                loss_sum += float(out.loss.sum())
                count += out.num_tokens
            totals[name] = (loss_sum / max(1, count), count)
    finally:
        model.train(was_training)
    own, other = totals["own"][0], totals["other"][0]
    return {"loss_own": own, "loss_other": other, "rise": other - own, "tokens": totals["own"][1],
            "utterances": len(rows), "pairing": "neighbours by duration, swapped"}


__all__ = ["listening_figure", "swap_partners"]
