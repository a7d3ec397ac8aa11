"""The charts of the reports, as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def bar_chart(groups: list[str], series: dict[str, list[float | None]], ylabel: str, title: str) -> bytes:
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
    return figure_png(fig)


def curve_chart(runs: Sequence) -> bytes | None:
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
    return figure_png(fig)


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
    return figure_png(fig)
