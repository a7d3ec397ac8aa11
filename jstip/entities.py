"""Entity annotations across stages: how often each term occurs in a set of cuts (its exposure), and exposure buckets.

Entities live in ``supervision.custom["entities"]`` (DESIGN.md). A term's *exposure* is the number of annotated
occurrences of it, by (category, surface form), in the supervisions of the training cuts: how often the model heard
it. Buckets are given by their lower edges: ``(0, 1, 3, 10)`` means 0 / 1-2 / 3-9 / >=10 occurrences.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

DEFAULT_EDGES = (0, 1, 3, 10)


def count_entities(entities: Iterable[dict]) -> dict[tuple[str, str], int]:
    """(category, text) -> occurrences among ``entities`` (dicts with ``category`` and ``text``)."""
    counts: dict[tuple[str, str], int] = {}
    for e in entities:
        key = (str(e.get("category", "")), str(e["text"]))
        counts[key] = counts.get(key, 0) + 1
    return counts


def counts_from_cuts(cuts) -> dict[tuple[str, str], int]:
    """(category, text) -> annotated occurrences in the supervisions of ``cuts``."""
    return count_entities(e for cut in cuts for sup in cut.supervisions for e in (sup.custom or {}).get("entities", []))


def counts_from_file(path: str | Path) -> dict[tuple[str, str], int]:
    """(category, text) -> count from a counts file: ``{"terms": [{"text", "category", "count"}, ...]}``, or the
    ``terms.json`` of ``jstip prepare mini`` (its ``train_audio`` counts).

    Raises:
        ValueError: naming the file (and the term) when it is not such a file.
    """
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a JSON counts file ({err})") from err
    terms = data.get("terms") if isinstance(data, dict) else None
    if not isinstance(terms, list):
        raise ValueError(f"{path}: a counts file is a JSON object with a list 'terms' of {{text, category, count}} "
                         "(or the terms.json of `jstip prepare mini`)")
    out: dict[tuple[str, str], int] = {}
    for i, t in enumerate(terms):
        n = t.get("count", t.get("train_audio")) if isinstance(t, dict) else None
        if not isinstance(t, dict) or not isinstance(t.get("text"), str) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{path}: terms[{i}] = {t!r} needs 'text' (a string) and 'count' (or 'train_audio'), "
                             "a non-negative integer")
        key = (str(t.get("category", "")), t["text"])
        out[key] = out.get(key, 0) + n
    return out


def exposure_from_manifests(paths: Sequence[str | Path]) -> dict[tuple[str, str], int]:
    """Exposure counts of the cut manifests ``paths`` (read lazily), summed; a ``.json`` path is a counts file
    (:func:`counts_from_file`)."""
    from lhotse import CutSet

    total: dict[tuple[str, str], int] = {}
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such cut manifest (the training cuts whose entity annotations give "
                                    "each term's exposure)")
        counts = (counts_from_file(path) if str(path).endswith(".json")
                  else counts_from_cuts(CutSet.from_jsonl_lazy(path)))
        for key, n in counts.items():
            total[key] = total.get(key, 0) + n
    return total


def load_exposure(paths: Sequence[str | Path] | None) -> tuple[dict[tuple[str, str], int] | None, list[str]]:
    """(exposure counts, the resolved manifest paths) of ``paths``; (None, []) for none."""
    if not paths:
        return None, []
    return exposure_from_manifests(paths), [str(Path(p).resolve()) for p in paths]


def parse_edges(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"0,1,3,10"`` -> (0, 1, 3, 10); the edges must start at 0 and increase."""
    edges = tuple(int(x) for x in (text.split(",") if isinstance(text, str) else text))
    if not edges or edges[0] != 0 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"exposure bucket edges {edges}: give increasing lower edges starting at 0, e.g. 0,1,3,10")
    return edges


def bucket_labels(edges: Sequence[int] = DEFAULT_EDGES) -> list[str]:
    """Labels of the buckets of ``edges``: ``0``, ``1-2``, ``3-9``, ``>=10``."""
    labels = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] - 1 if i + 1 < len(edges) else None
        labels.append(f">={lo}" if hi is None else str(lo) if hi == lo else f"{lo}-{hi}")
    return labels


def bucket_of(count: int, edges: Sequence[int] = DEFAULT_EDGES) -> str:
    """The label of the bucket ``count`` falls in."""
    labels = bucket_labels(edges)
    for i in range(len(edges) - 1, -1, -1):
        if count >= edges[i]:
            return labels[i]
    return labels[0]


def exposure_options(func):
    """The ``--exposure-cuts`` / ``--exposure-edges`` options of ``jstip evaluate`` and ``jstip score``."""
    import click

    func = click.option("--exposure-edges", default=",".join(map(str, DEFAULT_EDGES)), show_default=True,
                        help="Lower edges of the exposure buckets (0,1,3,10: 0 / 1-2 / 3-9 / >=10 occurrences).")(func)
    return click.option("--exposure-cuts", multiple=True, type=click.Path(exists=True, dir_okay=False),
                        help="Training cut manifest(s) whose entity annotations count how often each term was "
                             "heard, or a counts file (.json: the terms.json of `jstip prepare mini`, or {\"terms\": "
                             "[{text, category, count}]}); adds EER per exposure bucket (repeatable).")(func)
