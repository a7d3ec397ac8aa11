"""A grid of scored runs — arms (data settings) × seeds — summarised in one table with bootstrap intervals.

Layout read by :func:`find_grid`::

    ROOT/<arm>/seed<k>/metrics.json + hyps.jsonl      (as written by `jstip evaluate` or `jstip score`)
    ROOT/<arm>/metrics.json + hyps.jsonl              (an arm with a single run)

For every arm the table gives WER, EER, EER per entity category and EER per exposure bucket (how often a term was
heard in the training audio: the ``exposure`` of each entity in hyps.jsonl, bucketed by the edges of metrics.json's
``eer_per_exposure``) as the **mean over its seeds** (pooled: the errors
of all seeds over the words or entities of all seeds), with a 95% percentile interval from a bootstrap over the test
utterances (every sample draws the utterances once and uses that draw for every arm, seed and figure), and the value
of each seed. Each arm is compared with the baseline arm by a paired bootstrap of the difference of the seed means,
with the share of samples in which the arm is better, and the number of seeds in which it was better than the
baseline run of the same seed. Runs that hold the modality gap (``spoken_tasks/modality_gap.jsonl`` of `jstip
evaluate`) add the MCQ accuracy with text and with speech input and the gap, with intervals from a bootstrap over the
MCQ items.

What the interval covers: the sampling of test utterances. What it does not: training noise beyond the seeds run; the
per-seed values show that spread. Runs of a grid must score the same utterances; the table uses the utterances that
every run scored and says how many.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jstip.entities import bucket_labels
from jstip.report.runs import load_run
from jstip.jsonl import read_jsonl
from jstip.scoring.stats import bootstrap_ratios

SEED_DIR = re.compile(r"^seed(\d+)$")


@dataclass
class Figure:
    """One figure of one arm: the seed mean with its bootstrap interval and the value of every seed (fractions)."""

    value: float
    low: float
    high: float
    per_seed: dict[str, float] = field(default_factory=dict)
    errors: float = 0.0
    """Errors summed over seeds (misses for EER)."""
    total: float = 0.0
    """Reference units summed over seeds (words for WER, entity instances for EER)."""


@dataclass
class ArmSummary:
    name: str
    seeds: list[str]
    figures: dict[str, Figure]
    """``wer``, ``eer``, ``eer/<category>`` and ``eer@<exposure bucket>``."""


@dataclass
class GridDifference:
    """Arm minus baseline on the seed means, with its paired bootstrap interval (fractions)."""

    figure: str
    arm: str
    baseline: str
    delta: float
    low: float
    high: float
    p_better: float
    """Share of bootstrap samples in which the arm's figure is strictly below the baseline's."""
    seeds_better: int
    seeds_compared: int

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass
class ModalityGap:
    """MCQ accuracy with text and with speech input and their gap (speech minus text), seed means over the items that
    every run answered, with 95% intervals from a bootstrap over those items; ``delta``: the arm's gap minus the
    baseline's, paired (None for the baseline)."""

    arm: str
    text: Figure
    speech: Figure
    gap: Figure
    items: int
    delta: Figure | None = None


@dataclass
class Grid:
    arms: list[ArmSummary]
    baseline: str
    categories: list[str]
    differences: list[GridDifference]
    utterances: int
    entities_per_run: int
    words_per_run: int
    num_samples: int
    seed: int
    runs: dict[str, dict[str, str]]
    """arm -> seed -> run folder."""
    dropped_ids: int = 0
    """Utterances left out because not every run scored them."""
    exposure_edges: list[int] | None = None
    """Lower edges of the exposure buckets (None: the runs hold no exposure counts)."""
    buckets: list[str] = field(default_factory=list)
    """Exposure buckets with entities, in order (figures ``eer@<bucket>``)."""
    modality_gap: list[ModalityGap] = field(default_factory=list)
    """Per arm, when every run of the arm holds spoken_tasks/modality_gap.jsonl."""


