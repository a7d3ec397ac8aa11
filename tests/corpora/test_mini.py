"""The built-in mini corpus: loadable manifests, exact word items, entity offsets, held-out voices and terms."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lhotse import CutSet

from jstip.text import words

SPLITS = ("train", "dev", "test")


def load(d, split):
    return CutSet.from_file(d / split / "cuts.jsonl.gz")


def test_cli_writes_manifests_with_exact_alignments_and_entities(tmp_path):
    out = tmp_path / "mini"
    jstip = Path(sys.executable).with_name("jstip")
    r = subprocess.run([str(jstip), "prepare", "mini", "--out", str(out), "--num-utterances", "40", "-j", "2"],
                       capture_output=True, text=True, check=True)
    assert "test" in r.stdout
    total, n_entities = 0, 0
    voices = {}
    for split in SPLITS:
        cuts = load(out, split)
        rejected = out / split / "rejected.jsonl"
        n_rej = len(rejected.read_text().splitlines()) if rejected.exists() else 0
        summary = json.loads((out / "summary.json").read_text())["splits"][split]
        assert len(cuts) + n_rej == summary["planned"]
        total += len(cuts)
        voices[split] = {c.supervisions[0].speaker for c in cuts}
        for cut in cuts:
            assert cut.recording.sampling_rate == 16000
            assert len(cut.supervisions) == 1
            sup = cut.supervisions[0]
            items = sup.alignment["word"]
            assert [a.symbol for a in items] == words(sup.text)
            prev_end = 0.0
            for a in items:
                assert a.start >= prev_end - 1e-6 and a.duration > 0
                assert a.end <= cut.duration + 1e-6
                prev_end = a.end
            for ent in sup.custom["entities"]:
                assert sup.text[ent["start"]:ent["end"]] == ent["text"]
                assert ent["category"] in {"drug", "condition", "procedure"}
                n_entities += 1
    assert total >= 36
    assert n_entities > 10
    assert not voices["test"] & voices["train"]
    assert not voices["dev"] & voices["train"]


def exposure_bucket(count: int) -> str:
    return "0" if count == 0 else "1-2" if count <= 2 else "3-9" if count <= 9 else ">=10"


@pytest.mark.parametrize("size", [2500, 3000])  # `jstip prepare mini`'s default, and the demo's
def test_test_entities_fall_in_every_exposure_bucket(size):
    """At the default sizes, the test set's entity instances cover train-audio exposure 0 / 1-2 / 3-9 / >=10, each
    with at least 50 instances, and every term (heard or not) is in the domain text."""
    from collections import Counter

    from jstip.corpora.mini import plan_mini

    plan = plan_mini(size, seed=0)
    heard = Counter((e["category"], e["text"]) for item in plan["items"]["train"] for e in item["entities"])
    test = [(e["category"], e["text"]) for item in plan["items"]["test"] for e in item["entities"]]
    buckets = Counter(exposure_bucket(heard[key]) for key in test)
    assert set(buckets) == {"0", "1-2", "3-9", ">=10"} and min(buckets.values()) >= 50, buckets
    for cat, by_tier in plan["tiers"].items():
        for tier, terms in by_tier.items():
            for term in terms:
                assert plan["domain_counts"][(cat, term)] >= 1, term
                if tier != "train":
                    assert exposure_bucket(heard[(cat, term)]) == tier, (term, tier, heard[(cat, term)])


def test_terms_json_counts_agree_with_a_recount_from_the_train_manifest(mini_corpus):
    from collections import Counter

    table = json.loads((mini_corpus / "terms.json").read_text())
    recount = Counter((e["category"], e["text"]) for c in load(mini_corpus, "train")
                      for e in c.supervisions[0].custom["entities"])
    rows = {(r["category"], r["text"]): r for r in table["terms"]}
    assert set(recount) <= set(rows)
    for key, row in rows.items():
        assert row["train_audio"] == recount.get(key, 0), key
        if row["tier"] != "train":
            assert exposure_bucket(row["train_audio"]) == row["tier"], row
    domain_text = (mini_corpus / "text" / "domain.txt").read_text()
    assert all(row["domain_text"] >= 1 and row["text"] in domain_text for row in rows.values())
    test_entities = [(e["category"], e["text"]) for c in load(mini_corpus, "test")
                     for e in c.supervisions[0].custom["entities"]]
    assert test_entities and all(rows[key]["tier"] != "train" for key in test_entities)


def test_prepare_is_restartable_and_deterministic(mini_corpus, tmp_path):
    from jstip.corpora.mini import prepare_mini

    before = {s: [c.id for c in load(mini_corpus, s)] for s in SPLITS}
    prepare_mini(mini_corpus, num_utterances=40, seed=0, num_jobs=1, progress=False)
    assert {s: [c.id for c in load(mini_corpus, s)] for s in SPLITS} == before
    texts = [c.supervisions[0].text for c in load(mini_corpus, "train")]
    from jstip.corpora.mini import plan_mini

    planned = {i["id"]: i["text"] for i in plan_mini(40, seed=0)["items"]["train"]}
    assert all(planned[c.id] == c.supervisions[0].text for c in load(mini_corpus, "train"))
    assert len(set(texts)) > 1


def test_dev_and_test_sentences_are_never_seen_in_training():
    # Template sentences repeat; a dev/test sentence that is also a train transcript or a line of the text corpora
    # (which the LLM prior and the domain arms train on) would be scored on memorised text.
    from jstip.corpora.mini import plan_mini

    plan = plan_mini(3000, seed=0)
    train = {item["text"] for item in plan["items"]["train"]}
    text_corpora = set(plan["domain"]) | set(plan["general"])
    dev = [item["text"] for item in plan["items"]["dev"]]
    test = [item["text"] for item in plan["items"]["test"]]
    assert len(set(dev)) == len(dev) == 300 and len(set(test)) == len(test) == 300
    assert not set(dev) & set(test)
    for sentence in dev + test:
        assert sentence not in train and sentence not in text_corpora, sentence
    assert len(train) < len(plan["items"]["train"])  # train itself repeats sentences (other voices), as allowed
