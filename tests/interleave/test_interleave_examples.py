"""Must-show properties of interleaved examples, on real TTS cuts (espeak-ng audio, engine word times)."""

from __future__ import annotations

import pytest

from jstip.interleave.examples import InterleaveConfig, NotInterleavable, interleave_cut, public_example, speech_share
from jstip.interleave.units import SegmentConfig
from jstip.text import words

LEVELS = ["word", "segment", "mixed"]
POLICIES = ["alternate", "speech_first", "text_first", "random", "entity"]


def _good(cuts):
    return [c for c in cuts if len(words(c.supervisions[0].text)) > 1]


def _all_examples(cuts):
    for cut in _good(cuts):
        for level in LEVELS:
            for policy in POLICIES:
                for epoch in range(3):
                    yield cut, interleave_cut(cut, level, InterleaveConfig(policy=policy), seed=1, epoch=epoch)


def test_last_segment_is_text_and_modalities_alternate(tts_cuts):
    n = 0
    for cut, ex in _all_examples(tts_cuts):
        segs = ex["segments"]
        assert segs[-1]["modality"] == "text", ex
        assert any(s["modality"] == "speech" for s in segs), ex
        assert all(a["modality"] != b["modality"] for a, b in zip(segs, segs[1:])), ex
        n += 1
    assert n == len(_good(tts_cuts)) * len(LEVELS) * len(POLICIES) * 3


def test_segment_texts_in_order_are_the_transcript(tts_cuts):
    for cut, ex in _all_examples(tts_cuts):
        joined = " ".join(s["text"] for s in ex["segments"])
        assert joined.split() == words(cut.supervisions[0].text)
        assert joined == " ".join(words(cut.supervisions[0].text))


def test_speech_segment_times_are_the_alignment_times_of_its_words(tts_cuts):
    for cut, ex in _all_examples(tts_cuts):
        ali = cut.supervisions[0].alignment["word"]
        for s in ex["segments"]:
            first, last = s["first"], s["last"]
            assert [a.symbol for a in ali[first:last]] == s["text"].split()
            assert s["start"] == pytest.approx(ali[first].start, abs=1e-6)
            assert s["end"] == pytest.approx(ali[last - 1].start + ali[last - 1].duration, abs=1e-6)