def find_grid(root: str | Path) -> dict[str, dict[str, Path]]:
    """The runs under ``root`` (see the module docstring): arm -> seed name -> run folder, sorted.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no run.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (a grid folder holds <arm>/seed<k>/metrics.json)")
    runs: dict[str, dict[str, Path]] = {}
    for arm_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        seeds = {}
        for sub in sorted(arm_dir.iterdir(), key=lambda p: (len(p.name), p.name)):
            if sub.is_dir() and SEED_DIR.match(sub.name) and (sub / "metrics.json").is_file():
                seeds[sub.name] = sub
        if not seeds and (arm_dir / "metrics.json").is_file():
            seeds["seed-"] = arm_dir
        if seeds:
            runs[arm_dir.name] = seeds
    if not runs:
        raise FileNotFoundError(f"{root}: no run found (expected {root}/<arm>/seed<k>/metrics.json and hyps.jsonl, "
                                "written by `jstip evaluate --out` or `jstip score --out`)")
    return runs


def select_seeds(runs: Mapping[str, Mapping[str, Path]], seeds: Sequence[str | int]) -> dict[str, dict[str, Path]]:
    """Only the runs of ``seeds`` (``0`` or ``seed0``) of every arm.

    Raises:
        ValueError: an arm lacks one of the seeds (named, with the folder it was looked for in).
    """
    names = [s if str(s).startswith("seed") else f"seed{s}" for s in map(str, seeds)]
    out = {}
    for arm, arm_runs in runs.items():
        missing = [n for n in names if n not in arm_runs]
        if missing:
            raise ValueError(f"arm {arm} has no run of {', '.join(missing)} (no {arm}/{missing[0]}/metrics.json; "
                             f"it has {', '.join(arm_runs) or 'none'})")
        out[arm] = {n: arm_runs[n] for n in names}
    return out


def _counts(utterances: list[dict], edges: Sequence[int] | None = None) -> dict[str, dict[str, tuple[float, float]]]:
    """Per utterance id: figure -> (errors, total) for wer, eer, eer/<category> and (with ``edges``) eer@<bucket>."""
    from jstip.entities import bucket_of

    out: dict[str, dict[str, tuple[float, float]]] = {}
    for row in utterances:
        figs: dict[str, tuple[float, float]] = {}
        counts = row.get("wer_counts")
        if counts is not None:
            figs["wer"] = (float(counts["errors"]), float(counts["ref_words"]))
        entities = row.get("entities") or []
        figs["eer"] = (float(sum(not e["hit"] for e in entities)), float(len(entities)))
        for e in entities:
            keys = [f"eer/{e.get('category') or 'none'}"]
            if edges is not None:
                keys.append(f"eer@{bucket_of(int(e['exposure']), edges)}")
            for key in keys:
                miss, tot = figs.get(key, (0.0, 0.0))
                figs[key] = (miss + (not e["hit"]), tot + 1)
        out[str(row["id"])] = figs
    return out


def build_grid(runs: Mapping[str, Mapping[str, str | Path]], baseline: str | None = None, arms: Sequence[str] = (),
               num_samples: int = 1000, seed: int = 0) -> Grid:
    """Summarise a grid of scored runs.

    Args:
        runs: arm -> seed name -> run folder (``metrics.json`` + ``hyps.jsonl``), e.g. from :func:`find_grid`.
        baseline: the arm the others are compared with (default: the first of ``arms``, else of ``runs``).
        arms: the arms to show, in this order (default: all, baseline first).
        num_samples: bootstrap samples.
        seed: seed of the bootstrap.

    Raises:
        ValueError: an arm (or the baseline) that is not in ``runs``, naming the arms there are; runs with no
            utterance in common.
    """
    names = list(arms) or list(runs)
    unknown = [a for a in names if a not in runs]
    if unknown:
        raise ValueError(f"arm(s) {', '.join(unknown)} not found; the grid has: {', '.join(runs)}")
    baseline = baseline or names[0]
    if baseline not in runs:
        raise ValueError(f"baseline arm {baseline!r} not found; the grid has: {', '.join(runs)}")
    names = [baseline] + [a for a in names if a != baseline]

    loaded = {a: {s: load_run(Path(p)) for s, p in runs[a].items()} for a in names}
    edges = _exposure_edges(loaded)
    counts = {a: {s: _counts(r.utterances, edges) for s, r in loaded[a].items()} for a in names}
    all_ids = [set(c) for a in names for c in counts[a].values()]
    common = sorted(set.intersection(*all_ids))
    if not common:
        raise ValueError("the runs of the grid have no scored utterance in common (were they scored on the same "
                         "test set?)")
    dropped = len(set.union(*all_ids)) - len(common)
    categories = sorted({k.split("/", 1)[1] for a in names for c in counts[a].values() for u in common
                         for k in c[u] if k.startswith("eer/")})
    present = {k for a in names for c in counts[a].values() for u in common for k in c[u]}
    buckets = [] if edges is None else [b for b in bucket_labels(edges) if f"eer@{b}" in present]
    figures = ["wer", "eer"] + [f"eer/{c}" for c in categories] + [f"eer@{b}" for b in buckets]
    # Totals come from the references and are the same in every run; take them from the first run.
    ref_counts = next(iter(counts[baseline].values()))
    totals = {f: np.array([ref_counts[u].get(f, (0.0, 0.0))[1] for u in common]) for f in figures}

    def errors(arm: str, s: str, fig: str) -> np.ndarray:
        return np.array([counts[arm][s][u].get(fig, (0.0, 0.0))[0] for u in common])

    # One bootstrap for everything: rows are (arm, figure) seed means, then (arm, figure) differences.
    rows_num, rows_den, keys = [], [], []
    mean_errors: dict[tuple[str, str], np.ndarray] = {}
    for arm in names:
        for fig in figures:
            e = np.mean([errors(arm, s, fig) for s in counts[arm]], axis=0)  # (U,) seed-mean errors
            mean_errors[arm, fig] = e
            rows_num.append(e)
            rows_den.append(totals[fig])
            keys.append(("figure", arm, fig))
    for arm in names[1:]:
        for fig in figures:
            rows_num.append(mean_errors[arm, fig] - mean_errors[baseline, fig])
            rows_den.append(totals[fig])
            keys.append(("difference", arm, fig))
    value, low, high, below = bootstrap_ratios(np.stack(rows_num), np.stack(rows_den), num_samples, seed)

    def rate(e: np.ndarray, t: np.ndarray) -> float:
        return float(e.sum() / t.sum()) if t.sum() > 0 else math.nan

    summaries = {a: ArmSummary(a, list(counts[a]), {}) for a in names}
    differences = []
    for i, (kind, arm, fig) in enumerate(keys):
        if kind == "figure":
            per_seed = {s: rate(errors(arm, s, fig), totals[fig]) for s in counts[arm]}
            n_seeds = len(counts[arm])
            summaries[arm].figures[fig] = Figure(float(value[i]), float(low[i]), float(high[i]), per_seed,
                                                 float(mean_errors[arm, fig].sum() * n_seeds),
                                                 float(totals[fig].sum() * n_seeds))
        else:
            shared = [s for s in counts[arm] if s in counts[baseline]]
            better = sum(rate(errors(arm, s, fig), totals[fig]) < rate(errors(baseline, s, fig), totals[fig])
                         for s in shared)
            differences.append(GridDifference(fig, arm, baseline, float(value[i]), float(low[i]), float(high[i]),
                                              float(below[i]), int(better), len(shared)))
    return Grid([summaries[a] for a in names], baseline, categories, differences, len(common),
                int(totals["eer"].sum()), int(totals["wer"].sum()), num_samples, seed,
                {a: {s: str(runs[a][s]) for s in counts[a]} for a in names}, dropped,
                None if edges is None else list(edges), buckets,
                _modality_gaps({a: {s: Path(p) for s, p in runs[a].items()} for a in names}, baseline, num_samples,
                               seed))


def _exposure_edges(loaded: Mapping[str, Mapping[str, object]]) -> tuple[int, ...] | None:
    """The exposure bucket edges shared by every run, or None when some run holds no exposure counts.

    Raises:
        ValueError: runs scored with different edges (naming two of them).
    """
    seen: dict[tuple[int, ...], str] = {}
    for arm, arm_runs in loaded.items():
        for s, run in arm_runs.items():
            section = run.metrics.get("eer_per_exposure")
            entities = [e for row in run.utterances for e in row.get("entities") or []]
            if not section or any("exposure" not in e for e in entities):
                return None
            seen.setdefault(tuple(int(x) for x in section["edges"]), f"{arm}/{s}")
    if len(seen) > 1:
        (e1, r1), (e2, r2) = list(seen.items())[:2]
        raise ValueError(f"runs scored with different exposure buckets: {r1} has edges {list(e1)}, {r2} has "
                         f"{list(e2)}; score every run with the same --exposure-edges")
    return next(iter(seen)) if seen else None


def _mcq_rows(run_dir: Path) -> dict[str, tuple[float, float]] | None:
    """MCQ item id -> (correct with text input, correct with speech input), or None without the modality gap."""
    path = run_dir / "spoken_tasks" / "modality_gap.jsonl"
    if not path.is_file():
        return None
    rows = read_jsonl(path, ("id", "correct_text", "correct_speech"))
    return {str(r["id"]): (float(r["correct_text"]), float(r["correct_speech"])) for r in rows}


def _modality_gaps(runs: Mapping[str, Mapping[str, Path]], baseline: str, num_samples: int,
                   seed: int) -> list[ModalityGap]:
    """The modality gap of every arm whose runs all hold it, on the items every such run answered."""
    rows = {a: {s: _mcq_rows(p) for s, p in arm_runs.items()} for a, arm_runs in runs.items()}
    arms = [a for a in runs if all(r is not None for r in rows[a].values())]
    if not arms:
        return []
    items = sorted(set.intersection(*(set(r) for a in arms for r in rows[a].values())))
    if not items:
        return []
    ones = np.ones(len(items))

    def mean_over_seeds(a: str, k: int) -> np.ndarray:  # k: 0 text, 1 speech
        return np.mean([[r[i][k] for i in items] for r in rows[a].values()], axis=0)

    nums, keys = [], []
    for a in arms:
        text, speech = mean_over_seeds(a, 0), mean_over_seeds(a, 1)
        nums += [text, speech, speech - text]
        keys += [(a, "text"), (a, "speech"), (a, "gap")]
    if baseline in arms:
        base_gap = nums[3 * arms.index(baseline) + 2]
        for a in arms:
            if a != baseline:
                nums.append(nums[3 * arms.index(a) + 2] - base_gap)
                keys.append((a, "delta"))
    value, low, high, _ = bootstrap_ratios(np.stack(nums), np.stack([ones] * len(nums)), num_samples, seed)
    per_seed = {a: {s: (np.mean([r[i][0] for i in items]), np.mean([r[i][1] for i in items]))
                    for s, r in rows[a].items()} for a in arms}
    figs: dict[tuple[str, str], Figure] = {}
    for j, (a, kind) in enumerate(keys):
        seeds = {}
        if kind != "delta":
            for s, (t, sp) in per_seed[a].items():
                seeds[s] = float({"text": t, "speech": sp, "gap": sp - t}[kind])
        figs[a, kind] = Figure(float(value[j]), float(low[j]), float(high[j]), seeds)
    return [ModalityGap(a, figs[a, "text"], figs[a, "speech"], figs[a, "gap"], len(items), figs.get((a, "delta")))
            for a in arms]
