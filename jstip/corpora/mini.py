"""The built-in mini corpus: general and entity-rich medical sentences spoken by real TTS engines.

Sentences come from templates in ``jstip/resources/templates/`` filled with real term lists from ``jstip/resources/terms/`` (drug names,
ICD-10-CM conditions, procedures). Medical entities are annotated in ``supervision.custom["entities"]``.

Designed for measuring entity transfer across exposure, as real domain adaptation is: some terms are frequent in the
training audio, many are heard once or twice, many never, while the domain text has them all.
- each term list is shuffled into exposure tiers: terms never spoken in train (``0``), spoken 1-2 times, 3-9 times,
  10-14 times (``>=10``), and train-only terms that fill the remaining train slots; the tiers are sized to the train
  set's entity slots, so every tier's terms reach their counts;
- dev and test entities are drawn tier by tier with equal chances, so the test set's entity instances fall evenly in
  the exposure buckets 0 / 1-2 / 3-9 / >=10 (at least 50 each at `jstip prepare mini`'s 2,500 utterances and the
  demo's 3,000);
- every term occurs in the text-only domain corpus ``text/domain.txt`` (what JSTIP's domain text brings);
- ``terms.json`` gives each term's tier, its train-audio count (recounted from the synthesised train cuts) and its
  domain-text count;
- test (and dev) voices are accents never heard in training (``jstip.tts.voices``);
- no dev or test sentence is a train transcript or a line of the text corpora, and each occurs once in its split.

Layout of ``out_dir``::

    {train,dev,test}/  recordings.jsonl.gz supervisions.jsonl.gz cuts.jsonl.gz rejected.jsonl audio/ meta/
    text/domain.txt    medical sentences, text only (held-out terms included)
    text/general.txt   general sentences, text only
    terms.json         every term: category, exposure tier, train-audio and domain-text counts
    summary.json       counts, hours, voices per split
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from lhotse import CutSet

from jstip.entities import bucket_of, count_entities, counts_from_cuts
from jstip.paths import resource_path
from jstip.tts.corpus import synthesize_items
from jstip.tts.voices import voices_for_split

DATA_DIR = resource_path()
SPLITS = {"train": 0.8, "dev": 0.1, "test": 0.1}
ENTITY_SLOTS = {"drug": "drug", "drug2": "drug", "condition": "condition", "procedure": "procedure"}
# Exposure tiers: the range of train-audio occurrences each tier's terms get. The test set draws its entities from
# these four with equal chances; the remaining terms ("train") only fill train slots.
EXPOSURE_TIERS = {"0": (0, 0), "1-2": (1, 2), "3-9": (3, 9), ">=10": (10, 14)}
TIER_EDGES = tuple(lo for lo, _ in EXPOSURE_TIERS.values())  # the same buckets as jstip.entities.DEFAULT_EDGES
QUOTA_SHARE = 0.7  # share of the train set's entity slots that the tiers' quotas may take
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


class TermPicker:
    """Fills a sentence's entity slots: first from a queue of owed occurrences (in order), then by a random draw.

    Args:
        owed: per category, terms to place (a term listed k times is placed k times).
        pools: per category, the terms a random draw takes from (a list of lists: a pool is drawn first, then a term,
            so each pool gets an equal share of draws).
    """

    def __init__(self, owed: dict[str, list[str]], pools: dict[str, list[list[str]]], rng: random.Random) -> None:
        self.owed = {c: list(v) for c, v in owed.items()}
        self.pools = {c: [p for p in v if p] for c, v in pools.items()}
        self.rng = rng
        self._taken: list[tuple[str, int, str]] = []  # owed terms handed out for the current sentence

    def begin(self) -> None:
        """A new sentence: what it takes from the owed queues can be given back with :meth:`undo`."""
        self._taken = []

    def undo(self) -> None:
        for category, i, term in reversed(self._taken):
            self.owed[category].insert(i, term)
        self._taken = []

    def __call__(self, category: str, used: set[str]) -> str:
        queue = self.owed.get(category, [])
        for i, term in enumerate(queue):
            if term not in used:
                self._taken.append((category, i, term))
                return queue.pop(i)
        for _ in range(100):
            term = self.rng.choice(self.rng.choice(self.pools[category]))
            if term not in used:
                return term
        raise ValueError(f"cannot draw two different {category} terms for one sentence: add terms to jstip/resources/terms/")

    def owes(self) -> int:
        return sum(len(v) for v in self.owed.values())


def random_picker(terms: dict[str, list[str]], rng: random.Random) -> TermPicker:
    """Uniform draws from each category's terms."""
    return TermPicker({}, {c: [v] for c, v in terms.items()}, rng)


