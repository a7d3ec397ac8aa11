"""Scored runs loaded from their folders, and the comparisons every report makes between them.

A run folder (``RUN_DIR``) holds at least ``metrics.json`` and ``hyps.jsonl`` as written by
:func:`jstip.scoring.score.write_scores` (``jstip score`` / ``jstip evaluate``). Training logs, when present, are
read from ``RUN_DIR/metrics.jsonl`` or any ``RUN_DIR/**/metrics.jsonl`` (one JSON object per line with ``step`` and
any of ``loss``, ``train_loss``, ``val_loss``, ``dev_loss``) or Lightning's ``RUN_DIR/**/metrics.csv`` (same column
names).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jstip.jsonl import read_jsonl
from jstip.scoring.stats import bootstrap_ratios, paired_bootstrap

HEADLINE = ("wer", "cer", "ter", "eer", "u_wer", "b_wer")
LOSS_KEYS = ("loss", "train_loss", "val_loss", "dev_loss")


class RunFileError(ValueError):
    """A run folder's metrics.json or hyps.jsonl that cannot be read: the message names the file (and line)."""


@dataclass
class Run:
    """One scored run loaded from its folder."""

    name: str
    path: Path
    metrics: dict
    utterances: list[dict]
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Learning curves: metric name -> [(step, value)], from the training logs."""


def _read_curves(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    curves: dict[str, list[tuple[float, float]]] = {}

    def add(row: dict, source: Path) -> None:
        step = row.get("step")
        if step in (None, ""):
            return
        for key in LOSS_KEYS:
            value = row.get(key)
            if value in (None, ""):
                continue
            try:
                point = (float(step), float(value))
            except (TypeError, ValueError):
                continue
            if math.isfinite(point[1]):
                curves.setdefault(key, []).append(point)

    logs = sorted({*run_dir.glob("metrics.jsonl"), *run_dir.glob("**/metrics.jsonl")})
    for log_path in logs:
        with open(log_path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a log cut short by a killed run still gives its complete lines
                if isinstance(row, dict):
                    add(row, log_path)
    for csv_path in sorted(run_dir.glob("**/metrics.csv")):
        with open(csv_path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                add(row, csv_path)
    for key in curves:
        curves[key].sort()
    return curves


def load_run(run_dir: str | Path, name: str | None = None) -> Run:
    """Load ``metrics.json``, ``hyps.jsonl`` and any training logs of a run folder.

    Raises:
        FileNotFoundError: naming the missing file and the command that writes it.
        RunFileError: a file that cannot be read, named with its line.
    """
    run_dir = Path(run_dir)
    metrics_path, hyps_path = run_dir / "metrics.json", run_dir / "hyps.jsonl"
    for path in (metrics_path, hyps_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: a run folder needs metrics.json and hyps.jsonl, "
                                    "as written by `jstip score` or `jstip evaluate`")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise RunFileError(f"{metrics_path}: not a JSON object ({err}); it is written by `jstip score` or "
                           "`jstip evaluate`") from err
    try:
        utterances = read_jsonl(hyps_path, ("id",))
    except ValueError as err:
        raise RunFileError(str(err)) from err
    return Run(name or run_dir.resolve().name, run_dir, metrics, utterances, _read_curves(run_dir))


def unique_names(paths: Sequence[Path]) -> list[str]:
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.resolve().parent.name}/{p.resolve().name}" if names.count(p.resolve().name) > 1 else n
            for p, n in zip(paths, names)]


@dataclass
class Difference:
    """A paired difference (run B minus run A) with its bootstrap interval, in fractions."""

    metric: str
    run_a: str
    run_b: str
    value_a: float
    value_b: float
    delta: float
    low: float
    high: float
    p_b_better: float
    """Share of bootstrap samples in which B is strictly lower (better) than A."""
    utterances: int

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def _per_utterance(run: Run, metric: str) -> dict[str, tuple[float, float]]:
    # (errors, total) per utterance id: words for WER, entity instances for EER
    out = {}
    for row in run.utterances:
        if metric == "wer":
            counts = row.get("wer_counts")
            if counts is not None:
                out[row["id"]] = (counts["errors"], counts["ref_words"])
        elif metric == "eer":
            entities = row.get("entities") or []
            out[row["id"]] = (sum(not e["hit"] for e in entities), len(entities))
    return out


def compare_runs(baseline: Run, other: Run, metric: str, num_samples: int = 1000, seed: int = 0) -> Difference | None:
    """Paired bootstrap of ``metric`` (``wer`` or ``eer``) between two runs over the utterances both scored."""
    a, b = _per_utterance(baseline, metric), _per_utterance(other, metric)
    common = sorted(set(a) & set(b))
    if not common:
        return None
    # Entity totals come from the references, the same in both runs; word totals too, unless the refs differ.
    errors_a = np.array([a[k][0] for k in common])
    errors_b = np.array([b[k][0] for k in common])
    totals = np.array([a[k][1] for k in common])
    if totals.sum() == 0:
        return None
    delta, low, high, p_better = paired_bootstrap(errors_a, errors_b, totals, num_samples, seed)
    return Difference(metric, baseline.name, other.name, float(errors_a.sum() / totals.sum()),
                      float(errors_b.sum() / totals.sum()), delta, low, high, p_better, len(common))


def exposure_figures(run: Run, edges: Sequence[int], num_samples: int = 1000,
                     seed: int = 0) -> dict[str, tuple[float, float, float, int, int] | None]:
    """Per exposure bucket: (EER, 95% low, 95% high, misses, entities), bootstrapped over the run's utterances from
    the ``exposure`` of each entity result in hyps.jsonl; None for a bucket without entities or a run without
    exposure counts."""
    from jstip.entities import bucket_labels, bucket_of

    labels = bucket_labels(edges)
    entity_rows = [e for row in run.utterances for e in row.get("entities") or []]
    if not entity_rows or any("exposure" not in e for e in entity_rows):
        return {label: None for label in labels}
    misses = np.zeros((len(labels), len(run.utterances)))
    totals = np.zeros_like(misses)
    for j, row in enumerate(run.utterances):
        for e in row.get("entities") or []:
            i = labels.index(bucket_of(int(e["exposure"]), edges))
            totals[i, j] += 1
            misses[i, j] += not e["hit"]
    value, low, high, _ = bootstrap_ratios(misses, totals, num_samples, seed)
    return {label: None if totals[i].sum() == 0 else
            (float(value[i]), float(low[i]), float(high[i]), int(misses[i].sum()), int(totals[i].sum()))
            for i, label in enumerate(labels)}
