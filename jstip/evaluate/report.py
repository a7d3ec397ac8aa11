"""The comparison report of one or more scored runs: a self-contained HTML page and its Markdown twin.

A run folder (``RUN_DIR``) holds at least ``metrics.json`` and ``hyps.jsonl`` as written by
:func:`jstip.evaluate.scoring.write_scores` (``jstip score`` / ``jstip evaluate``). Training logs, when present, are
read from ``RUN_DIR/metrics.jsonl`` or any ``RUN_DIR/**/metrics.jsonl`` (one JSON object per line with ``step`` and
any of ``loss``, ``train_loss``, ``val_loss``, ``dev_loss``) or Lightning's ``RUN_DIR/**/metrics.csv`` (same column
names).

The report shows:

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

The HTML embeds its charts as base64 PNG and its style inline: it loads nothing from anywhere, runs no script, and
can be mailed or archived as one file. The Markdown twin references the same charts as PNG files in
``<report stem>_files/``.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jstip.evaluate.stats import bootstrap_ratios, paired_bootstrap

HEADLINE = ("wer", "cer", "ter", "eer", "u_wer", "b_wer")
LOSS_KEYS = ("loss", "train_loss", "val_loss", "dev_loss")


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
    """
    run_dir = Path(run_dir)
    metrics_path, hyps_path = run_dir / "metrics.json", run_dir / "hyps.jsonl"
    for path in (metrics_path, hyps_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: a run folder needs metrics.json and hyps.jsonl, "
                                    "as written by `jstip score` or `jstip evaluate`")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    with open(hyps_path, encoding="utf-8") as f:
        utterances = [json.loads(line) for line in f if line.strip()]
    return Run(name or run_dir.resolve().name, run_dir, metrics, utterances, _read_curves(run_dir))


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.resolve().parent.name}/{p.resolve().name}" if names.count(p.resolve().name) > 1 else n
            for p, n in zip(paths, names)]


# ---------------------------------------------------------------------------------------------------------------
# Paired bootstrap


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


