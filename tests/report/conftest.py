"""Shared fixtures of the evaluation tests: two scored runs with entities, biasing words and training logs."""

import json
import math
import random

import pytest

from jstip.scoring.score import score, write_scores

ENTITIES = {
    "drug": ["Metformin", "Lisinopril", "Amoxicillin", "Atorvastatin", "Omeprazole"],
    "person": ["Dr. Patel", "Anna Lee", "Katherine Smith"],
    "city": ["Boston", "New York City", "San Diego"],
}
TEMPLATES = [
    "The patient was started on {drug} by {person} in {city}.",
    "{person} asked whether {drug} is available in {city} today.",
    "Please refill the {drug} prescription before the trip to {city}.",
]
VARIANTS = {"Metformin": "metformin", "Lisinopril": "Lisinopril,", "Amoxicillin": "Amoxi cillin",
            "Atorvastatin": "Atorvastatine", "Katherine Smith": "Catherine Smith", "San Diego": "San Diego",
            "Dr. Patel": "Doctor Patel", "Boston": "boston"}


def make_refs(num: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    refs = []
    for k in range(num):
        template = rng.choice(TEMPLATES)
        values = {cat: rng.choice(items) for cat, items in ENTITIES.items()}
        text = template.format(**values)
        entities = []
        for cat, value in values.items():
            if "{" + cat + "}" in template:
                start = text.index(value)
                entities.append({"text": value, "category": cat, "start": start, "end": start + len(value)})
        refs.append({"id": f"utt{k:04d}", "text": text, "entities": entities,
                     "biasing_words": [w for e in entities for w in e["text"].split()],
                     "domain": "medical" if "patient" in text or "refill" in text else "general"})
    return refs


def corrupt(refs: list[dict], entity_error: float, word_error: float, seed: int) -> list[dict]:
    rng = random.Random(seed)
    hyps = []
    for ref in refs:
        text = ref["text"]
        for e in ref["entities"]:
            if rng.random() < entity_error and e["text"] in VARIANTS:
                text = text.replace(e["text"], VARIANTS[e["text"]], 1)
        words = [w for w in text.split() if rng.random() > word_error]
        hyps.append({"id": ref["id"], "hyp": " ".join(words)})
    return hyps


def write_run(path, refs, hyps, curve_scale=None):
    write_scores(score(refs, hyps), path)
    if curve_scale is not None:
        (path / "train").mkdir(parents=True, exist_ok=True)
        with open(path / "train" / "metrics.jsonl", "w") as f:
            for step in range(0, 300, 10):
                f.write(json.dumps({"step": step, "train_loss": curve_scale * math.exp(-step / 80) + 1.0}) + "\n")
            for step in range(0, 300, 50):
                f.write(json.dumps({"step": step, "val_loss": curve_scale * math.exp(-step / 90) + 1.3}) + "\n")
    return path


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """Two run folders scored on the same 300 references: a weak baseline and a better system."""
    root = tmp_path_factory.mktemp("runs")
    refs = make_refs(300)
    baseline = write_run(root / "asr_only", refs, corrupt(refs, 0.5, 0.08, seed=1), curve_scale=3.0)
    better = write_run(root / "interleaved", refs, corrupt(refs, 0.15, 0.04, seed=2), curve_scale=2.5)
    return baseline, better
