"""``jstip report``: compare scored runs in a self-contained HTML page and a Markdown twin."""

from __future__ import annotations

import click


@click.command(name="report", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_html", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write; the Markdown twin goes beside it (same stem, .md).")
@click.option("--title", default="jstip report", show_default=True, help="Title of the report.")
@click.option("--bootstrap", "num_samples", default=1000, show_default=True, type=click.IntRange(min=10),
              help="Paired bootstrap samples per comparison.")
@click.option("--worst", default=10, show_default=True, type=click.IntRange(min=0),
              help="Worst utterances shown per run.")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap.")
def cli(run_dirs: tuple[str, ...], out_html: str, title: str, num_samples: int, worst: int, seed: int) -> None:
    """Write a report comparing RUN_DIRs (the first one is the baseline).

    Each RUN_DIR holds metrics.json and hyps.jsonl (from `jstip score` or `jstip evaluate`) and optionally training
    logs (metrics.jsonl / metrics.csv with step and loss, train_loss or val_loss). The report has the figures side by
    side, paired bootstrap intervals of the WER and EER differences with the baseline, EER per entity category,
    learning curves and the worst utterances with entity misses highlighted. The HTML embeds everything (no network,
    no script); the Markdown's charts are PNG files in <stem>_files/.

    \b
    Example:
      jstip score --ref test.ref.jsonl --hyp asr_only.jsonl --out exp/asr_only
      jstip score --ref test.ref.jsonl --hyp interleaved.jsonl --out exp/interleaved
      jstip report exp/asr_only exp/interleaved --out exp/report.html
    """
    from jstip.evaluate.report import build_report, write_report

    try:
        report = build_report(run_dirs, title=title, num_samples=num_samples, worst=worst, seed=seed)
    except FileNotFoundError as err:
        raise click.ClickException(str(err)) from err
    html_path, md_path = write_report(report, out_html)
    for d in report.differences:
        click.echo(f"{d.metric.upper()} {d.run_b} - {d.run_a}: {100 * d.delta:+.2f} points "
                   f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}] ({d.utterances} utterances)")
    click.echo(f"wrote {html_path} and {md_path}")
