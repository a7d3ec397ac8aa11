"""The built-in mini corpus: general and entity-rich medical sentences spoken by real TTS engines.

Sentences come from templates in ``data/templates/`` filled with real term lists from ``data/terms/`` (drug names,
ICD-10-CM conditions, procedures). Medical entities are annotated in ``supervision.custom["entities"]``.

Designed for measuring entity transfer:
- a held-out share of every term list never occurs in a train transcript; test sentences use mostly held-out terms;
  the held-out terms do occur in the text-only domain corpus ``text/domain.txt`` (what JSTIP's domain text brings);
- test (and dev) voices are accents never heard in training (``jstip.tts.voices``);
- no dev or test sentence is a train transcript or a line of the text corpora, and each occurs once in its split.

Layout of ``out_dir``::

    {train,dev,test}/  recordings.jsonl.gz supervisions.jsonl.gz cuts.jsonl.gz rejected.jsonl audio/ meta/
    text/domain.txt    medical sentences, text only (held-out terms included)
    text/general.txt   general sentences, text only
    terms.json         every term with its category and whether it is held out of train
    summary.json       counts, hours, voices per split
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from lhotse import CutSet

from jstip.tts.corpus import synthesize_items
from jstip.tts.voices import voices_for_split

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SPLITS = {"train": 0.8, "dev": 0.1, "test": 0.1}
ENTITY_SLOTS = {"drug": "drug", "drug2": "drug", "condition": "condition", "procedure": "procedure"}
HELD_OUT_SHARE = 0.3
_SLOT = re.compile(r"\{(\w+)\}")


def _data_dir() -> Path:
    # Installed editable from the repo (the supported install); a wheel install can point JSTIP_DATA elsewhere.
    import os

    return Path(os.environ.get("JSTIP_DATA", DATA_DIR))


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def load_terms() -> dict[str, list[str]]:
    """Term lists by category: ``drug``, ``condition``, ``procedure``."""
    d = _data_dir() / "terms"
    conditions = []
    for title in _read_list(d / "conditions.txt"):
        first = title.split()[0]
        # ICD titles are capitalised; inside a sentence only proper names keep their capital.
        conditions.append(title if "'" in first else title[0].lower() + title[1:])
    return {"drug": _read_list(d / "drugs.txt"), "condition": conditions, "procedure": _read_list(d / "procedures.txt")}


def load_templates(kind: str) -> list[str]:
    return _read_list(_data_dir() / "templates" / f"{kind}.txt")


def fill_template(template: str, values: dict[str, str]) -> tuple[str, list[dict]]:
    """Fill ``{slot}``s; returns the text and the entities (DESIGN.md format) of entity slots."""
    out, entities, pos = [], [], 0
    length = 0
    for m in _SLOT.finditer(template):
        literal = template[pos:m.start()]
        out.append(literal)
        length += len(literal)
        value = values[m.group(1)]
        if m.start() == 0:
            value = value[0].upper() + value[1:]
        if m.group(1) in ENTITY_SLOTS:
            entities.append({"text": value, "category": ENTITY_SLOTS[m.group(1)], "start": length,
                             "end": length + len(value)})
        out.append(value)
        length += len(value)
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), entities


def split_terms(terms: dict[str, list[str]], seed: int) -> dict[str, dict[str, list[str]]]:
    """Per category: ``seen`` terms (train) and ``held_out`` terms (never in train transcripts)."""
    rng = random.Random(seed)
    out = {}
    for cat, items in terms.items():
        items = sorted(items)
        rng.shuffle(items)
        k = max(1, int(len(items) * HELD_OUT_SHARE))
        out[cat] = {"held_out": sorted(items[:k]), "seen": sorted(items[k:])}
    return out


def make_sentences(
    n: int, kind: str, terms: dict[str, list[str]], rng: random.Random, avoid: set[str] = frozenset(),
    distinct: bool = False,
) -> list[tuple[str, list[dict]]]:
    """``n`` sentences of ``kind`` (``medical`` or ``general``) with their entities.

    A drawn sentence whose text is in ``avoid`` (or, with ``distinct``, was drawn already) is drawn again: how dev/test
    sentences stay out of train transcripts and the text corpora out of dev/test.
    """
    slots = json.loads((_data_dir() / "templates" / "slots.json").read_text())
    templates = load_templates(kind)
    out = []
    taken: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(f"only {len(out)} of {n} {'distinct ' if distinct else ''}{kind} sentences could be drawn "
                             f"from data/templates/{kind}.txt outside the {len(avoid)} excluded ones: add templates "
                             "or slot values, or ask for fewer utterances")
        values = {k: rng.choice(v) for k, v in slots.items()}
        if kind == "medical":
            values["drug"], values["drug2"] = rng.sample(terms["drug"], 2)
            values["condition"] = rng.choice(terms["condition"])
            values["procedure"] = rng.choice(terms["procedure"])
        sentence = fill_template(rng.choice(templates), values)
        if sentence[0] in avoid or (distinct and sentence[0] in taken):
            continue
        taken.add(sentence[0])
        out.append(sentence)
    return out


def plan_mini(num_utterances: int, seed: int = 0, medical_share: float = 0.5) -> dict:
    """What the mini corpus will hold: items per split, domain and general text, the term split."""
    rng = random.Random(seed)
    term_split = split_terms(load_terms(), seed)
    seen = {c: v["seen"] for c, v in term_split.items()}
    held = {c: v["held_out"] for c, v in term_split.items()}
    mixed = {c: v["seen"] + v["held_out"] for c, v in term_split.items()}
    items: dict[str, list[dict]] = {}
    start = 0
    held_out_texts: set[str] = set()  # train transcripts, then every dev/test sentence: what later splits avoid
    for split, share in SPLITS.items():
        n = max(1, round(num_utterances * share)) if split != "train" else 0
        items[split] = []
        if split == "train":
            n = num_utterances - sum(max(1, round(num_utterances * s)) for k, s in SPLITS.items() if k != "train")
        n_med = round(n * medical_share)
        pools = {"train": seen, "dev": mixed, "test": held}[split]
        evaluated = split != "train"  # dev/test: distinct, never a train transcript or a sentence of another split
        sents = (make_sentences(n_med, "medical", pools, rng, held_out_texts, distinct=evaluated)
                 + make_sentences(n - n_med, "general", seen, rng, held_out_texts, distinct=evaluated))
        held_out_texts.update(text for text, _ in sents)
        rng.shuffle(sents)
        for i, (text, ents) in enumerate(sents):
            items[split].append({"id": f"mini-{split}-{start + i:05d}", "text": text, "entities": ents,
                                 "custom": {"domain": "medical" if ents else "general"}})
        start += n
    # The text corpora hold train transcripts' kind of sentences but never a dev or test sentence.
    evaluation = {item["text"] for split in ("dev", "test") for item in items[split]}
    domain = [t for t, _ in make_sentences(max(200, 2 * num_utterances), "medical", mixed, rng, evaluation)]
    domain += [t for t, _ in make_sentences(max(100, num_utterances // 2), "medical", held, rng, evaluation)]
    rng.shuffle(domain)
    general = [t for t, _ in make_sentences(max(200, 2 * num_utterances), "general", seen, rng, evaluation)]
    return {"items": items, "domain": domain, "general": general, "terms": term_split}


def prepare_mini(out_dir: str | Path, num_utterances: int = 1500, seed: int = 0, num_jobs: int = 2,
                 progress: bool = True) -> dict[str, CutSet]:
    """Build the mini corpus (restartable). Returns the cuts of each split.

    Args:
        out_dir: output folder (layout in the module docstring).
        num_utterances: total utterances over train/dev/test (80/10/10).
        seed: sentence, term-split and voice seed.
        num_jobs: synthesis processes.
    """
    out_dir = Path(out_dir)
    plan = plan_mini(num_utterances, seed)
    (out_dir / "text").mkdir(parents=True, exist_ok=True)
    (out_dir / "text" / "domain.txt").write_text("\n".join(plan["domain"]) + "\n")
    (out_dir / "text" / "general.txt").write_text("\n".join(plan["general"]) + "\n")
    (out_dir / "terms.json").write_text(json.dumps(plan["terms"], indent=1))
    cuts, summary = {}, {"num_utterances": num_utterances, "seed": seed, "splits": {}}
    for split, items in plan["items"].items():
        cs = synthesize_items(items, out_dir / split, voices=voices_for_split(split), num_jobs=num_jobs,
                              seed=seed, progress=progress)
        cuts[split] = cs
        summary["splits"][split] = {
            "utterances": len(cs), "planned": len(items),
            "hours": round(sum(c.duration for c in cs) / 3600, 3),
            "voices": sorted({c.supervisions[0].speaker for c in cs}),
            "entities": sum(len(c.supervisions[0].custom.get("entities", [])) for c in cs),
        }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return cuts
