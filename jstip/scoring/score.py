"""Score hypotheses against references: the figures of ``metrics.json`` and the rows of ``hyps.jsonl``.

``score()`` is the one place where jstip turns (reference, hypothesis) pairs into figures; ``jstip score`` calls it
on files and ``jstip evaluate`` on its own decodes, so both write the same ``metrics.json`` / ``hyps.jsonl``.

Which text each figure is computed on:

| figure | tokens | alignment |
|---|---|---|
| ``wer``, ``u_wer``, ``b_wer`` | words of the normalised text (:mod:`jstip.scoring.normalize`) | sclite weights |
| ``cer`` | characters of the normalised text (spaces included) | unit-cost edit distance |
| ``ter`` | raw whitespace tokens, case and punctuation kept | sclite weights |
| ``eer`` | raw tokens, aligned on their normalised forms; an entity is hit only if its exact surface form sits at the aligned place | sclite weights |
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from jstip.jsonl import write_jsonl
from jstip.scoring.edit_distance import ErrorCounts, biased_counts, char_counts, count_errors, edit_align_batch
from jstip.scoring.entity_match import check_entities
from jstip.scoring.figures import pct
from jstip.scoring.normalize import NORMALIZER_VERSION, NORMALIZERS
from jstip.text import word_spans

log = logging.getLogger(__name__)

FIGURES = ("wer", "cer", "ter", "eer", "u_wer", "b_wer")
"""The headline figures of ``metrics.json``, all fractions (0.05 = 5 %), None when undefined."""


def _nfc_ref(ref: Mapping) -> dict:
    """``ref`` with its text in Unicode NFC and its entity offsets moved to match: an NFD "Métformin" in either the
    reference or the hypothesis is the same word as its NFC spelling."""
    text = str(ref["text"])
    if unicodedata.is_normalized("NFC", text):
        return dict(ref)
    out = dict(ref, text=unicodedata.normalize("NFC", text))
    ents = []
    for e in ref.get("entities") or []:
        try:
            start = len(unicodedata.normalize("NFC", text[: int(e["start"])]))
            end = start + len(unicodedata.normalize("NFC", text[int(e["start"]): int(e["end"])]))
            ents.append({**e, "start": start, "end": end, "text": unicodedata.normalize("NFC", str(e["text"]))})
        except (KeyError, TypeError, ValueError):
            ents.append(e)  # left for the entity check to report
    if "entities" in ref:
        out["entities"] = ents
    return out


def _rate(counts: ErrorCounts) -> float | None:
    return counts.rate


def _ops(alignment) -> str:
    return alignment.ops if hasattr(alignment, "ops") else "".join(pair.op for pair in alignment)


def _entity_figures(results: list[dict]) -> dict:
    n = len(results)
    misses = sum(not r["hit"] for r in results)
    return {"eer": misses / n if n else None, "entities": n, "hits": n - misses, "misses": misses}


def _exposure_figures(entity_rows: list[dict], edges=None) -> dict:
    """EER in each exposure bucket, overall and per category, with counts."""
    from jstip.entities import DEFAULT_EDGES, bucket_labels, bucket_of

    edges = tuple(edges or DEFAULT_EDGES)
    buckets: dict[str, list[dict]] = {label: [] for label in bucket_labels(edges)}
    for e in entity_rows:
        buckets[bucket_of(int(e.get("exposure", 0)), edges)].append(e)
    out = {}
    for label, items in buckets.items():
        per_cat: dict[str, list[dict]] = defaultdict(list)
        for e in items:
            per_cat[e["category"]].append(e)
        out[label] = {**_entity_figures(items),
                      "per_category": {c: _entity_figures(v) for c, v in sorted(per_cat.items())}}
    return {"edges": list(edges), "buckets": out}


def score(
    refs: Iterable[Mapping],
    hyps: Iterable[Mapping] | Mapping[str, str],
    normalizer: str = NORMALIZER_VERSION,
    missing: str = "empty",
    exposure: Mapping[tuple[str, str], int] | None = None,
    exposure_edges=None,
    exposure_source: list[str] | None = None,
) -> dict:
    """Score hypotheses against references.

    Args:
        refs: reference rows: ``id``, ``text``; optional ``entities`` (``text``, ``category``, ``start``, ``end``,
            character offsets into ``text``), ``biasing_words`` (list of words) and ``domain`` (a label).
        hyps: hypothesis rows (``id``, ``hyp``) or a mapping id -> hypothesis text.
        normalizer: name of the WER normaliser (:data:`jstip.scoring.normalize.NORMALIZERS`): ``english-v2``, ``english-v1`` or
            ``none`` (whitespace tokens as written, for corpora that are normalised already).
        missing: what to do with a reference that has no hypothesis: ``empty`` scores it as an empty hypothesis
            (every word deleted, every entity missed), ``skip`` leaves it out of the figures. It is listed in
            ``missing_ids`` either way.
        exposure: (category, text) -> how often the term occurs in the training audio
            (:func:`jstip.entities.exposure_from_manifests`); gives every entity result an ``exposure`` count and
            the figures ``eer_per_exposure`` (overall and per category in each bucket of ``exposure_edges``, default
            0 / 1-2 / 3-9 / >=10). A term found under another category counts by its text alone.
            ``exposure_source`` (the manifests counted) is recorded as ``eer_per_exposure.cuts``.

    Returns:
        The ``metrics.json`` object: ``wer``, ``cer``, ``ter``, ``eer``, ``u_wer``, ``b_wer`` as fractions (None
        when undefined: no entity, no biasing list, no reference word), ``<figure>_counts`` beside each, entity
        figures per category, per entity and per domain, ``entity_misses`` with the aligned hypothesis span of each
        miss, ``missing_ids``, ``extra_ids``, ``duplicate_hyp_ids``, ``duplicate_ref_ids``, ``invalid_entities``;
        plus the key
        ``utterances`` holding the ``hyps.jsonl`` rows (``id``, ``ref``, ``hyp``, normalised texts, per-utterance
        counts, the word alignment as a string of C/S/I/D, entity results). :func:`write_scores` writes both files.

    Raises:
        ValueError: on an unknown normaliser or ``missing`` mode. (An id that occurs twice in the references or in
        the hypotheses is scored once, its first line, and listed in ``duplicate_ref_ids`` / ``duplicate_hyp_ids``;
        texts are compared in Unicode NFC.)
    """
    if normalizer not in NORMALIZERS:
        raise ValueError(f"unknown normalizer {normalizer!r}; choose one of {sorted(NORMALIZERS)}")
    if missing not in ("empty", "skip"):
        raise ValueError(f"missing must be 'empty' or 'skip', not {missing!r}")
    normalize = NORMALIZERS[normalizer]

    hyp_map: dict[str, str] = {}
    duplicate_hyp_ids: list[str] = []
    if isinstance(hyps, Mapping):
        hyp_map = {str(k): unicodedata.normalize("NFC", str(v)) for k, v in hyps.items()}
    else:
        for row in hyps:
            key = str(row["id"])
            if key in hyp_map:  # the first hypothesis of an id is scored; later ones are listed
                duplicate_hyp_ids.append(key)
                continue
            hyp_map[key] = "" if row["hyp"] is None else unicodedata.normalize("NFC", str(row["hyp"]))
    seen: set[str] = set()
    duplicate_ref_ids: list[str] = []
    unique_refs = []
    for r in refs:
        key = str(r["id"])
        if key in seen:  # the first reference of an id is scored; later ones are listed
            duplicate_ref_ids.append(key)
            continue
        seen.add(key)
        unique_refs.append(_nfc_ref(r))
    refs = unique_refs
    ref_ids = [str(r["id"]) for r in refs]
    if duplicate_ref_ids:
        log.warning("%d reference id(s) occur more than once (first: %s): the first of each is scored",
                    len(duplicate_ref_ids), duplicate_ref_ids[0])
    missing_ids = [key for key in ref_ids if key not in hyp_map]
    extra_ids = sorted(set(hyp_map) - seen)
    if missing_ids:
        log.warning("%d reference id(s) have no hypothesis (first: %s); %s", len(missing_ids), missing_ids[0],
                    "scored as empty hypotheses" if missing == "empty" else "left out of the figures")
    if extra_ids:
        log.warning("%d hypothesis id(s) are not in the references (first: %s); ignored", len(extra_ids), extra_ids[0])

    scored = [(r, key) for r, key in zip(refs, ref_ids) if key in hyp_map or missing == "empty"]
    rows = []
    for ref, key in scored:
        ref_text, hyp_text = str(ref["text"]), hyp_map.get(key, "")
        spans = word_spans(ref_text)
        rows.append({
            "ref": ref, "id": key, "ref_text": ref_text, "hyp_text": hyp_text,
            "ref_norm": normalize(ref_text), "hyp_norm": normalize(hyp_text),
            "ref_raw": [s.word for s in spans], "ref_starts": [s.start for s in spans], "hyp_raw": hyp_text.split(),
        })
    for row in rows:
        row["ref_words"], row["hyp_words"] = row["ref_norm"].split(), row["hyp_norm"].split()

    word_alignments = edit_align_batch([(r["ref_words"], r["hyp_words"]) for r in rows])
    raw_alignments = edit_align_batch([(r["ref_raw"], r["hyp_raw"]) for r in rows])
    # Entities are located by aligning raw tokens on their normalised forms (so "metformin" sits where "Metformin,"
    # was said), then judged on the raw tokens; only utterances with entities need this alignment.
    with_entities = [k for k, r in enumerate(rows) if r["ref"].get("entities")]
    key_alignments: list = [None] * len(rows)
    for k, alignment in zip(with_entities, edit_align_batch(
            [([normalize(t) for t in rows[k]["ref_raw"]], [normalize(t) for t in rows[k]["hyp_raw"]])
             for k in with_entities])):
        key_alignments[k] = alignment

    totals = {name: ErrorCounts() for name in ("wer", "cer", "ter", "u_wer", "b_wer")}
    has_biasing = any("biasing_words" in r["ref"] for r in rows)
    has_entities = any(r["ref"].get("entities") for r in rows)
    entity_rows: list[dict] = []
    invalid_entities: list[dict] = []
    per_domain: dict[str, dict] = defaultdict(lambda: {"wer": ErrorCounts(), "entities": []})
    utterances = []
    by_text: dict[str, int] = {}
    for (_, text), n in (exposure or {}).items():
        by_text[text] = by_text.get(text, 0) + n
    for row, w_ali, r_ali, k_ali in zip(rows, word_alignments, raw_alignments, key_alignments):
        ref = row["ref"]
        wer_counts = count_errors(w_ali)
        ter_counts = count_errors(r_ali)
        cer_counts = char_counts(row["ref_norm"], row["hyp_norm"])
        totals["wer"].add(wer_counts)
        totals["ter"].add(ter_counts)
        totals["cer"].add(cer_counts)
        utterance = {
            "id": row["id"], "ref": row["ref_text"], "hyp": row["hyp_text"],
            "ref_norm": row["ref_norm"], "hyp_norm": row["hyp_norm"],
            "wer_counts": wer_counts.to_dict(), "ter_counts": ter_counts.to_dict(), "ops": _ops(w_ali),
        }
        if row["id"] not in hyp_map:
            utterance["missing"] = True
        if "biasing_words" in ref:
            biasing = {w for word in ref.get("biasing_words") or [] for w in normalize(str(word)).split()}
            b_counts, u_counts = biased_counts(w_ali, row["ref_words"], row["hyp_words"], biasing)
            totals["b_wer"].add(b_counts)
            totals["u_wer"].add(u_counts)
            utterance["b_wer_counts"], utterance["u_wer_counts"] = b_counts.to_dict(), u_counts.to_dict()
        elif has_biasing:
            # An utterance without a biasing list has no biasing word: all its errors are unbiased.
            totals["u_wer"].add(wer_counts)
        domain = ref.get("domain")
        if domain is not None:
            utterance["domain"] = domain
            per_domain[str(domain)]["wer"].add(wer_counts)
        entities = ref.get("entities") or []
        if entities:
            check = check_entities(row["ref_text"], row["ref_raw"], row["ref_starts"], row["hyp_raw"], k_ali, entities)
            results = [e.to_dict() for e in check.results]
            if exposure is not None:
                for e in results:
                    e["exposure"] = exposure.get((e["category"], e["text"]), by_text.get(e["text"], 0))
            utterance["entities"] = results
            for e in results:
                entity_rows.append({"id": row["id"], **e})
                if domain is not None:
                    per_domain[str(domain)]["entities"].append(e)
            for bad in check.invalid:
                invalid_entities.append({"id": row["id"], **bad})
        utterances.append(utterance)

    if invalid_entities:
        log.warning("%d entity annotation(s) do not match their text and were left out (first: %s: %s)",
                    len(invalid_entities), invalid_entities[0]["id"], invalid_entities[0]["reason"])

    metrics: dict = {}
    metrics["wer"] = _rate(totals["wer"])
    metrics["cer"] = _rate(totals["cer"])
    metrics["ter"] = _rate(totals["ter"])
    entity_figures = _entity_figures(entity_rows)
    metrics["eer"] = entity_figures["eer"] if has_entities else None
    metrics["u_wer"] = _rate(totals["u_wer"]) if has_biasing else None
    metrics["b_wer"] = _rate(totals["b_wer"]) if has_biasing else None
    for name in ("wer", "cer", "ter", "u_wer", "b_wer"):
        metrics[f"{name}_counts"] = totals[name].to_dict() if name in ("wer", "cer", "ter") or has_biasing else None
    metrics["eer_counts"] = {k: v for k, v in entity_figures.items() if k != "eer"}

    by_category: dict[str, list[dict]] = defaultdict(list)
    by_text: dict[str, list[dict]] = defaultdict(list)
    for e in entity_rows:
        by_category[e["category"]].append(e)
        by_text[e["text"]].append(e)
    metrics["eer_per_category"] = {cat: _entity_figures(items) for cat, items in sorted(by_category.items())}
    if exposure is not None:
        metrics["eer_per_exposure"] = {**_exposure_figures(entity_rows, exposure_edges),
                                       "cuts": list(exposure_source or [])}
    per_entity = []
    for text, items in by_text.items():
        figures = _entity_figures(items)
        category = Counter(e["category"] for e in items).most_common(1)[0][0]
        per_entity.append({"text": text, "category": category, **figures})
    per_entity.sort(key=lambda e: (-e["misses"], -e["entities"], e["text"]))
    metrics["eer_per_entity"] = per_entity
    metrics["entity_misses"] = [
        {"id": e["id"], "text": e["text"], "category": e["category"], "hyp_span": e["hyp_span"]}
        for e in entity_rows if not e["hit"]
    ]
    metrics["per_domain"] = {
        domain: {"wer": d["wer"].rate, "wer_counts": d["wer"].to_dict(), **_entity_figures(d["entities"])}
        for domain, d in sorted(per_domain.items())
    }
    metrics["num_utterances"] = len(utterances)
    metrics["num_refs"] = len(refs)
    metrics["missing_ids"] = missing_ids
    metrics["missing_scored_as"] = "empty hypothesis" if missing == "empty" else "left out"
    metrics["extra_ids"] = extra_ids
    metrics["duplicate_hyp_ids"] = duplicate_hyp_ids
    metrics["duplicate_ref_ids"] = duplicate_ref_ids
    metrics["invalid_entities"] = invalid_entities
    metrics["normalizer"] = normalizer
    metrics["alignment"] = "sclite weights: sub 4, ins 3, del 3"
    metrics["utterances"] = utterances
    return metrics


def write_scores(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``out_dir/metrics.json`` (every key of :func:`score`'s result but ``utterances``) and
    ``out_dir/hyps.jsonl`` (the ``utterances`` rows).

    Returns:
        The paths of metrics.json and hyps.jsonl.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {k: v for k, v in result.items() if k != "utterances"}
    metrics_path, hyps_path = out_dir / "metrics.json", out_dir / "hyps.jsonl"
    metrics_path.write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    write_jsonl(hyps_path, result.get("utterances", []))
    return metrics_path, hyps_path


def summary_line(metrics: Mapping) -> str:
    """One line with the headline figures in percent, e.g. for a CLI to print."""
    parts = []
    for name in FIGURES:
        value = metrics.get(name)
        if value is not None:
            parts.append(f"{name.upper().replace('_', '-')} {pct(value)}%")
    return ", ".join(parts)


__all__ = ["FIGURES", "score", "write_scores", "summary_line"]
