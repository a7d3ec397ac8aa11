"""The built-in mini corpus: loadable manifests, exact word items, entity offsets, held-out voices and terms."""

import json
import subprocess
import sys
from pathlib import Path

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


def test_test_entities_are_absent_from_train_text_but_in_domain_text(mini_corpus):
    train_text = " ".join(c.supervisions[0].text for c in load(mini_corpus, "train"))
    domain_text = (mini_corpus / "text" / "domain.txt").read_text()
    test_entities = [e["text"] for c in load(mini_corpus, "test") for e in c.supervisions[0].custom["entities"]]
    assert test_entities
    for ent in test_entities:
        assert ent not in train_text, ent
    assert sum(ent in domain_text for ent in test_entities) >= len(test_entities) // 2


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
