"""Hand-made cases for the entity error rate, B-WER and the bookkeeping of ids."""

import pytest

from jstip.scoring.score import score


def entity(text, sentence, category="drug"):
    start = sentence.index(text)
    return {"text": text, "category": category, "start": start, "end": start + len(text)}


def eer_of(ref_text, hyp_text, entity_text, category="drug"):
    ref = {"id": "u1", "text": ref_text, "entities": [entity(entity_text, ref_text, category)]}
    result = score([ref], [{"id": "u1", "hyp": hyp_text}])
    return result["eer"], result


def test_exact_entity_is_a_hit():
    eer, result = eer_of("Give Metformin twice daily.", "give Metformin twice daily", "Metformin")
    assert eer == 0.0
    assert result["utterances"][0]["entities"][0]["hit"] is True


def test_entity_with_different_case_is_a_miss_although_wer_is_zero():
    eer, result = eer_of("Give Metformin twice daily.", "give metformin twice daily", "Metformin")
    assert result["wer"] == 0.0  # the normalised words all match
    assert eer == 1.0
    assert result["entity_misses"] == [{"id": "u1", "text": "Metformin", "category": "drug", "hyp_span": "metformin"}]


def test_entity_with_spelling_variant_is_a_miss():
    eer, result = eer_of("She saw Dr. Katherine Smith today.", "she saw Dr. Catherine Smith today", "Katherine Smith",
                         "person")
    assert eer == 1.0
    assert result["entity_misses"][0]["hyp_span"] == "Catherine Smith"
    assert result["eer_per_category"] == {"person": {"eer": 1.0, "entities": 1, "hits": 0, "misses": 1}}


def test_entity_present_only_at_another_place_is_a_miss():
    eer, result = eer_of("Metformin was stopped and insulin started", "metformin was stopped and Metformin started",
                         "insulin")
    assert eer == 1.0
    assert result["entity_misses"][0]["hyp_span"] == "Metformin"
    # and the first word, also present elsewhere, does not count as the entity "Metformin" either
    eer, _ = eer_of("Metformin was stopped and insulin started", "metoprolol was stopped and Metformin started",
                    "Metformin")
    assert eer == 1.0


def test_entity_with_neighbouring_word_errors_is_a_hit():
    eer, result = eer_of("the patient takes Lisinopril every morning", "a patience take Lisinopril evry mourning",
                         "Lisinopril")
    assert result["wer"] > 0.5
    assert eer == 0.0
    # an insertion right beside the entity belongs to its neighbours, not to the entity
    eer, _ = eer_of("the patient takes Lisinopril every morning", "the patient takes uh Lisinopril um every morning",
                    "Lisinopril")
    assert eer == 0.0


def test_entity_with_punctuation_differences_is_a_hit_but_a_split_is_a_miss():
    eer, _ = eer_of("Ask Dr. Patel, please.", "ask dr Patel please", "Patel", "person")
    assert eer == 0.0
    eer, result = eer_of("Start Amoxicillin today", "start Amoxi cillin today", "Amoxicillin")
    assert eer == 1.0
    assert result["entity_misses"][0]["hyp_span"] == "Amoxi cillin"


def test_multi_word_entity_needs_every_word():
    eer, _ = eer_of("flights to New York City tonight", "flights to New York City tonight", "New York City", "city")
    assert eer == 0.0
    eer, result = eer_of("flights to New York City tonight", "flights to New Work City tonight", "New York City",
                         "city")
    assert eer == 1.0
    assert result["entity_misses"][0]["hyp_span"] == "New Work City"


def test_eer_per_category_and_per_entity():
    text = "Give Metformin to Anna Lee in Boston"
    refs = [{"id": "a", "text": text, "entities": [entity("Metformin", text, "drug"), entity("Anna Lee", text, "person"),
                                                   entity("Boston", text, "city")], "domain": "medical"},
            {"id": "b", "text": "Metformin again", "entities": [entity("Metformin", "Metformin again", "drug")]}]
    hyps = [{"id": "a", "hyp": "give Metformin to Ana Lee in Boston"}, {"id": "b", "hyp": "met forming again"}]
    result = score(refs, hyps)
    assert result["eer"] == pytest.approx(2 / 4)
    assert result["eer_counts"] == {"entities": 4, "hits": 2, "misses": 2}
    assert result["eer_per_category"]["drug"] == {"eer": 0.5, "entities": 2, "hits": 1, "misses": 1}
    assert result["eer_per_category"]["person"]["eer"] == 1.0
    assert result["eer_per_category"]["city"]["eer"] == 0.0
    metformin = next(e for e in result["eer_per_entity"] if e["text"] == "Metformin")
    assert (metformin["entities"], metformin["misses"]) == (2, 1)
    assert result["per_domain"]["medical"]["misses"] == 1


