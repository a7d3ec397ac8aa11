"""A grid (:mod:`jstip.report.grid`) as a report: Markdown, its JSON twin and the EER-by-exposure chart.

The Markdown is a list of blocks rendered by :mod:`jstip.report.document`, like `jstip report`'s pages.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

from jstip.report.charts import exposure_chart
from jstip.paths import write_atomic
from jstip.report.document import Block, Chart, Heading, Paragraph, Table, to_markdown
from jstip.report.grid import Figure, Grid
from jstip.scoring.figures import interval, pct, signed_pct


def _cell(f: Figure | None) -> str:
    if f is None or math.isnan(f.value):
        return "–"
    return f"{pct(f.value, 1)} {interval(f.low, f.high, 1)}"


def _signed_cell(f: Figure) -> str:
    return f"{signed_pct(f.value, 1)} {interval(f.low, f.high, 1, signed=True)}"


def _seeds(f: Figure) -> str:
    return " / ".join(pct(v, 1) for v in f.per_seed.values())


def _label(figure: str) -> str:
    """``wer`` -> WER, ``eer/drug`` -> EER drug, ``eer@1-2`` -> EER heard 1-2."""
    if "@" in figure:
        name, _, bucket = figure.partition("@")
        return f"{name.upper()} heard {bucket}"
    name, _, category = figure.partition("/")
    return name.upper() + (f" {category}" if category else "")


def _eer_table(grid: Grid, columns: list[tuple[str, str]]) -> Table:
    """EER figures, one row per arm and one column per (label, figure key), entities per run in the header."""
    first = grid.arms[0]
    header = ["arm"] + [f"{label} ({int(first.figures[key].total / max(1, len(first.seeds)))})"
                        for label, key in columns]
    return Table(header, [[a.name] + [_cell(a.figures.get(key)) for _, key in columns] for a in grid.arms])


def grid_blocks(grid: Grid, title: str | None = None) -> list[Block]:
    """The grid's report: figures per arm, EER per category and per exposure bucket (with its chart, key
    ``eer_by_exposure``), the modality gap, differences with the baseline."""
    seeds = sorted({len(a.seeds) for a in grid.arms})
    blocks: list[Block] = [Heading(title, level=3)] if title else []
    blocks.append(Paragraph(
        f"{grid.utterances} test utterances ({grid.words_per_run} words, {grid.entities_per_run} entities) per run; "
        f"{'/'.join(map(str, seeds))} seed(s) per arm. Figures in %: the mean over seeds [95% bootstrap interval over "
        f"utterances, {grid.num_samples} samples]; lower is better."
        + (f" {grid.dropped_ids} utterance(s) not scored by every run left out." if grid.dropped_ids else "")))
    blocks.append(Table(["arm", "seeds", "WER", "EER", "WER per seed", "EER per seed"],
                        [[a.name, str(len(a.seeds)), _cell(a.figures.get("wer")), _cell(a.figures["eer"]),
                          _seeds(a.figures["wer"]) if "wer" in a.figures else "–", _seeds(a.figures["eer"])]
                         for a in grid.arms]))
    if grid.categories:
        blocks += [Paragraph("EER per entity category (%, mean over seeds [95% interval]; entities per run in "
                             "brackets):"),
                   _eer_table(grid, [(c, f"eer/{c}") for c in grid.categories])]
    if grid.buckets:
        blocks += [Paragraph("EER by exposure: entities grouped by how often their term occurs in the training audio "
                             f"(bucket edges {grid.exposure_edges}; %, mean over seeds [95% interval]; entities per "
                             "run in brackets):"),
                   _eer_table(grid, [(f"heard {b}", f"eer@{b}") for b in grid.buckets]),
                   Chart("eer_by_exposure", "EER by exposure")]
    if grid.modality_gap:
        blocks.append(Paragraph(
            f"Modality gap: accuracy on {grid.modality_gap[0].items} multiple-choice items asked in text and in speech "
            "(%, mean over seeds [95% bootstrap interval over items]); gap = speech − text; Δ gap = the arm's gap "
            f"minus `{grid.baseline}`'s, paired (higher = smaller gap):"))
        blocks.append(Table(["arm", "MCQ text", "MCQ speech", "gap", "Δ gap", "gap per seed"],
                            [[m.arm, _cell(m.text), _cell(m.speech), _signed_cell(m.gap),
                              "–" if m.delta is None else _signed_cell(m.delta), _seeds(m.gap)]
                             for m in grid.modality_gap]))
    if grid.differences:
        blocks.append(Paragraph(
            f"Each arm minus the baseline `{grid.baseline}` (points; paired bootstrap of the seed means over "
            "utterances; * = the interval excludes 0; P(better) = share of samples in which the arm is lower; seeds "
            "better = seeds in which the arm's run beat the baseline's run of the same seed):"))
        blocks.append(Table(["arm", "figure", "Δ", "95% interval", "P(better)", "seeds better"],
                            [[d.arm, _label(d.figure), signed_pct(d.delta, 1),
                              interval(d.low, d.high, 1, signed=True) + (" *" if d.significant else ""),
                              "–" if math.isnan(d.p_better) else f"{d.p_better:.2f}",
                              f"{d.seeds_better}/{d.seeds_compared}"] for d in grid.differences]))
    return blocks


def grid_markdown(grid: Grid, title: str | None = None, chart: str | None = None) -> str:
    """The grid as Markdown; ``chart``: the file name of its EER-by-exposure chart (None: no chart shown)."""
    blocks = [b for b in grid_blocks(grid, title) if chart is not None or not isinstance(b, Chart)]
    return to_markdown(blocks).replace("FILES/eer_by_exposure.png", chart or "").rstrip("\n") + "\n"


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


def grid_exposure_chart(grid: Grid) -> bytes | None:
    """PNG of EER by exposure bucket, one line per arm with its 95% band; None without exposure buckets."""
    if not grid.buckets:
        return None
    series = {}
    for a in grid.arms:
        points = []
        for b in grid.buckets:
            f = a.figures.get(f"eer@{b}")
            points.append(None if f is None or math.isnan(f.value) else (f.value, f.low, f.high))
        series[a.name] = points
    return exposure_chart(grid.buckets, series)


def write_grid(grid: Grid, out_md: str | Path, title: str | None = None) -> tuple[Path, Path]:
    """Write ``out_md`` (Markdown), its JSON twin (same stem, ``.json``) and, with exposure buckets, the chart
    ``<stem>_eer_by_exposure.png``, each atomically."""
    out_md = Path(out_md)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    png = grid_exposure_chart(grid)
    chart = None
    if png is not None:
        chart = write_atomic(out_md.with_name(f"{out_md.stem}_eer_by_exposure.png"), png).name
    write_atomic(out_md, grid_markdown(grid, title, chart))
    out_json = write_atomic(out_md.with_suffix(".json"), json.dumps(grid_dict(grid), indent=1))
    return out_md, out_json
