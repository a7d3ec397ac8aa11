"""``jstip report``: compare scored runs in a self-contained HTML page and a Markdown twin; ``jstip report grid``:
tabulate a grid of runs (arms x seeds) with bootstrap intervals."""

from __future__ import annotations

import click


class _ReportGroup(click.Group):
    """``jstip report RUN_DIR... --out FILE`` compares runs (the ``runs`` subcommand, the default);
    ``jstip report grid ROOT --out FILE`` tabulates a grid."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["runs", *args]
        return super().parse_args(ctx, args)


@click.group(name="report", cls=_ReportGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Compare scored runs (HTML + Markdown report), or tabulate a grid of arms x seeds.

    \b
    Example:
      jstip report exp/asr_only exp/interleaved --out exp/report.html     (same as `jstip report runs ...`)
      jstip report grid exp/eval --baseline asr_only --out exp/grid.md
    """


@cli.command(name="runs", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_html", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write; the Markdown twin goes beside it (same stem, .md).")
@click.option("--title", default="jstip report", show_default=True, help="Title of the report.")
@click.option("--bootstrap", "num_samples", default=1000, show_default=True, type=click.IntRange(min=10),
              help="Paired bootstrap samples per comparison.")
@click.option("--worst", default=10, show_default=True, type=click.IntRange(min=0),
              help="Worst utterances shown per run.")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--name", "names", multiple=True,
              help="Display name of each RUN_DIR, in order (repeatable; default: the folder names).")
def runs(run_dirs: tuple[str, ...], out_html: str, title: str, num_samples: int, worst: int, seed: int,
         names: tuple[str, ...]) -> None:
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
    from jstip.report.report import build_report, write_report
    from jstip.report.runs import RunFileError
    from jstip.scoring.figures import interval, signed_pct

    if names and len(names) != len(run_dirs):
        raise click.UsageError(f"{len(names)} --name for {len(run_dirs)} run folders: give one name per RUN_DIR")
    if len(set(names)) != len(names):
        raise click.UsageError(f"--name values must differ (tables and charts are keyed by them): {list(names)}")
    try:
        report = build_report(run_dirs, title=title, num_samples=num_samples, worst=worst, seed=seed,
                              names=list(names) or None)
    except (FileNotFoundError, RunFileError) as err:
        raise click.ClickException(str(err)) from err
    html_path, md_path = write_report(report, out_html)
    for d in report.differences:
        click.echo(f"{d.metric.upper()} {d.run_b} - {d.run_a}: {signed_pct(d.delta)} points "
                   f"{interval(d.low, d.high, signed=True)} ({d.utterances} utterances)")
    click.echo(f"wrote {html_path} and {md_path}")


@cli.command(name="grid", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_md", required=True, type=click.Path(dir_okay=False),
              help="The Markdown file to write; a JSON twin with every figure goes beside it (same stem, .json).")
@click.option("--baseline", default=None, help="The arm the others are compared with (default: the first --arm, "
                                               "else the first arm folder in name order).")
@click.option("--arm", "arms", multiple=True, help="Arms to show, in this order (repeatable; default: all).")
@click.option("--only-seeds", default=None,
              help="Seeds to include, comma- or space-separated (default: every seed<k> folder of every arm).")
@click.option("--title", default=None, help="A heading for the table.")
@click.option("--bootstrap", "num_samples", default=1000, show_default=True, type=click.IntRange(min=10),
              help="Bootstrap samples over utterances.")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap.")
def grid(root: str, out_md: str, baseline: str | None, arms: tuple[str, ...], only_seeds: str | None,
         title: str | None, num_samples: int, seed: int) -> None:
    """Tabulate a grid of scored runs: ROOT/<arm>/seed<k>/ (metrics.json + hyps.jsonl from `jstip evaluate`).

    Per arm: WER, EER, EER per entity category and EER per exposure bucket (runs scored with --exposure-cuts) as the
    mean over seeds with a 95% bootstrap interval over test utterances, and the value of every seed; per arm against
    the baseline: the paired bootstrap interval of the difference and the seeds in which the arm did better; the
    modality gap (MCQ with text vs speech input) of runs evaluated with it. Prints the Markdown table; writes the JSON
    twin and, with exposure buckets, OUT_STEM_eer_by_exposure.png (one line per arm).

    \b
    Example:
      jstip report grid exp/medical/eval --baseline asr_only --arm asr_only --arm text_il --out exp/medical/grid.md
    """
    from jstip.report.grid import build_grid, find_grid, select_seeds
    from jstip.report.grid_report import write_grid

    try:
        found = find_grid(root)
        if arms:  # other arm folders under ROOT (older runs) are neither shown nor checked
            found = {a: r for a, r in found.items() if a in arms or a == baseline}
        if only_seeds:
            found = select_seeds(found, only_seeds.replace(",", " ").split())
        table = build_grid(found, baseline=baseline, arms=arms, num_samples=num_samples, seed=seed)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    md_path, json_path = write_grid(table, out_md, title)
    click.echo(md_path.read_text(encoding="utf-8"))
    click.echo(f"wrote {md_path} and {json_path}")