def make_sentences(
    n: int, kind: str, pick: TermPicker | None, rng: random.Random, avoid: set[str] = frozenset(),
    distinct: bool = False,
) -> list[tuple[str, list[dict]]]:
    """``n`` sentences of ``kind`` (``medical`` or ``general``) with their entities; ``pick`` fills entity slots.

    A drawn sentence whose text is in ``avoid`` (or, with ``distinct``, was drawn already) is drawn again: how dev/test
    sentences stay out of train transcripts and the text corpora out of dev/test. Only the slots a template uses are
    filled, so every term ``pick`` hands out is spoken.
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
                             f"from jstip/resources/templates/{kind}.txt outside the {len(avoid)} excluded ones: add templates "
                             "or slot values, or ask for fewer utterances")
        template = rng.choice(templates)
        values = {k: rng.choice(v) for k, v in slots.items()}
        used: set[str] = set()
        entity_slots = [m for m in dict.fromkeys(_SLOT.findall(template)) if m in ENTITY_SLOTS]
        if entity_slots and pick is None:
            raise ValueError(f"jstip/resources/templates/{kind}.txt: a template has entity slots; give terms to fill them")
        values.update({slot: "" for slot in entity_slots})
        if pick is not None:
            pick.begin()
        for slot in entity_slots:
            values[slot] = pick(ENTITY_SLOTS[slot], used)
            used.add(values[slot])
        sentence = fill_template(template, values)
        if sentence[0] in avoid or (distinct and sentence[0] in taken):
            if pick is not None:
                pick.undo()  # the owed terms of a sentence drawn again are owed again
            continue
        taken.add(sentence[0])
        out.append(sentence)
    return out


def _slot_rates(kind: str = "medical") -> dict[str, float]:
    """Mean number of entity slots of each category per sentence of ``kind`` (templates drawn uniformly)."""
    templates = load_templates(kind)
    rates = {c: 0.0 for c in set(ENTITY_SLOTS.values())}
    for t in templates:
        for slot in dict.fromkeys(_SLOT.findall(t)):
            if slot in ENTITY_SLOTS:
                rates[ENTITY_SLOTS[slot]] += 1 / len(templates)
    return rates


def assign_tiers(terms: dict[str, list[str]], train_sentences: int, seed: int) -> dict[str, dict[str, list[str]]]:
    """Per category, the terms of each exposure tier (``EXPOSURE_TIERS``) and the train-only rest (``train``).

    Each tier gets as many terms as the train set's slots of that category can hold at ``QUOTA_SHARE`` (10-14
    occurrences for the top tier, 3-9, 1-2 below), and at most a sixth of the category's terms.
    """
    rng = random.Random(seed)
    rates = _slot_rates("medical")
    mean_count = sum((lo + hi) / 2 for lo, hi in EXPOSURE_TIERS.values())
    out = {}
    for cat, items in terms.items():
        if not items:
            raise ValueError(f"{_data_dir() / 'terms'}: the {cat} list is empty: give it at least one term")
        items = sorted(items)
        rng.shuffle(items)
        capacity = rates.get(cat, 0.0) * train_sentences * QUOTA_SHARE
        k = max(1, min(len(items) // 6, int(capacity / mean_count)))
        tiers = {name: sorted(items[i * k:(i + 1) * k]) for i, name in enumerate(EXPOSURE_TIERS)}
        tiers["train"] = sorted(items[len(EXPOSURE_TIERS) * k:])
        out[cat] = tiers
    return out


def plan_mini(num_utterances: int, seed: int = 0, medical_share: float = 0.5) -> dict:
    """What the mini corpus will hold: items per split, domain and general text, the exposure tiers of the terms."""
    rng = random.Random(seed)
    terms = load_terms()
    counts = {split: max(1, round(num_utterances * share)) for split, share in SPLITS.items() if split != "train"}
    counts = {"train": num_utterances - sum(counts.values()), **counts}
    tiers = assign_tiers(terms, round(counts["train"] * medical_share), seed)
    # Train: every tiered term owes its drawn number of occurrences; train-only terms fill the other slots.
    owed = {}
    for cat, by_tier in tiers.items():
        queue = [t for name, (lo, hi) in EXPOSURE_TIERS.items() for t in by_tier[name]
                 for _ in range(rng.randint(lo, hi))]
        rng.shuffle(queue)
        owed[cat] = queue
    train_pick = TermPicker(owed, {c: [v["train"] or [t for n in EXPOSURE_TIERS for t in v[n]]]
                                   for c, v in tiers.items()}, rng)
    items: dict[str, list[dict]] = {}
    start = 0
    held_out_texts: set[str] = set()  # train transcripts, then every dev/test sentence: what later splits avoid
    eval_pick = None
    for split, n in counts.items():
        n_med = round(n * medical_share)
        evaluated = split != "train"  # dev/test: distinct, never a train transcript or a sentence of another split
        if evaluated and eval_pick is None:
            # A small corpus may not hold every quota: a tiered term's tier is the bucket its train count fell in.
            heard = count_entities(e for item in items["train"] for e in item["entities"])
            tiers = {c: {**{name: sorted(t for name2 in EXPOSURE_TIERS for t in v[name2]
                                         if exposure_bucket(heard.get((c, t), 0)) == name) for name in EXPOSURE_TIERS},
                         "train": v["train"]} for c, v in tiers.items()}
            # Dev and test: a tier first, with equal chances, then one of its terms.
            eval_pick = TermPicker({}, {c: [v[name] for name in EXPOSURE_TIERS] for c, v in tiers.items()}, rng)
        pick = eval_pick if evaluated else train_pick
        sents = (make_sentences(n_med, "medical", pick, rng, held_out_texts, distinct=evaluated)
                 + make_sentences(n - n_med, "general", None, rng, held_out_texts, distinct=evaluated))
        held_out_texts.update(text for text, _ in sents)
        rng.shuffle(sents)
        items[split] = [{"id": f"mini-{split}-{start + i:05d}", "text": text, "entities": ents,
                         "custom": {"domain": "medical" if ents else "general"}} for i, (text, ents) in enumerate(sents)]
        start += n
    # The text corpora never hold a dev or test sentence; the domain text holds every term at least once.
    evaluation = {item["text"] for split in ("dev", "test") for item in items[split]}
    all_terms = {c: sorted(t for v in by_tier.values() for t in v) for c, by_tier in tiers.items()}
    spoken = {c for c, rate in _slot_rates("medical").items() if rate > 0}  # a category no template uses is never owed
    domain_pick = TermPicker({c: rng.sample(v, len(v)) for c, v in all_terms.items() if c in spoken},
                             {c: [v] for c, v in all_terms.items()}, rng)
    domain = []
    while domain_pick.owes():
        domain += make_sentences(1, "medical", domain_pick, rng, evaluation)
    domain += make_sentences(max(200, 2 * num_utterances), "medical", random_picker(all_terms, rng), rng, evaluation)
    rng.shuffle(domain)
    general = [t for t, _ in make_sentences(max(200, 2 * num_utterances), "general", None, rng, evaluation)]
    domain_counts = count_entities(e for _, ents in domain for e in ents)
    return {"items": items, "domain": [t for t, _ in domain], "general": general, "tiers": tiers,
            "domain_counts": domain_counts}


def exposure_bucket(count: int) -> str:
    """The exposure tier (``EXPOSURE_TIERS``) that ``count`` train-audio occurrences fall in."""
    return bucket_of(count, TIER_EDGES)


def terms_table(tiers: dict, train_counts: dict, domain_counts: dict) -> dict:
    """The ``terms.json`` object: every term with its tier and its train-audio and domain-text counts."""
    rows = []
    for cat, by_tier in sorted(tiers.items()):
        for tier, items in by_tier.items():
            rows.extend({"text": t, "category": cat, "tier": tier, "train_audio": train_counts.get((cat, t), 0),
                         "domain_text": domain_counts.get((cat, t), 0)} for t in items)
    return {"tiers": {name: list(r) for name, r in EXPOSURE_TIERS.items()},
            "note": "train_audio: annotated occurrences in the synthesised train cuts; domain_text: in text/domain.txt",
            "terms": rows}


SHARD_STAGE = "prepare-mini"


def prepare_mini(out_dir: str | Path, num_utterances: int = 1500, seed: int = 0, num_jobs: int = 2,
                 progress: bool = True, shard=None) -> dict[str, CutSet]:
    """Build the mini corpus (restartable). Returns the cuts of each split.

    Args:
        out_dir: output folder (layout in the module docstring).
        num_utterances: total utterances over train/dev/test (80/10/10).
        seed: sentence, term-split and voice seed.
        num_jobs: synthesis processes.
        shard: ``(i, N)``: synthesise only the items of shard i (:mod:`jstip.sharding`; the plan is the same in
            every shard). ``terms.json`` and ``summary.json`` need the whole train split: `jstip shards combine`
            writes them (:func:`finish_mini`).
    """
    from jstip.sharding import in_shard, write_record

    out_dir = Path(out_dir)
    plan = plan_mini(num_utterances, seed)
    (out_dir / "text").mkdir(parents=True, exist_ok=True)
    (out_dir / "text" / "domain.txt").write_text("\n".join(plan["domain"]) + "\n")
    (out_dir / "text" / "general.txt").write_text("\n".join(plan["general"]) + "\n")
    cuts, assigned = {}, []
    for split, items in plan["items"].items():
        items = [item for item in items if in_shard(item["id"], shard)]
        assigned += [item["id"] for item in items]
        cuts[split] = synthesize_items(items, out_dir / split, voices=voices_for_split(split), num_jobs=num_jobs,
                                       seed=seed, progress=progress)
    if shard is None:
        finish_mini(out_dir, num_utterances, seed, cuts)
    else:
        write_record(out_dir, SHARD_STAGE, shard, f"mini(num_utterances={num_utterances}, seed={seed})", assigned,
                     num_utterances=num_utterances, seed=seed)
    return cuts


def finish_mini(out_dir: str | Path, num_utterances: int, seed: int, cuts: dict[str, CutSet] | None = None) -> None:
    """Write ``terms.json`` and ``summary.json`` from the cuts of every split (read from ``out_dir`` when not
    given): the counts of the train audio as synthesised (an item the TTS rejected was never heard)."""
    out_dir = Path(out_dir)
    plan = plan_mini(num_utterances, seed)
    if cuts is None:
        cuts = {split: CutSet.from_file(out_dir / split / "cuts.jsonl.gz") for split in plan["items"]}
    summary = {"num_utterances": num_utterances, "seed": seed, "splits": {}}
    for split, items in plan["items"].items():
        cs = cuts[split]
        summary["splits"][split] = {
            "utterances": len(cs), "planned": len(items),
            "hours": round(sum(c.duration for c in cs) / 3600, 3),
            "voices": sorted({c.supervisions[0].speaker for c in cs}),
            "entities": sum(len(c.supervisions[0].custom.get("entities", [])) for c in cs),
        }
    table = terms_table(plan["tiers"], counts_from_cuts(cuts["train"]), plan["domain_counts"])
    (out_dir / "terms.json").write_text(json.dumps(table, indent=1))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