def test_eer_per_exposure_bucket_overall_and_per_category():
    text = "Give Metformin to Anna Lee in Boston"
    refs = [{"id": "a", "text": text, "entities": [entity("Metformin", text, "drug"), entity("Anna Lee", text, "person"),
                                                   entity("Boston", text, "city")]},
            {"id": "b", "text": "Metformin again", "entities": [entity("Metformin", "Metformin again", "drug")]}]
    hyps = [{"id": "a", "hyp": "give Metformin to Ana Lee in Boston"}, {"id": "b", "hyp": "met forming again"}]
    # Metformin heard 12 times, Boston twice (under another category: counted by its text), Anna Lee never.
    exposure = {("drug", "Metformin"): 12, ("place", "Boston"): 2}
    result = score(refs, hyps, exposure=exposure)
    buckets = result["eer_per_exposure"]["buckets"]
    assert result["eer_per_exposure"]["edges"] == [0, 1, 3, 10] and list(buckets) == ["0", "1-2", "3-9", ">=10"]
    assert (buckets["0"]["entities"], buckets["0"]["misses"]) == (1, 1)  # Anna Lee
    assert (buckets["1-2"]["entities"], buckets["1-2"]["eer"]) == (1, 0.0)  # Boston
    assert buckets["3-9"] == {"eer": None, "entities": 0, "hits": 0, "misses": 0, "per_category": {}}
    assert buckets[">=10"]["per_category"]["drug"] == {"eer": 0.5, "entities": 2, "hits": 1, "misses": 1}
    exposures = sorted(e["exposure"] for row in result["utterances"] for e in row["entities"])
    assert exposures == [0, 2, 12, 12]
    coarse = score(refs, hyps, exposure=exposure, exposure_edges=(0, 5))
    assert list(coarse["eer_per_exposure"]["buckets"]) == ["0-4", ">=5"]
    assert "eer_per_exposure" not in score(refs, hyps)


def test_score_command_counts_exposure_from_a_training_manifest(mini_corpus, tmp_path):
    import json

    from click.testing import CliRunner
    from lhotse import CutSet

    from jstip.cli import main

    test_cuts = mini_corpus / "test" / "cuts.jsonl.gz"
    hyps = tmp_path / "hyps.jsonl"
    hyps.write_text("".join(json.dumps({"id": c.id, "hyp": c.supervisions[0].text}) + "\n"
                            for c in CutSet.from_file(test_cuts)))
    out = tmp_path / "scored"
    result = CliRunner().invoke(main, ["score", "--ref", str(test_cuts), "--hyp", str(hyps), "--out", str(out),
                                       "--exposure-cuts", str(mini_corpus / "train" / "cuts.jsonl.gz")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    terms = {(t["category"], t["text"]): t["train_audio"]
             for t in json.loads((mini_corpus / "terms.json").read_text())["terms"]}
    rows = [json.loads(line) for line in (out / "hyps.jsonl").read_text().splitlines()]
    for e in (e for row in rows for e in row.get("entities", [])):
        assert e["exposure"] == terms[(e["category"], e["text"])]  # the same counts as prepare's terms.json
    buckets = metrics["eer_per_exposure"]["buckets"]
    assert sum(b["entities"] for b in buckets.values()) == metrics["eer_counts"]["entities"]
    assert all(b["misses"] == 0 for b in buckets.values())  # hypotheses = references
    bad = CliRunner().invoke(main, ["score", "--ref", str(test_cuts), "--hyp", str(hyps), "--out", str(out),
                                    "--exposure-edges", "1,3"])
    assert bad.exit_code == 2 and "starting at 0" in bad.output


def test_invalid_entity_offsets_are_reported_not_scored():
    ref = {"id": "u1", "text": "take aspirin", "entities": [{"text": "aspirin", "category": "drug", "start": 0,
                                                              "end": 7}]}
    result = score([ref], [{"id": "u1", "hyp": "take aspirin"}])
    assert result["eer"] is None or result["eer_counts"]["entities"] == 0
    assert result["invalid_entities"][0]["id"] == "u1"
    assert "fix the offsets" in result["invalid_entities"][0]["reason"]


def test_b_wer_and_u_wer_with_insertion_rule():
    refs = [{"id": "u1", "text": "give metformin now", "biasing_words": ["Metformin", "insulin"]}]
    result = score(refs, [{"id": "u1", "hyp": "give metformin insulin now"}])
    assert result["b_wer_counts"] == {"ref_words": 1, "subs": 0, "ins": 1, "dels": 0, "errors": 1}
    assert result["u_wer_counts"] == {"ref_words": 2, "subs": 0, "ins": 0, "dels": 0, "errors": 0}
    assert result["b_wer"] == 1.0 and result["u_wer"] == 0.0
    result = score(refs, [{"id": "u1", "hyp": "give metformin please now"}])
    assert result["b_wer"] == 0.0 and result["u_wer"] == pytest.approx(0.5)
    assert result["wer"] == pytest.approx(1 / 3)


def test_figures_are_none_when_undefined():
    result = score([{"id": "u1", "text": "hello world"}], [{"id": "u1", "hyp": "hello word"}])
    assert result["wer"] == pytest.approx(0.5)
    assert result["eer"] is None and result["b_wer"] is None and result["u_wer"] is None
    assert result["ter"] == pytest.approx(0.5)


def test_ter_keeps_case_and_punctuation():
    result = score([{"id": "u1", "text": "Hello, world."}], [{"id": "u1", "hyp": "hello world"}])
    assert result["wer"] == 0.0
    assert result["ter"] == 1.0
    assert result["cer"] == 0.0


def test_missing_and_extra_hypothesis_ids_are_reported():
    refs = [{"id": "a", "text": "one two"}, {"id": "b", "text": "three four"}]
    hyps = [{"id": "a", "hyp": "one two"}, {"id": "zzz", "hyp": "stray"}]
    result = score(refs, hyps)
    assert result["missing_ids"] == ["b"]
    assert result["extra_ids"] == ["zzz"]
    assert result["wer"] == pytest.approx(2 / 4)  # the missing one is scored as an empty hypothesis
    assert result["utterances"][1]["missing"] is True
    skipped = score(refs, hyps, missing="skip")
    assert skipped["missing_ids"] == ["b"] and skipped["wer"] == 0.0 and skipped["num_utterances"] == 1


def test_a_duplicate_reference_id_is_scored_once_and_listed():
    result = score([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], {"a": "x"})
    assert result["num_utterances"] == 1 and result["wer"] == 0.0  # the first line of the id is the reference
    assert result["duplicate_ref_ids"] == ["a"]
