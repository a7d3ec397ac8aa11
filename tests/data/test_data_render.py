"""Rendering to tokens and speech streams, on real TTS cuts: formats, loss mask, frame counts, and the leak test."""

from __future__ import annotations

import numpy as np
import pytest

from jstip.audio import num_frames, samples_per_frame
from jstip.data.batch import IGNORE_INDEX
from jstip.data.dataset import DataConfig, SpeechLMDataset
from jstip.data.render import RenderConfig, Renderer, add_special_tokens, span_samples, speech_stream
from jstip.interleave.examples import InterleaveConfig, interleave_cut
from jstip.text import words

SPF = samples_per_frame()


def _audio(cut):
    return cut.load_audio()[0].astype(np.float32)


def _runs(mask):
    """Lengths of consecutive True runs."""
    runs, n = [], 0
    for m in list(mask) + [False]:
        if m:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def test_add_special_tokens_is_idempotent(tokenizer):
    cfg = RenderConfig()
    n0 = len(tokenizer)
    toks = add_special_tokens(tokenizer, cfg)
    assert {"<N>", "<asr>", "<speech>", "<s>", "</s>"} <= set(toks)
    n1 = len(tokenizer)
    assert n1 == n0 + 3
    add_special_tokens(tokenizer, cfg)
    assert len(tokenizer) == n1
    # The marker is one token even inside text.
    assert tokenizer("a <N> b", add_special_tokens=False)["input_ids"].count(tokenizer.convert_tokens_to_ids("<N>")) == 1


def test_word_level_has_no_markers_and_labels_only_text(tts_cuts, tokenizer):
    r = Renderer(tokenizer)
    ex = interleave_cut(tts_cuts["d2"], "word", InterleaveConfig(policy="speech_first"))
    doc = r.interleaved(ex)
    ids = np.array(doc.input_ids)
    labels = np.array(doc.labels)
    mask = np.array(doc.speech_mask)
    assert r.marker_id not in doc.input_ids
    assert ids[0] == r.bos_id and ids[-1] == r.eos_id
    # Loss mask: never on speech positions, BOS, markers, task token; text tokens labelled with themselves.
    assert (labels[mask] == IGNORE_INDEX).all()
    assert (ids[mask] == r.placeholder_id).all()
    assert labels[0] == IGNORE_INDEX
    special = {r.bos_id, r.marker_id, r.placeholder_id, r.prompt_ids[0]}
    assert all(lab == IGNORE_INDEX for i, lab in zip(ids, labels) if i in special)
    labelled = labels[labels != IGNORE_INDEX]
    # The labelled tokens decode back to the text segments (and EOS).
    text = " ".join(s["text"] for s in ex["segments"] if s["modality"] == "text")
    assert tokenizer.decode(labelled[:-1]).split() == text.split()
    assert labelled[-1] == r.eos_id
    # One run of placeholders per speech span; its length is the span's frame count.
    spans = [(s["start"], s["end"]) for s in ex["segments"] if s["modality"] == "speech"]
    assert _runs(mask) == [num_frames(b - a) for a, b in (span_samples(*sp) for sp in spans)] == doc.span_frames


def test_segment_level_layout(tts_cuts, tokenizer):
    r = Renderer(tokenizer)
    ex = interleave_cut(tts_cuts["d3"], "segment", InterleaveConfig(policy="speech_first"))
    doc = r.interleaved(ex)
    # <s> A1 <N> T2 ... </s>: collapse runs of placeholders and text tokens to read the layout.
    layout = []
    for i, m in zip(doc.input_ids, doc.speech_mask):
        sym = "A" if m else {r.bos_id: "<s>", r.eos_id: "</s>", r.marker_id: "<N>"}.get(i, "T")
        if not layout or layout[-1] != sym or sym not in "AT":
            layout.append(sym)
    expected = ["<s>"]
    for k, s in enumerate(ex["segments"]):
        if k:
            expected.append("<N>")
        expected.append("A" if s["modality"] == "speech" else "T")
    assert layout == expected + ["</s>"]
    assert layout[-2] == "T"
    assert all(lab == IGNORE_INDEX for i, lab in zip(doc.input_ids, doc.labels) if i == r.marker_id)


def test_asr_and_text_formats(tts_cuts, tokenizer):
    r = Renderer(tokenizer)
    cut = tts_cuts["d1"]
    doc = r.asr("x", cut.supervisions[0].text, 0.0, cut.duration)
    assert doc.input_ids[:2] == [r.bos_id, r.prompt_ids[0]]
    assert doc.labels[:2] == [IGNORE_INDEX, IGNORE_INDEX]
    assert sum(doc.speech_mask) == num_frames(int(round(cut.duration * 16000)))
    lab = [x for x in doc.labels if x != IGNORE_INDEX]
    assert tokenizer.decode(lab[:-1]) == cut.supervisions[0].text and lab[-1] == r.eos_id
    # A text prompt instead of a task token: tokens, never labelled.
    r2 = Renderer(tokenizer, RenderConfig(asr_prompt="Transcribe:", asr_prompt_special=False))
    d2 = r2.asr("x", "hello", 0.0, 1.0)
    assert len(r2.prompt_ids) >= 1 and d2.labels[1:1 + len(r2.prompt_ids)] == [IGNORE_INDEX] * len(r2.prompt_ids)
    # Text-only: EOS after each sentence, no speech.
    t = r.text("t", ["One sentence.", "Another one."])
    assert t.input_ids.count(r.eos_id) == 2 and t.input_ids[-1] == r.eos_id and not any(t.speech_mask)
    # eos_in_loss=False: the mask is strictly on text tokens.
    r3 = Renderer(tokenizer, RenderConfig(eos_in_loss=False))
    t3 = r3.text("t", ["One sentence."])
    assert r3.eos_id not in [x for x in t3.labels if x != IGNORE_INDEX]


