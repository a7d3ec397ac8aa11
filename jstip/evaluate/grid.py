"""A grid of scored runs — arms (data settings) × seeds — summarised in one table with bootstrap intervals.

Layout read by :func:`find_grid`::

    ROOT/<arm>/seed<k>/metrics.json + hyps.jsonl      (as written by `jstip evaluate` or `jstip score`)
    ROOT/<arm>/metrics.json + hyps.jsonl              (an arm with a single run)

For every arm the table gives WER, EER and EER per entity category as the **mean over its seeds** (pooled: the errors
of all seeds over the words or entities of all seeds), with a 95% percentile interval from a bootstrap over the test
utterances (every sample draws the utterances once and uses that draw for every arm, seed and figure), and the value
of each seed. Each arm is compared with the baseline arm by a paired bootstrap of the difference of the seed means,
with the share of samples in which the arm is better, and the number of seeds in which it was better than the
baseline run of the same seed.

What the interval covers: the sampling of test utterances. What it does not: training noise beyond the seeds run; the
per-seed values show that spread. Runs of a grid must score the same utterances; the table uses the utterances that
every run scored and says how many.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from jstip.evaluate.report import load_run
from jstip.evaluate.stats import bootstrap_ratios

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
    """``wer``, ``eer`` and ``eer/<category>``."""


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


def _counts(utterances: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per utterance id: figure -> (errors, total) for wer, eer and eer/<category>."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for row in utterances:
        figs: dict[str, tuple[float, float]] = {}
        counts = row.get("wer_counts")
        if counts is not None:
            figs["wer"] = (float(counts["errors"]), float(counts["ref_words"]))
        entities = row.get("entities") or []
        figs["eer"] = (float(sum(not e["hit"] for e in entities)), float(len(entities)))
        for e in entities:
            key = f"eer/{e.get('category') or 'none'}"
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

    counts = {a: {s: _counts(load_run(Path(p)).utterances) for s, p in runs[a].items()} for a in names}
    all_ids = [set(c) for a in names for c in counts[a].values()]
    common = sorted(set.intersection(*all_ids))
    if not common:
        raise ValueError("the runs of the grid have no scored utterance in common (were they scored on the same "
                         "test set?)")
    dropped = len(set.union(*all_ids)) - len(common)
    categories = sorted({k.split("/", 1)[1] for a in names for c in counts[a].values() for u in common
                         for k in c[u] if k.startswith("eer/")})
    figures = ["wer", "eer"] + [f"eer/{c}" for c in categories]
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
                {a: {s: str(runs[a][s]) for s in counts[a]} for a in names}, dropped)


def _pct(v: float, digits: int = 1) -> str:
    return "–" if v is None or math.isnan(v) else f"{100 * v:.{digits}f}"


def _cell(f: Figure | None) -> str:
    if f is None or math.isnan(f.value):
        return "–"
    return f"{_pct(f.value)} [{_pct(f.low)}, {_pct(f.high)}]"


def _signed(v: float) -> str:
    return "–" if math.isnan(v) else f"{100 * v:+.1f}"


def _label(figure: str) -> str:
    """``wer`` -> WER, ``eer/drug`` -> EER drug."""
    name, _, category = figure.partition("/")
    return name.upper() + (f" {category}" if category else "")


def _seeds(f: Figure) -> str:
    return " / ".join(_pct(v) for v in f.per_seed.values())


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def grid_markdown(grid: Grid, title: str | None = None) -> str:
    """The grid as Markdown: figures per arm, EER per category, differences with the baseline."""
    seeds = sorted({len(a.seeds) for a in grid.arms})
    parts = []
    if title:
        parts.append(f"### {title}\n")
    parts.append(f"{grid.utterances} test utterances ({grid.words_per_run} words, {grid.entities_per_run} entities) "
                 f"per run; {'/'.join(map(str, seeds))} seed(s) per arm. Figures in %: the mean over seeds "
                 f"[95% bootstrap interval over utterances, {grid.num_samples} samples]; lower is better."
                 + (f" {grid.dropped_ids} utterance(s) not scored by every run left out." if grid.dropped_ids else ""))
    parts.append("")
    header = ["arm", "seeds", "WER", "EER", "WER per seed", "EER per seed"]
    rows = [[a.name, str(len(a.seeds)), _cell(a.figures.get("wer")), _cell(a.figures["eer"]),
             _seeds(a.figures["wer"]) if "wer" in a.figures else "–", _seeds(a.figures["eer"])] for a in grid.arms]
    parts.append(_table(header, rows))
    if grid.categories:
        parts.append("")
        parts.append("EER per entity category (%, mean over seeds [95% interval]; entities per run in brackets):")
        parts.append("")
        first = grid.arms[0]
        header = ["arm"] + [f"{c} ({int(first.figures[f'eer/{c}'].total / max(1, len(first.seeds)))})"
                            for c in grid.categories]
        rows = [[a.name] + [_cell(a.figures.get(f"eer/{c}")) for c in grid.categories] for a in grid.arms]
        parts.append(_table(header, rows))
    if grid.differences:
        parts.append("")
        parts.append(f"Each arm minus the baseline `{grid.baseline}` (points; paired bootstrap of the seed means over "
                     "utterances; * = the interval excludes 0; P(better) = share of samples in which the arm is "
                     "lower; seeds better = seeds in which the arm's run beat the baseline's run of the same seed):")
        parts.append("")
        header = ["arm", "figure", "Δ", "95% interval", "P(better)", "seeds better"]
        rows = []
        for d in grid.differences:
            rows.append([d.arm, _label(d.figure), _signed(d.delta),
                         f"[{_signed(d.low)}, {_signed(d.high)}]" + (" *" if d.significant else ""),
                         "–" if math.isnan(d.p_better) else f"{d.p_better:.2f}",
                         f"{d.seeds_better}/{d.seeds_compared}"])
        parts.append(_table(header, rows))
    return "\n".join(parts) + "\n"


def grid_dict(grid: Grid) -> dict:
    """The grid as plain JSON-able data (NaN as null)."""

    def clean(x):
        if isinstance(x, float) and math.isnan(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return clean(asdict(grid))


def write_grid(grid: Grid, out_md: str | Path, title: str | None = None) -> tuple[Path, Path]:
    """Write ``out_md`` (Markdown) and its JSON twin (same stem, ``.json``), each atomically."""
    out_md = Path(out_md)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_json = out_md.with_suffix(".json")
    for path, text in ((out_md, grid_markdown(grid, title)), (out_json, json.dumps(grid_dict(grid), indent=1))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return out_md, out_json