def test_deterministic_variants_alternate_word_by_word(tts_cuts):
    cut = tts_cuts["s2"]  # nine words
    n = len(words(cut.supervisions[0].text))
    sf = interleave_cut(cut, "word", InterleaveConfig(policy="speech_first"))
    tf = interleave_cut(cut, "word", InterleaveConfig(policy="text_first"))
    assert sf["variant"] == "speech_first" and tf["variant"] == "text_first"
    # speech_first: A1 T2 A3 ... ; odd count -> the last word joins the text before it.
    assert [s["modality"][0] for s in sf["segments"]] == list("st" * (n // 2))
    assert sf["segments"][-1]["text"].split() == words(cut.supervisions[0].text)[-2:]
    assert [s["modality"][0] for s in tf["segments"]] == list("ts" * (n // 2) + "t")
    assert all(len(s["text"].split()) == 1 for s in tf["segments"])


def test_alternate_policy_switches_variant_each_epoch_and_is_deterministic(tts_cuts):
    cfg = InterleaveConfig(policy="alternate")
    for cut in _good(tts_cuts):
        variants = [interleave_cut(cut, "word", cfg, seed=3, epoch=e)["variant"] for e in range(4)]
        assert variants[0] != variants[1] and variants[0] == variants[2] and variants[1] == variants[3]
        assert interleave_cut(cut, "mixed", cfg, seed=3, epoch=5) == interleave_cut(cut, "mixed", cfg, seed=3, epoch=5)


def test_random_policy_is_fresh_per_epoch_and_deterministic(tts_cuts):
    cfg = InterleaveConfig(policy="random")
    cut = tts_cuts["s0"]
    plans = [tuple(s["modality"] for s in interleave_cut(cut, "word", cfg, seed=0, epoch=e)["segments"])
             for e in range(6)]
    assert len(set(plans)) > 1
    again = [tuple(s["modality"] for s in interleave_cut(cut, "word", cfg, seed=0, epoch=e)["segments"])
             for e in range(6)]
    assert plans == again


def test_random_speech_share_near_target(tts_cuts):
    shares = {}
    for share in (0.3, 0.5):
        cfg = InterleaveConfig(policy="random", speech_share=share)
        vals = [speech_share(interleave_cut(c, "word", cfg, seed=0, epoch=e)) for c in _good(tts_cuts)
                for e in range(10)]
        shares[share] = sum(vals) / len(vals)
        assert abs(shares[share] - share) < 0.12, shares
    assert shares[0.5] > shares[0.3]


def test_entity_policy_speaks_the_entities(tts_cuts):
    cut = tts_cuts["s0"]  # entity "metformin" mid-sentence
    ex = interleave_cut(cut, "word", InterleaveConfig(policy="entity"))
    assert ex["variant"] == "entity"
    assert [s["text"] for s in ex["segments"] if s["modality"] == "speech"] == ["metformin"]
    ex = interleave_cut(tts_cuts["s4"], "word", InterleaveConfig(policy="entity"))  # no entity: random
    assert ex["variant"] == "random"


def test_segment_level_uses_pauses_and_punctuation(tts_cuts):
    ex = interleave_cut(tts_cuts["s3"], "segment", InterleaveConfig(policy="speech_first"))
    assert ex["units"] == "segment"
    assert ex["segments"][0]["text"].endswith("Monday;")
    # An utterance without an inner pause still gives two segments (split at its longest pause).
    ex = interleave_cut(tts_cuts["s2"], "segment", InterleaveConfig(policy="speech_first",
                                                                     segment=SegmentConfig(min_words=2)))
    assert len(ex["segments"]) == 2 and all(len(s["text"].split()) >= 2 for s in ex["segments"])


def test_mixed_level_draws_both_unit_kinds(tts_cuts):
    kinds = {interleave_cut(c, "mixed", seed=0, epoch=e)["units"] for c in _good(tts_cuts) for e in range(4)}
    assert kinds == {"word", "segment"}


@pytest.mark.parametrize("name", ["no_alignment", "wrong_word", "missing_word", "backwards", "single_word"])
def test_bad_cuts_are_not_interleavable_with_a_reason(broken_cuts, name):
    with pytest.raises(NotInterleavable) as e:
        interleave_cut(broken_cuts[name], "mixed")
    assert len(str(e.value)) > 10


def test_public_example_has_the_design_keys(tts_cuts):
    ex = public_example(interleave_cut(tts_cuts["s1"], "segment"))
    assert set(ex) == {"id", "cut_id", "level", "units", "variant", "segments"}
    assert all(set(s) == {"modality", "text", "start", "end"} for s in ex["segments"])


def test_times_are_relative_to_the_cut_for_padded_and_joined_cuts(tts_cuts):
    """Alignment times are recording times (lhotse): padding or joining cuts shifts the example's times with the
    audio, and a cut trimmed back to one supervision gives the original example."""
    cut = tts_cuts["s2"]
    base = interleave_cut(cut, "word", InterleaveConfig(policy="speech_first"))
    padded = interleave_cut(cut.pad(duration=cut.duration + 0.7, direction="left"), "word",
                            InterleaveConfig(policy="speech_first"))
    for a, b in zip(base["segments"], padded["segments"]):
        assert b["start"] == pytest.approx(a["start"] + 0.7) and b["end"] == pytest.approx(a["end"] + 0.7)
    joined = tts_cuts["s0"].append(cut)
    second = [c for c in joined.trim_to_supervisions(keep_overlapping=False) if c.supervisions[0].id == "s2"][0]
    again = interleave_cut(second, "word", InterleaveConfig(policy="speech_first"))
    assert [(s["start"], s["end"]) for s in again["segments"]] == [(s["start"], s["end"]) for s in base["segments"]]


def test_a_cut_that_cuts_its_supervision_is_not_interleaved(tts_cuts):
    with pytest.raises(NotInterleavable, match="extends beyond the cut"):
        interleave_cut(tts_cuts["s0"].truncate(offset=0.5), "word")


def test_random_spans_of_several_words(tts_cuts):
    cfg = InterleaveConfig(policy="random", speech_share=0.4, random_span=3)
    for cut in _good(tts_cuts):
        n = len(words(cut.supervisions[0].text))
        for epoch in range(4):
            ex = interleave_cut(cut, "word", cfg, epoch=epoch)
            speech = [s for s in ex["segments"] if s["modality"] == "speech"]
            assert speech and ex["segments"][-1]["modality"] == "text"
            if n > 3:
                # Runs are aligned to the end: every run but the first holds whole multiples of 3 words.
                assert all(len(s["text"].split()) >= 3 or s["first"] == 0 for s in speech), ex
    with pytest.raises(ValueError):
        InterleaveConfig(random_span=0)


def test_public_examples_render_like_internal_ones(tts_cuts):
    from jstip.data.render import Renderer
    from jstip.data.toy_tokenizer import toy_tokenizer

    tok = toy_tokenizer([c.supervisions[0].text for c in tts_cuts], 300)
    r = Renderer(tok)
    for level in ("word", "segment"):
        ex = interleave_cut(tts_cuts["s1"], level)
        assert r.interleaved(public_example(ex)).input_ids == r.interleaved(ex).input_ids
