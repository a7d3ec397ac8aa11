"""``jstip demo``: the mini recipe end to end with defaults, then the headline figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

import jstip


def recipe_path() -> Path:
    """``recipes/mini/run.sh`` of the checkout jstip is installed from (editable install, as tools/install.sh does)."""
    path = Path(jstip.__file__).resolve().parents[1] / "recipes" / "mini" / "run.sh"
    if not path.is_file():
        raise click.ClickException(
            f"{path} not found: jstip demo runs the mini recipe of a jstip checkout; install jstip with "
            "`bash tools/install.sh` (an editable install of the repository)"
        )
    return path


@click.command(name="demo")
@click.option("--out", "out_dir", default="jstip-demo", show_default=True, type=click.Path(file_okay=False),
              help="Working folder; re-running resumes at the first unfinished stage.")
@click.option("--stage", default=0, show_default=True, help="First recipe stage to run.")
@click.option("--stop-stage", default=100, show_default=True, help="Last recipe stage to run.")
def cli(out_dir, stage, stop_stage):
    """Run the whole pipeline on the built-in mini corpus and print the headline WER/EER.

    Runs recipes/mini/run.sh: prepare the mini corpus (real TTS voices) -> check alignments -> interleaving
    statistics -> Whisper tiny.en zero-shot on test (the baseline) -> the adapter's CTC warm start on the frozen
    Whisper encoder -> train stage 1 (ASR: the adapter, through the frozen SmolLM2-135M) -> train stage 2 (ASR +
    interleaved + text; adapter + LoRA on the LLM) -> evaluate on test -> HTML report. Sizes and parts can be
    changed through the recipe's environment variables (NUM_UTTERANCES, STAGE1_STEPS, STAGE2_STEPS, WHISPER=base,
    PRIORS=scratch, ...).

    Example:

        jstip demo --out jstip-demo
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    jstip_exe = shutil.which("jstip", path=str(Path(sys.executable).parent)) or "jstip"
    env.setdefault("JSTIP", jstip_exe)
    env.setdefault("WANDB_MODE", "offline")
    started = time.time()
    cmd = ["bash", str(recipe_path()), "--out", str(out), "--stage", str(stage), "--stop-stage", str(stop_stage)]
    click.echo(f"[demo] {' '.join(cmd)}")
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        raise click.ClickException(f"the mini recipe stopped with exit code {rc}; re-run `jstip demo --out {out_dir}` "
                                   "to resume at the stage that failed")
    summarize(out, time.time() - started)


def summarize(out: Path, seconds: float) -> None:
    """Print the report path and the headline figures of every evaluated model."""
    exp = out / "exp"
    report = out / "report.html"
    rows = []
    for name, label in (("eval_whisper", "Whisper zero-shot (baseline)"), ("adapter_ctc/test", "CTC on the encoder"),
                        ("eval_untrained", "untrained (priors only)"), ("eval_stage1", "after stage 1"),
                        ("eval", "after stage 2")):
        f = exp / name / "metrics.json"
        if f.is_file():
            m = json.loads(f.read_text())
            rows.append((label, m.get("wer"), m.get("eer"), (m.get("eer_per_exposure") or {}).get("buckets")))
    click.echo(f"[demo] finished in {seconds / 60:.1f} min")
    from jstip.scoring.figures import pct

    fmt = lambda x: "n/a" if x is None else f"{pct(x, 1)}%"  # noqa: E731
    for label, wer, eer, _ in rows:
        click.echo(f"[demo] test WER {fmt(wer):>7s}  EER {fmt(eer):>7s}  {label}")
    for label, _, _, buckets in rows:
        if buckets:
            click.echo(f"[demo] EER by times heard in training ({' / '.join(buckets)}): "
                       f"{' / '.join(fmt(b.get('eer')) for b in buckets.values())}  {label}")
    final = exp / "eval" / "metrics.json"
    listening = (json.loads(final.read_text()).get("listening") or {}) if final.is_file() else {}
    if listening.get("rise") is not None:
        click.echo(f"[demo] does it listen: loss per token {listening['loss_own']:.2f} with its own audio, "
                   f"{listening['loss_other']:.2f} with another utterance's (+{listening['rise']:.2f} nats)")
    click.echo(f"[demo] metrics: {out / 'metrics.json'}")
    click.echo(f"[demo] report:  {report}")
