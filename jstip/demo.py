"""``jstip demo``: the whole pipeline on the built-in mini corpus, for a first look."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click


@click.command(name="demo")
@click.option("--out", "out_dir", default="jstip-demo", show_default=True, type=click.Path(file_okay=False),
              help="Working folder (re-running resumes).")
@click.option("--num-utterances", default=300, show_default=True, help="Size of the mini corpus.")
@click.option("-j", "--num-jobs", default=os.cpu_count() or 1, show_default=True, help="Parallel processes.")
def cli(out_dir, num_utterances, num_jobs):
    """Prepare a small mini corpus with real TTS voices and show what it made.

    Example:

        jstip demo --out jstip-demo
    """
    from lhotse import CutSet

    from jstip.corpora.mini import prepare_mini

    out = Path(out_dir)
    click.echo(f"[demo] preparing the mini corpus ({num_utterances} utterances) in {out / 'mini'}")
    prepare_mini(out / "mini", num_utterances=num_utterances, num_jobs=num_jobs)
    summary = json.loads((out / "mini" / "summary.json").read_text())
    for split, s in summary["splits"].items():
        click.echo(f"[demo] {split:5s}: {s['utterances']} utterances, {s['hours']:.2f} h, {len(s['voices'])} voices, "
                   f"{s['entities']} medical entities")
    cut = next(iter(CutSet.from_file(out / "mini" / "test" / "cuts.jsonl.gz")))
    sup = cut.supervisions[0]
    click.echo(f"[demo] example test cut {cut.id} ({sup.speaker}, {cut.duration:.2f} s): {sup.text}")
    for item in sup.alignment["word"]:
        click.echo(f"         {item.start:6.2f} {item.end:6.2f}  {item.symbol}")
    click.echo(f"[demo] manifests: {out / 'mini'}/{{train,dev,test}}/cuts.jsonl.gz")