# ---------------------------------------------------------------------------------------------------------------
# Charts


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _bar_chart(groups: list[str], series: dict[str, list[float | None]], ylabel: str, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.9 * len(groups) * max(1, len(series)) ** 0.5), 3.4))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for k, (name, values) in enumerate(series.items()):
        heights = [np.nan if v is None else 100 * v for v in values]
        bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, heights, width, label=name)
        for bar, h in zip(bars, heights):
            if not np.isnan(h):
                ax.annotate(f"{h:.1f}", (bar.get_x() + bar.get_width() / 2, h), ha="center", va="bottom",
                            fontsize=7)
    ax.set_xticks(x, groups, rotation=20 if len(groups) > 5 else 0, ha="right" if len(groups) > 5 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _figure_png(fig)


def _curve_chart(runs: Sequence[Run]) -> bytes | None:
    if not any(run.curves for run in runs):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for run in runs:
        for key, points in run.curves.items():
            steps, values = zip(*points)
            dashed = key in ("val_loss", "dev_loss")
            ax.plot(steps, values, label=f"{run.name}: {key}", linestyle="--" if dashed else "-",
                    marker="o" if len(points) < 30 else None, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Learning curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _figure_png(fig)


def exposure_chart(labels: list[str], series: dict[str, list[tuple[float, float, float] | None]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    x = np.arange(len(labels))
    for name, points in series.items():
        y = np.array([np.nan if p is None else 100 * p[0] for p in points])
        lo = np.array([np.nan if p is None else 100 * p[1] for p in points])
        hi = np.array([np.nan if p is None else 100 * p[2] for p in points])
        line = ax.plot(x, y, marker="o", label=name)[0]
        ax.fill_between(x, lo, hi, alpha=0.15, color=line.get_color())
    ax.set_xticks(x, labels)
    ax.set_xlabel("times the term was heard in the training audio")
    ax.set_ylabel("EER % (95% interval)")
    ax.set_title("Entity error rate by exposure")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _figure_png(fig)


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


def _exposure_table(runs: Sequence[Run], num_samples: int, seed: int):
    """(header, rows, labels, per-run figures) of EER by exposure, or None when no run has exposure counts."""
    from jstip.entities import bucket_labels

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
                         f"{_pct(f[0], 1)} [{_pct(f[1], 1)}, {_pct(f[2], 1)}] ({f[3]}/{f[4]})")
        rows.append(cells)
    return header, rows, labels, figures


# ---------------------------------------------------------------------------------------------------------------
# Tables


def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def _signed_pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:+.2f}"


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
            f"{_pct(run.metrics.get(name))} ({_counts_text(run.metrics.get(f'{name}_counts'))})" for run in runs])
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
        rows.append([d.metric.upper(), d.run_a, d.run_b, _pct(d.value_a), _pct(d.value_b), _signed_pct(d.delta),
                     f"[{_signed_pct(d.low)}, {_signed_pct(d.high)}]" + (" *" if d.significant else ""),
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
            cells.append("–" if not fig else f"{_pct(fig['eer'], 1)} ({fig['misses']}/{fig['entities']})")
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
            text = _signed_pct(value) if signed else _pct(value, 1)
            interval = (run.metrics.get(section) or {}).get(f"{key}_interval")
            if interval:
                text += f" [{_signed_pct(interval[0])}, {_signed_pct(interval[1])}]"
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


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_markdown_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]], raw: bool = False) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;color:#1b1f23;
padding:0 16px}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f4f6}
mark.miss{background:#ffc9c9;color:#8a0000;font-weight:600}mark.hit{background:#c9f2d0;color:#064d15}
.empty{color:#888;font-style:italic}.note{color:#555;font-size:0.88em}img{max-width:100%;border:1px solid #eee}
"""


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
    names = list(names) if names else _unique_names(paths)
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
    charts["figures"] = _bar_chart([m.upper().replace("_", "-") for m in shown],
                                   {run.name: [run.metrics.get(m) for m in shown] for run in runs},
                                   "%", "Headline figures (lower is better)")
    cat_header, cat_rows, categories = _category_table(runs)
    if categories:
        charts["eer_per_category"] = _bar_chart(
            categories,
            {run.name: [((run.metrics.get("eer_per_category") or {}).get(c) or {}).get("eer") for c in categories]
             for run in runs},
            "EER %", "Entity error rate per category")
    curves = _curve_chart(runs)
    if curves is not None:
        charts["learning_curves"] = curves

    exposure = _exposure_table(runs, num_samples, seed)
    if exposure is not None:
        charts["eer_by_exposure"] = exposure_chart(exposure[2], {name: [f[label] for label in exposure[2]]
                                                                  for name, f in exposure[3].items()})
    metrics_header, metrics_rows = _metrics_table(runs)
    diff_header, diff_rows = _difference_table(differences)

    # --- HTML
    def img(key: str, alt: str) -> str:
        data = base64.b64encode(charts[key]).decode("ascii")
        return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'

    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             "<p class='note'>Runs: " + ", ".join(f"<b>{html.escape(r.name)}</b> ({html.escape(str(r.path))})"
                                                  for r in runs) + ". Figures in percent; WER on normalised words, "
             "TER on raw tokens, EER = 1 − recall of annotated entities (exact surface form at the aligned place)."
             "</p>",
             "<h2 id='figures'>Figures</h2>", _html_table(metrics_header, metrics_rows), img("figures", "figures")]
    normalizers = sorted({str(run.metrics.get("normalizer")) for run in runs})
    warning = (f"Warning: the runs were scored with different normalisers ({', '.join(normalizers)}); their WERs are "
               "not comparable." if len(normalizers) > 1 else "")
    if warning:
        parts.insert(3, f"<p class='note'><b>{html.escape(warning)}</b></p>")
    if len(runs) > 1:
        parts.append("<h2 id='differences'>Differences with the baseline (paired bootstrap)</h2>")
        parts.append(f"<p class='note'>{num_samples} bootstrap samples over the utterances both runs scored; "
                     "interval = 95% percentile interval of B − A in percentage points (negative: B is better); "
                     "* = the interval excludes 0.</p>")
        parts.append(_html_table(diff_header, diff_rows) if diff_rows else "<p>No utterance in common.</p>")
    task_header, task_rows = _spoken_task_table(runs)
    if task_rows:
        parts += ["<h2 id='spoken-tasks'>Spoken tasks</h2>", _html_table(task_header, task_rows)]
    exposure_note = ("EER of the entities grouped by how often their term occurs in the training audio (the "
                     "manifests of metrics.json's eer_per_exposure.cuts); intervals: bootstrap over utterances.")
    if exposure is not None:
        parts += ["<h2 id='exposure'>Entity error rate by exposure</h2>", f"<p class='note'>{exposure_note}</p>",
                  _html_table(exposure[0], exposure[1]), img("eer_by_exposure", "EER by exposure")]
    if categories:
        parts += ["<h2 id='entities'>Entity error rate per category</h2>", _html_table(cat_header, cat_rows),
                  img("eer_per_category", "EER per category")]
        for run in runs:
            per_entity = [e for e in run.metrics.get("eer_per_entity") or [] if e["misses"]][:15]
            if per_entity:
                parts.append(f"<h3>Most missed entities: {html.escape(run.name)}</h3>")
                parts.append(_html_table(["entity", "category", "misses", "instances"],
                                         [[e["text"], e["category"], str(e["misses"]), str(e["entities"])]
                                          for e in per_entity]))
    if curves is not None:
        parts += ["<h2 id='curves'>Learning curves</h2>", img("learning_curves", "learning curves")]
    parts.append("<h2 id='worst'>Worst utterances</h2>")
    parts.append("<p class='note'>Entities in the reference: <mark class='miss'>missed</mark> / "
                 "<mark class='hit'>recognised</mark>; in the hypothesis, the aligned span of each entity.</p>")
    worst_md = []
    for run in runs:
        rows_html, rows_md = [], []
        for row in worst_utterances(run, worst):
            counts = row.get("wer_counts") or {}
            misses = [e for e in row.get("entities") or [] if not e["hit"]]
            stats = f"{counts.get('errors', 0)} / {counts.get('ref_words', 0)} words"
            miss_text = "; ".join(f"{e['text']} → {e['hyp_span'] or '∅'}" for e in misses)
            rows_html.append([html.escape(row["id"]), _highlight_ref(row), _highlight_hyp(row), html.escape(stats),
                              html.escape(miss_text)])
            rows_md.append([row["id"], row.get("ref", ""), row.get("hyp", ""), stats, miss_text])
        parts.append(f"<h3>{html.escape(run.name)}</h3>")
        parts.append(_html_table(["id", "reference", "hypothesis", "errors", "entity misses (ref → hyp)"],
                                 rows_html, raw=True) if rows_html else "<p>No errors.</p>")
        worst_md.append((run.name, rows_md))
    parts.append("</body></html>")
    html_text = "\n".join(parts)

    # --- Markdown twin
    md = [f"# {title}", "", "Runs: " + ", ".join(f"**{r.name}** (`{r.path}`)" for r in runs), "",
          "## Figures", "", _md_table(metrics_header, metrics_rows), "", "![figures](FILES/figures.png)", ""]
    if warning:
        md += [f"**{warning}**", ""]
    if len(runs) > 1:
        md += ["## Differences with the baseline (paired bootstrap)", "",
               f"{num_samples} samples; 95% interval of B − A in points; * = excludes 0.", "",
               _md_table(diff_header, diff_rows) if diff_rows else "No utterance in common.", ""]
    if task_rows:
        md += ["## Spoken tasks", "", _md_table(task_header, task_rows), ""]
    if exposure is not None:
        md += ["## Entity error rate by exposure", "", exposure_note, "", _md_table(exposure[0], exposure[1]), "",
               "![EER by exposure](FILES/eer_by_exposure.png)", ""]
    if categories:
        md += ["## Entity error rate per category", "", _md_table(cat_header, cat_rows), "",
               "![EER per category](FILES/eer_per_category.png)", ""]
    if curves is not None:
        md += ["## Learning curves", "", "![learning curves](FILES/learning_curves.png)", ""]
    md += ["## Worst utterances", ""]
    for name, rows_md in worst_md:
        md += [f"### {name}", "", _md_table(["id", "reference", "hypothesis", "errors", "entity misses (ref → hyp)"],
                                            rows_md) if rows_md else "No errors.", ""]
    return Report(runs, differences, charts, html_text, "\n".join(md))


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
        (files_dir / f"{key}.png").write_bytes(data)
    out_html.write_text(report.html, encoding="utf-8")
    md_path = out_html.with_suffix(".md")
    md_path.write_text(report.markdown.replace("FILES/", f"{files_dir.name}/"), encoding="utf-8")
    return out_html, md_path
