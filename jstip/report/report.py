"""The comparison report of one or more scored runs: a self-contained HTML page and its Markdown twin.

The runs are read by :mod:`jstip.report.runs`. The report shows:

- the headline figures side by side (percent), with counts;
- paired bootstrap confidence intervals of the WER and EER differences between each run and the first one, over the
  utterances both runs scored (the same resampled utterances for both runs of a pair; percentile intervals);
- EER per entity category as a chart and a table;
- learning curves from the training logs;
- the spoken-task figures (modality gap, instruction following, spoken QA) when the runs' metrics.json hold them
  (sections ``modality_gap``, ``instruction_following``, ``spoken_qa``: the results of
  :func:`jstip.evaluate.modality_gap.modality_gap`, :func:`jstip.evaluate.instructions.score_responses` and
  :func:`jstip.evaluate.spoken_qa.score_qa` without their per-item lists);
- the worst utterances of each run, with entity misses highlighted in the reference and in the hypothesis.

The page and its Markdown twin are one list of blocks rendered twice (:mod:`jstip.report.document`). The HTML embeds
its charts as base64 PNG and its style inline: it loads nothing from anywhere, runs no script, and can be mailed or
archived as one file. The Markdown references the same charts as PNG files in ``<report stem>_files/``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jstip.entities import bucket_labels
from jstip.paths import write_atomic
from jstip.report.charts import bar_chart, curve_chart, exposure_chart
from jstip.report.document import (
    Block,
    Chart,
    Heading,
    Paragraph,
    Rich,
    Table,
    to_html,
    to_markdown,
)
from jstip.scoring.figures import pct, signed_pct
from jstip.report.runs import HEADLINE, Difference, Run, compare_runs, exposure_figures, load_run, unique_names


def _exposure_table(runs: Sequence[Run], num_samples: int, seed: int):
    """(header, rows, labels, per-run figures) of EER by exposure, or None when no run has exposure counts."""
    with_exposure = [run for run in runs if run.metrics.get("eer_per_exposure")]
    if not with_exposure:
        return None
    edges = with_exposure[0].metrics["eer_per_exposure"]["edges"]
    labels = bucket_labels(edges)
    figures = {run.name: exposure_figures(run, edges, num_samples, seed) for run in runs}
    header = ["heard in training"] + [f"{run.name}: EER % [95% interval] (misses/entities)" for run in runs]
    rows = []
    for label in labels:
        cells = [label]
        for run in runs:
            f = figures[run.name][label]
            cells.append("–" if f is None else
                         f"{pct(f[0], 1)} [{pct(f[1], 1)}, {pct(f[2], 1)}] ({f[3]}/{f[4]})")
        rows.append(cells)
    return header, rows, labels, figures


def _counts_text(counts: dict | None) -> str:
    if not counts:
        return ""
    if "ref_words" in counts:
        return f"S {counts['subs']} I {counts['ins']} D {counts['dels']} / {counts['ref_words']}"
    return f"{counts.get('misses', 0)} / {counts.get('entities', 0)} missed"


def _metrics_table(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    header = ["figure (% unless noted)"] + [run.name for run in runs]
    rows = []
    for name in HEADLINE:
        if all(run.metrics.get(name) is None for run in runs):
            continue
        rows.append([name.upper().replace("_", "-")] + [
            f"{pct(run.metrics.get(name))} ({_counts_text(run.metrics.get(f'{name}_counts'))})" for run in runs])
    rows += _listening_rows(runs)
    rows.append(["utterances"] + [str(run.metrics.get("num_utterances", len(run.utterances))) for run in runs])
    rows.append(["missing / extra ids"] + [
        f"{len(run.metrics.get('missing_ids', []))} / {len(run.metrics.get('extra_ids', []))}" for run in runs])
    return header, rows


LISTENING_ROWS = (("loss_own", "loss per token, own audio (nats)"),
                  ("loss_other", "loss per token, another utterance's audio (nats)"),
                  ("rise", "does it listen: rise with another's audio (nats)"))


def _listening_rows(runs: Sequence[Run]) -> list[list[str]]:
    """The "does it listen" figure of `jstip evaluate` (jstip.evaluate.listening), for the runs that have it."""
    figures = [run.metrics.get("listening") or {} for run in runs]
    if all(f.get("rise") is None for f in figures):
        return []
    return [[label] + ["–" if f.get(key) is None else f"{f[key]:+.2f}" if key == "rise" else f"{f[key]:.2f}"
                       for f in figures] for key, label in LISTENING_ROWS]


def _difference_table(differences: Sequence[Difference]) -> tuple[list[str], list[list[str]]]:
    header = ["figure", "baseline (A)", "run (B)", "A %", "B %", "B − A (points)", "95% interval", "P(B better)",
              "utterances"]
    rows = []
    for d in differences:
        rows.append([d.metric.upper(), d.run_a, d.run_b, pct(d.value_a), pct(d.value_b), signed_pct(d.delta),
                     f"[{signed_pct(d.low)}, {signed_pct(d.high)}]" + (" *" if d.significant else ""),
                     "–" if math.isnan(d.p_b_better) else f"{d.p_b_better:.3f}", str(d.utterances)])
    return header, rows


def _category_table(runs: Sequence[Run]) -> tuple[list[str], list[list[str]], list[str]]:
    categories = sorted({c for run in runs for c in (run.metrics.get("eer_per_category") or {})})
    header = ["category"] + [f"{run.name} EER % (misses/entities)" for run in runs]
    rows = []
    for cat in categories:
        cells = [cat]
        for run in runs:
            fig = (run.metrics.get("eer_per_category") or {}).get(cat)
            cells.append("–" if not fig else f"{pct(fig['eer'], 1)} ({fig['misses']}/{fig['entities']})")
        rows.append(cells)
    return header, rows, categories


SPOKEN_TASK_ROWS = (
    # (metrics.json section, key, label, is a signed difference)
    ("modality_gap", "accuracy_text", "MCQ accuracy, text input", False),
    ("modality_gap", "accuracy_speech", "MCQ accuracy, speech input", False),
    ("modality_gap", "gap", "modality gap (speech − text)", True),
    ("instruction_following", "prompt_level", "instructions: prompt level (mean of strict, loose)", False),
    ("instruction_following", "instruction_level", "instructions: instruction level (mean of strict, loose)", False),
    ("instruction_following", "prompt_strict", "instructions: prompt level, strict", False),
    ("instruction_following", "ecr", "instructions: superseded followed (ECR, lower is better)", False),
    ("spoken_qa", "exact_match", "spoken QA: exact match", False),
    ("spoken_qa", "contains", "spoken QA: answer contained", False),
)
"""The spoken-task figures a run's metrics.json may hold (written by `jstip evaluate`), as the report shows them."""