def test_stream_length_is_frames_times_1280(tts_cuts, tokenizer):
    r = Renderer(tokenizer)
    for cut in tts_cuts:
        if len(words(cut.supervisions[0].text)) < 2:
            continue
        for level in ("word", "segment"):
            ex = interleave_cut(cut, level, InterleaveConfig(policy="random"))
            doc = r.interleaved(ex)
            stream, frames = speech_stream(_audio(cut), doc.spans)
            assert frames == doc.span_frames
            assert len(stream) == sum(frames) * SPF == sum(doc.speech_mask) * SPF


def _windows(audio, s0, s1, width=160, hop=80, min_rms=1e-3):
    """Non-silent windows of audio[s0:s1]."""
    out = []
    for a in range(s0, s1 - width, hop):
        w = audio[a:a + width]
        if np.sqrt(np.mean(w ** 2)) > min_rms:
            out.append(w)
    return out


def _contains(stream, window) -> bool:
    for pos in np.flatnonzero(stream[: len(stream) - len(window) + 1] == window[0]):
        if np.array_equal(stream[pos:pos + len(window)], window):
            return True
    return False


@pytest.mark.parametrize("level,policy", [("word", "speech_first"), ("word", "text_first"), ("segment", "random"),
                                          ("word", "entity"), ("segment", "speech_first")])
def test_leak_encoder_input_holds_no_audio_of_text_words(tts_cuts, tokenizer, level, policy):
    """Every non-silent 10 ms window of a text word's audio is absent from the example's stream, while windows of its
    speech words are present (so the search can find audio when it is there)."""
    ds = SpeechLMDataset(tokenizer, DataConfig(interleave=InterleaveConfig(policy=policy)))
    checked_text = checked_speech = 0
    for cut in tts_cuts:
        if len(words(cut.supervisions[0].text)) < 2:
            continue
        task = {"word": "word_il", "segment": "segment_il"}[level]
        doc, stream = ds.render_cut(cut, task)
        ex = interleave_cut(cut, level, ds.cfg.interleave, ds.seed, ds.epoch)
        audio = _audio(cut)
        ali = cut.supervisions[0].alignment["word"]
        for seg in ex["segments"]:
            g0, g1 = span_samples(seg["start"], seg["end"])
            kept_end = g0 + min(g1 - g0, num_frames(g1 - g0) * SPF)  # a span is cut at its end to whole frames
            for k in range(seg["first"], seg["last"]):
                s0, s1 = span_samples(ali[k].start, ali[k].start + ali[k].duration)
                wins = _windows(audio, s0, s1 if seg["modality"] == "text" else min(s1, kept_end))
                if seg["modality"] == "text":
                    for w in wins:
                        assert not _contains(stream, w), f"{cut.id}: audio of text word {ali[k].symbol!r} leaked"
                        checked_text += 1
                else:
                    found = sum(_contains(stream, w) for w in wins)
                    assert found == len(wins), f"{cut.id}: speech word {ali[k].symbol!r} missing from the stream"
                    checked_speech += 1
    assert checked_text > 50 and checked_speech > 5


def test_leak_test_catches_a_leaking_stream(tts_cuts):
    """The leak check fails when a stream does include a text word's audio (so the test above can fail)."""
    cut = tts_cuts["d2"]
    ex = interleave_cut(cut, "word", InterleaveConfig(policy="speech_first"))
    audio = _audio(cut)
    text_seg = next(s for s in ex["segments"] if s["modality"] == "text")
    bad_spans = [(s["start"], s["end"]) for s in ex["segments"][:2]]  # a speech span and the text span after it
    stream, _ = speech_stream(audio, [(bad_spans[0][0], bad_spans[1][1])])
    s0, s1 = span_samples(text_seg["start"], text_seg["end"])
    assert any(_contains(stream, w) for w in _windows(audio, s0, s1))


def test_padded_cut_gives_the_same_stream(tts_cuts, tokenizer):
    """Left padding moves the spans with the audio: the encoder input is sample-for-sample the same."""
    ds = SpeechLMDataset(tokenizer, DataConfig(interleave=InterleaveConfig(policy="speech_first")))
    cut = tts_cuts["d0"]
    doc, stream = ds.render_cut(cut, "word_il")
    pdoc, pstream = ds.render_cut(cut.pad(duration=cut.duration + 0.7, direction="left"), "word_il")
    assert pdoc.task == "word_il" and pdoc.span_frames == doc.span_frames
    assert np.array_equal(stream, pstream)


def test_asr_with_a_first_pass_hypothesis(tts_cuts, tokenizer):
    """``BOS <asr> speech PREFIX hypothesis SUFFIX transcript EOS``: only the transcript (and EOS) is labelled."""
    r = Renderer(tokenizer)
    cut = tts_cuts["d1"]
    plain = r.asr("x", cut.supervisions[0].text, 0.0, cut.duration)
    hyp = tokenizer(" a draft", add_special_tokens=False)["input_ids"]
    doc = r.asr("x", cut.supervisions[0].text, 0.0, cut.duration, hypothesis=hyp)
    framed = r.hypothesis_ids(hyp)
    assert tokenizer.decode(framed) == "\nDraft: a draft\nTranscript:"
    after = 2 + sum(doc.speech_mask)
    assert doc.input_ids[after:after + len(framed)] == framed
    assert doc.labels[after:after + len(framed)] == [IGNORE_INDEX] * len(framed)
    assert [x for x in doc.labels if x != IGNORE_INDEX] == [x for x in plain.labels if x != IGNORE_INDEX]
    assert len(doc) == len(plain) + len(framed) and doc.span_frames == plain.span_frames
