from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from jstip.audio import samples_per_frame
from jstip.data.packing import collate
from jstip.model.speechlm import SpeechLM, block_causal_mask

from model_helpers import make_docs, noise


class FrameCodeEncoder(nn.Module):
    """Encoder stub: one output frame per 80 ms whose value is the mean of that block's samples."""

    frame_shift = 0.08
    dim = 1

    def forward(self, audio, lens):
        S, T = audio.shape
        frames = audio[:, : T // 1280 * 1280].reshape(S, T // 1280, 1280).mean(-1, keepdim=True)  # (S, N, 1)
        return frames, lens // 1280


class Broadcast(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.width = width

    def forward(self, feats, lens):
        return feats.expand(-1, -1, self.width), lens


def test_each_placeholder_gets_the_adapter_output_of_its_frame(renderer, model):
    docs, streams = make_docs(renderer)
    # Frame f of document i's audio holds the constant 1000*i + f; the stub encoder reports it back per frame.
    coded = [None if st is None else np.repeat(1000.0 * i + np.arange(len(st) // 1280), 1280).astype(np.float32)
             for i, st in enumerate(streams)]
    batch = collate(docs, coded, renderer.pad_id, max_row_tokens=80, pad_to_multiple=8)
    batch.validate()
    assert batch.input_ids.shape[0] >= 2  # packed into several rows, several documents per row
    width = model.llm.get_input_embeddings().weight.shape[1]
    stub = SpeechLM(FrameCodeEncoder(), Broadcast(width), model.llm)
    embeds = stub.embed(batch)
    # Expected value of every placeholder, from the batch layout alone: the k-th document in row-major order is
    # example_ids[k]; its placeholders, in order, must hold its own audio's frames 0, 1, 2, ...
    original = {d.example_id: i for i, d in enumerate(docs)}
    k = checked = 0
    B, L = batch.input_ids.shape
    for b in range(B):
        for d in range(int(batch.document_ids[b].max()) + 1):
            i = original[batch.example_ids[k]]
            k += 1
            pos = ((batch.document_ids[b] == d) & batch.speech_mask[b]).nonzero().flatten().tolist()
            assert len(pos) == sum(docs[i].span_frames)
            for f, p in enumerate(pos):
                assert torch.all(embeds[b, p] == 1000.0 * i + f), (b, d, p)
                checked += 1
    assert checked == int(batch.stream_frames.sum()) > 0
    # Text positions keep their token embeddings.
    tok = model.llm.get_input_embeddings()(batch.input_ids)
    assert torch.equal(embeds[~batch.speech_mask], tok[~batch.speech_mask])


def test_real_encoder_frames_land_in_order(renderer, model):
    docs, streams = make_docs(renderer)
    batch = collate(docs, streams, renderer.pad_id, max_row_tokens=80, pad_to_multiple=8)
    with torch.no_grad():
        embeds = model.embed(batch)
        frames = model.encode_streams(batch.audio, batch.audio_lens, batch.stream_frames)
    assert torch.equal(embeds[batch.speech_mask], frames)
    # Each stream alone gives the same frames as in the padded call (padding is masked in the encoder).
    start = 0
    for s, n in enumerate(batch.stream_frames.tolist()):
        T = int(batch.audio_lens[s])
        with torch.no_grad():
            alone = model.encode_streams(batch.audio[s:s + 1, :T], batch.audio_lens[s:s + 1], batch.stream_frames[s:s + 1])
        torch.testing.assert_close(alone, frames[start:start + n], atol=1e-5, rtol=1e-4)
        start += n


def test_grouped_encoder_calls_equal_one_padded_call(renderer, model):
    """Streams of very different lengths: encoded in groups of similar length (the default) or in one padded call,
    the frames are the same (padding is masked), and the grouped calls read fewer samples."""
    from jstip.data.packing import encoder_groups

    frames = torch.tensor([40, 3, 37, 6, 21])
    lens = frames * samples_per_frame(model.frame_shift)
    audio = torch.randn(len(lens), int(lens.max()), generator=torch.Generator().manual_seed(0)) * 0.1
    audio[torch.arange(audio.shape[1])[None, :] >= lens[:, None]] = 0.0
    assert len(encoder_groups(lens.tolist(), model.encoder_min_efficiency)) > 1
    was_training, target = model.training, model.encoder_min_efficiency
    model.eval()
    try:
        with torch.no_grad():
            grouped = model.encode_streams(audio, lens, frames)
            model.encoder_min_efficiency = 0.0
            padded = model.encode_streams(audio, lens, frames)
    finally:
        model.train(was_training)
        model.encoder_min_efficiency = target
    assert grouped.shape == (int(frames.sum()), padded.shape[1])
    torch.testing.assert_close(grouped, padded, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("frames", [1, 2, 3, 7, 12, 25, 40])
def test_encoder_and_adapter_cover_every_placeholder(model, frames):
    """A stream of N*1280 samples yields at least N frames (trimmed to N; never zero-padded) and at most N+1."""
    audio = torch.from_numpy(noise(frames * 0.08, frames))[None]
    with torch.no_grad():
        feats, lens = model.encoder(audio, torch.tensor([audio.shape[1]]))
        out, out_lens = model.adapter(feats, lens)
    assert frames <= int(out_lens[0]) <= frames + 1


def test_block_causal_mask():
    doc = torch.tensor([[0, 0, 1, 1, 1, -1]])
    m = block_causal_mask(doc)[0, 0]
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(m, expected)


def test_packed_example_gives_the_same_logits_as_alone(renderer, model):
    """Tolerance: 1e-4 absolute on fp32 logits (different padding and matmul shapes change rounding only)."""
    docs, streams = make_docs(renderer)
    packed = collate(docs, streams, renderer.pad_id, max_row_tokens=10_000, pad_to_multiple=8)
    assert packed.input_ids.shape[0] == 1 and int(packed.document_ids.max()) == len(docs) - 1
    with torch.no_grad():
        logits = model(packed).logits[0]
    for i, d in enumerate(docs):
        alone = collate([d], [streams[i]], renderer.pad_id, max_row_tokens=None, pad_to_multiple=1)
        with torch.no_grad():
            ref = model(alone).logits[0]
        # find the document's positions in the packed row by its example id order
        doc_idx = packed.example_ids.index(d.example_id)
        pos = (packed.document_ids[0] == doc_idx).nonzero().flatten()
        assert len(pos) == len(d)
        torch.testing.assert_close(logits[pos], ref, atol=1e-4, rtol=0)
    # And the mask matters: without it the later documents' logits change.
    model.attention = "mask"
    unmasked_doc = packed.document_ids.clone().clamp(min=0) * 0
    saved = packed.document_ids
    packed.document_ids = unmasked_doc
    with torch.no_grad():
        leaky = model(packed).logits[0]
    packed.document_ids = saved
    last = (saved[0] == len(docs) - 1).nonzero().flatten()
    assert (leaky[last] - logits[last]).abs().max() > 1e-3


def test_position_ids_mode_matches_mask_mode(renderer, model):
    docs, streams = make_docs(renderer)
    packed = collate(docs, streams, renderer.pad_id, max_row_tokens=10_000, pad_to_multiple=8)
    with torch.no_grad():
        model.attention = "mask"
        a = model(packed).logits
        model.attention = "position_ids"
        b = model(packed).logits
    real = packed.document_ids >= 0
    torch.testing.assert_close(a[real], b[real], atol=1e-4, rtol=0)


def test_flex_attention_matches_the_mask_path(renderer, model):
    """attention=flex (a document BlockMask through flex_attention, jstip.model.flex) gives the 4D-mask path's
    logits and loss on packed rows; generation under it is unchanged (dense masks go to SDPA); training it on a CPU,
    where PyTorch has no flex backward, is refused with the fix."""
    import copy

    from jstip.model.flex import NAME

    docs, streams = make_docs(renderer)
    packed = collate(docs, streams, renderer.pad_id, max_row_tokens=10_000, pad_to_multiple=8)
    flex = copy.deepcopy(model)
    model.attention, flex.attention = "mask", "flex"
    with torch.no_grad():
        a, b = model(packed), flex(packed)
    assert flex.llm.config._attn_implementation == NAME
    real = packed.document_ids >= 0
    assert real.sum() > 0 and packed.document_ids.max() > 0  # several documents per row
    torch.testing.assert_close(a.logits[real], b.logits[real], atol=1e-5, rtol=0)  # measured: ~1e-7
    torch.testing.assert_close(a.loss, b.loss, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="model.attention=mask"):
        flex(packed)
    x = torch.randint(5, 50, (1, 6))
    with torch.no_grad():
        assert torch.equal(model.llm.generate(input_ids=x, max_new_tokens=4, do_sample=False),
                           flex.llm.generate(input_ids=x, max_new_tokens=4, do_sample=False))


def test_loss_counts_labelled_tokens_only(renderer, model):
    docs, streams = make_docs(renderer)
    batch = collate(docs, streams, renderer.pad_id, max_row_tokens=80, pad_to_multiple=8)
    out = model(batch)
    assert out.num_tokens == int((batch.labels[:, 1:] != -100).sum())
    logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])
    ref = torch.nn.functional.cross_entropy(logits, batch.labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, ref)
    out.loss.backward()
    assert model.adapter.proj[0].weight.grad.abs().sum() > 0
    assert model.encoder.encoder.layers[0].feed_forward1.linear1.weight.grad.abs().sum() > 0


def test_greedy_batched_equals_one_by_one_and_beam_runs(tokenizer, model):
    audios = [noise(0.5, 1), noise(1.1, 2), noise(0.3, 3)]
    batched = model.transcribe(audios, tokenizer, max_new_tokens=6, batch_size=3)
    single = [model.transcribe([a], tokenizer, max_new_tokens=6)[0] for a in audios]
    assert batched == single
    beams = model.transcribe(audios[:2], tokenizer, max_new_tokens=6, num_beams=3)
    assert len(beams) == 2 and all(isinstance(b, str) for b in beams)
    # Beam search reads each (left-padded) prompt once and shares its cache: the same n-best as HF's own way.
    prompts = [[[tokenizer.bos_token_id], a] for a in audios]
    shared = model.generate(prompts, eos_id=tokenizer.eos_token_id, max_new_tokens=6, num_beams=3,
                            num_return_sequences=3)
    model.prefix_cache = False
    try:
        own = model.generate(prompts, eos_id=tokenizer.eos_token_id, max_new_tokens=6, num_beams=3,
                             num_return_sequences=3)
    finally:
        del model.prefix_cache
    assert shared == own and len(shared) == 9
    # The shared cache continues each prompt exactly as reading it whole does (left padding, positions from the mask).
    embeds = [model.prompt_embeds(p) for p in prompts]
    P = max(len(e) for e in embeds)
    x = torch.zeros(3, P, embeds[0].shape[1])
    mask = torch.zeros(3, P, dtype=torch.long)
    for b, e in enumerate(embeds):
        x[b, P - len(e):], mask[b, P - len(e):] = e, 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        whole = model.llm(inputs_embeds=x, attention_mask=mask, position_ids=pos).logits[:, -1]
        cache = model.prompt_cache(x[:, :-1], mask[:, :-1], 2)
        step = model.llm(inputs_embeds=x[:, -1:].repeat_interleave(2, 0), attention_mask=mask.repeat_interleave(2, 0),
                         position_ids=pos[:, -1:].repeat_interleave(2, 0), past_key_values=cache).logits[:, -1]
    torch.testing.assert_close(step, whole.repeat_interleave(2, 0), atol=1e-4, rtol=1e-4)
    # Free generation from a spoken prompt followed by text.
    ids = tokenizer("answer:", add_special_tokens=False)["input_ids"]
    out = model.generate([[[tokenizer.bos_token_id], audios[0], ids]], eos_id=tokenizer.eos_token_id,
                         max_new_tokens=4)
    assert len(out) == 1 and len(out[0]) <= 4