def _spoken_task_table(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    header = ["spoken task (%)"] + [run.name for run in runs]
    rows = []
    for section, key, label, signed in SPOKEN_TASK_ROWS:
        values = [(run.metrics.get(section) or {}).get(key) for run in runs]
        if all(v is None for v in values):
            continue
        cells = []
        for run, value in zip(runs, values):
            if value is None:
                cells.append("–")
                continue
            text = signed_pct(value) if signed else pct(value, 1)
            interval = (run.metrics.get(section) or {}).get(f"{key}_interval")
            if interval:
                text += f" [{signed_pct(interval[0])}, {signed_pct(interval[1])}]"
            cells.append(text)
        rows.append([label] + cells)
    return header, rows


def worst_utterances(run: Run, count: int = 10) -> list[dict]:
    """The utterances with the most entity misses, then the most word errors (ties: higher WER first)."""

    def key(row: dict):
        misses = sum(not e["hit"] for e in row.get("entities") or [])
        counts = row.get("wer_counts") or {"errors": 0, "ref_words": 0}
        rate = counts["errors"] / counts["ref_words"] if counts["ref_words"] else counts["errors"]
        return (-misses, -counts["errors"], -rate, row["id"])

    candidates = [r for r in run.utterances
                  if (r.get("wer_counts") or {}).get("errors") or any(not e["hit"] for e in r.get("entities") or [])]
    return sorted(candidates, key=key)[:count]


def _highlight_ref(row: dict) -> str:
    text, pieces, pos = row.get("ref", ""), [], 0
    for e in sorted(row.get("entities") or [], key=lambda e: e["start"]):
        if e["start"] < pos:
            continue
        pieces.append(html.escape(text[pos : e["start"]]))
        cls = "hit" if e["hit"] else "miss"
        pieces.append(f'<mark class="{cls}" title="{html.escape(e["category"])}">'
                      f'{html.escape(text[e["start"] : e["end"]])}</mark>')
        pos = e["end"]
    pieces.append(html.escape(text[pos:]))
    return "".join(pieces)


def _highlight_hyp(row: dict) -> str:
    tokens = row.get("hyp", "").split()
    marks: dict[int, str] = {}
    for e in row.get("entities") or []:
        for k in e.get("hyp_tokens") or []:
            if 0 <= k < len(tokens):
                marks[k] = "hit" if e["hit"] and marks.get(k) != "miss" else "miss"
    out = []
    for k, token in enumerate(tokens):
        out.append(f'<mark class="{marks[k]}">{html.escape(token)}</mark>' if k in marks else html.escape(token))
    return " ".join(out) if out else '<span class="empty">(empty)</span>'


WORST_HEADER = ["id", "reference", "hypothesis", "errors", "entity misses (ref → hyp)"]


def _worst_rows(run: Run, count: int) -> list[list]:
    rows = []
    for row in worst_utterances(run, count):
        counts = row.get("wer_counts") or {}
        misses = [e for e in row.get("entities") or [] if not e["hit"]]
        stats = f"{counts.get('errors', 0)} / {counts.get('ref_words', 0)} words"
        miss_text = "; ".join(f"{e['text']} → {e['hyp_span'] or '∅'}" for e in misses)
        rows.append([row["id"], Rich(_highlight_ref(row), row.get("ref", "")),
                     Rich(_highlight_hyp(row), row.get("hyp", "")), stats, miss_text])
    return rows


@dataclass
class Report:
    """What :func:`build_report` computed, ready to render."""

    runs: list[Run]
    differences: list[Difference]
    charts: dict[str, bytes]
    html: str
    markdown: str


def build_report(
    run_dirs: Sequence[str | Path], title: str = "jstip report", num_samples: int = 1000, worst: int = 10,
    seed: int = 0, names: Sequence[str] | None = None,
) -> Report:
    """Load the runs and build the HTML and Markdown of the report (see the module docstring).

    Args:
        run_dirs: run folders; the first is the baseline that the others are compared with.
        num_samples: bootstrap samples per comparison.
        worst: how many worst utterances to show per run.
        names: display names of the runs (default: their folder names).
    """
    paths = [Path(p) for p in run_dirs]
    if names and len(names) != len(paths):
        raise ValueError(f"{len(names)} names for {len(paths)} runs: give one name per run")
    names = list(names) if names else unique_names(paths)
    if len(set(names)) != len(names):
        raise ValueError(f"run names must differ (tables and charts are keyed by them): {names}")
    runs = [load_run(p, n) for p, n in zip(paths, names)]

    differences: list[Difference] = []
    for other in runs[1:]:
        for metric in ("wer", "eer"):
            diff = compare_runs(runs[0], other, metric, num_samples=num_samples, seed=seed)
            if diff is not None:
                differences.append(diff)

    charts: dict[str, bytes] = {}
    shown = [m for m in HEADLINE if any(run.metrics.get(m) is not None for run in runs)]
    charts["figures"] = bar_chart([m.upper().replace("_", "-") for m in shown],
                                  {run.name: [run.metrics.get(m) for m in shown] for run in runs},
                                  "%", "Headline figures (lower is better)")
    cat_header, cat_rows, categories = _category_table(runs)
    if categories:
        charts["eer_per_category"] = bar_chart(
            categories,
            {run.name: [((run.metrics.get("eer_per_category") or {}).get(c) or {}).get("eer") for c in categories]
             for run in runs},
            "EER %", "Entity error rate per category")
    curves = curve_chart(runs)
    if curves is not None:
        charts["learning_curves"] = curves
    exposure = _exposure_table(runs, num_samples, seed)
    if exposure is not None:
        charts["eer_by_exposure"] = exposure_chart(exposure[2], {name: [f[label] for label in exposure[2]]
                                                                 for name, f in exposure[3].items()})

    runs_text = Rich("Runs: " + ", ".join(f"<b>{html.escape(r.name)}</b> ({html.escape(str(r.path))})" for r in runs),
                     "Runs: " + ", ".join(f"**{r.name}** (`{r.path}`)" for r in runs))
    blocks: list[Block] = [Paragraph(runs_text, note=True), Paragraph(
        "Figures in percent; WER on normalised words, TER on raw tokens, EER = 1 − recall of annotated entities "
        "(exact surface form at the aligned place).", note=True)]
    normalizers = sorted({str(run.metrics.get("normalizer")) for run in runs})
    if len(normalizers) > 1:
        blocks.append(Paragraph(f"Warning: the runs were scored with different normalisers ({', '.join(normalizers)});"
                                " their WERs are not comparable.", note=True, strong=True))
    blocks += [Heading("Figures", anchor="figures"), Table(*_metrics_table(runs)), Chart("figures", "figures")]
    if len(runs) > 1:
        diff_header, diff_rows = _difference_table(differences)
        blocks += [Heading("Differences with the baseline (paired bootstrap)", anchor="differences"),
                   Paragraph(f"{num_samples} bootstrap samples over the utterances both runs scored; interval = 95% "
                             "percentile interval of B − A in percentage points (negative: B is better); * = the "
                             "interval excludes 0.", note=True),
                   Table(diff_header, diff_rows) if diff_rows else Paragraph("No utterance in common.")]
    task_header, task_rows = _spoken_task_table(runs)
    if task_rows:
        blocks += [Heading("Spoken tasks", anchor="spoken-tasks"), Table(task_header, task_rows)]
    if exposure is not None:
        blocks += [Heading("Entity error rate by exposure", anchor="exposure"),
                   Paragraph("EER of the entities grouped by how often their term occurs in the training audio (the "
                             "manifests of metrics.json's eer_per_exposure.cuts); intervals: bootstrap over "
                             "utterances.", note=True),
                   Table(exposure[0], exposure[1]), Chart("eer_by_exposure", "EER by exposure")]
    if categories:
        blocks += [Heading("Entity error rate per category", anchor="entities"), Table(cat_header, cat_rows),
                   Chart("eer_per_category", "EER per category")]
        for run in runs:
            per_entity = [e for e in run.metrics.get("eer_per_entity") or [] if e["misses"]][:15]
            if per_entity:
                blocks += [Heading(f"Most missed entities: {run.name}", level=3),
                           Table(["entity", "category", "misses", "instances"],
                                 [[e["text"], e["category"], str(e["misses"]), str(e["entities"])]
                                  for e in per_entity])]
    if curves is not None:
        blocks += [Heading("Learning curves", anchor="curves"), Chart("learning_curves", "learning curves")]
    blocks += [Heading("Worst utterances", anchor="worst"), Paragraph(Rich(
        "Entities in the reference: <mark class='miss'>missed</mark> / <mark class='hit'>recognised</mark>; in the "
        "hypothesis, the aligned span of each entity.",
        "Entities in the reference and their aligned span in the hypothesis."), note=True)]
    for run in runs:
        rows = _worst_rows(run, worst)
        blocks += [Heading(run.name, level=3), Table(WORST_HEADER, rows) if rows else Paragraph("No errors.")]
    return Report(runs, differences, charts, to_html(blocks, title, charts), to_markdown(blocks, title))


def write_report(report: Report, out_html: str | Path) -> tuple[Path, Path]:
    """Write ``out_html``, ``<stem>.md`` beside it and the charts for the Markdown in ``<stem>_files/``.

    Returns:
        The paths of the HTML and the Markdown files.
    """
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    files_dir = out_html.parent / f"{out_html.stem}_files"
    files_dir.mkdir(exist_ok=True)
    for key, data in report.charts.items():
        write_atomic(files_dir / f"{key}.png", data)
    write_atomic(out_html, report.html)
    md_path = write_atomic(out_html.with_suffix(".md"), report.markdown.replace("FILES/", f"{files_dir.name}/"))
    return out_html, md_path
