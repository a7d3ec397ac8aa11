"""``jstip prepare``: lhotse manifests for the built-in mini corpus, LibriSpeech, or an existing manifest/Kaldi dir."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from jstip.sharding import shard_option


@click.group(name="prepare")
def cli():
    """Prepare lhotse manifests of a corpus.

    Examples:

        jstip prepare mini --out data/mini

        jstip prepare librispeech --corpus-dir /data/LibriSpeech --out data/librispeech

        jstip prepare import --lhotse-dir my_manifests/ --out data/mine
    """


@cli.command(name="mini")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--num-utterances", default=2500, show_default=True, help="Utterances over train/dev/test (80/10/10).")
@click.option("--seed", default=0, show_default=True, help="Seed of sentences, term exposure tiers and voices.")
@click.option("-j", "--num-jobs", default=os.cpu_count() or 1, show_default=True, help="Synthesis processes.")
@shard_option
def mini(out_dir, num_utterances, seed, num_jobs, shard):
    """The built-in mini corpus: general and medical sentences spoken by espeak-ng and festival voices.

    Test voices and the test set's medical terms never occur in training; the held-out terms do occur in the
    text-only domain corpus OUT/text/domain.txt. Restartable.

    Example:

        jstip prepare mini --out data/mini --num-utterances 40

        jstip prepare mini --out mini.s0 --shard 0/2   # and 1/2 into mini.s1 (terms.json: after combining)
        jstip shards combine data/mini mini.s0 mini.s1
    """
    from jstip.corpora.mini import prepare_mini

    prepare_mini(out_dir, num_utterances=num_utterances, seed=seed, num_jobs=num_jobs, shard=shard)
    if shard is not None:
        click.echo(f"shard {shard[0]}/{shard[1]} -> {out_dir}; terms.json and summary.json are written by "
                   "`jstip shards combine`")
        return
    summary = json.loads((Path(out_dir) / "summary.json").read_text())
    for split, s in summary["splits"].items():
        click.echo(f"{split:5s}: {s['utterances']}/{s['planned']} utterances, {s['hours']:.2f} h, "
                   f"{len(s['voices'])} voices, {s['entities']} entities -> {Path(out_dir) / split / 'cuts.jsonl.gz'}")
    click.echo(f"domain text: {Path(out_dir) / 'text' / 'domain.txt'}")


@cli.command(name="librispeech")
@click.option("--corpus-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Local LibriSpeech copy (the folder holding LibriSpeech/ or its parts).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--part", "parts", multiple=True, help="Parts to prepare (default: every part present).")
@click.option("-j", "--num-jobs", default=1, show_default=True, help="Parallel jobs.")
def librispeech(corpus_dir, out_dir, parts, num_jobs):
    """LibriSpeech from a local copy via lhotse's recipe (text kept as is).

    Example:

        jstip prepare librispeech --corpus-dir /data/LibriSpeech --out data/librispeech --part dev-clean
    """
    from jstip.corpora.librispeech import prepare_librispeech

    try:
        out = prepare_librispeech(corpus_dir, out_dir, parts=list(parts) or "auto", num_jobs=num_jobs)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from e
    for part, cuts in out.items():
        click.echo(f"{part}: {len(cuts)} cuts -> {Path(out_dir) / part / 'cuts.jsonl.gz'}")


@cli.command(name="import")
@click.option("--lhotse-dir", type=click.Path(exists=True, file_okay=False), help="Folder of lhotse manifests.")
@click.option("--kaldi-dir", type=click.Path(exists=True, file_okay=False), help="Kaldi data folder (wav.scp, text...).")
@click.option("--sampling-rate", default=16000, show_default=True, help="Sampling rate of a Kaldi dir's audio.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--check-audio/--no-check-audio", default=True, show_default=True,
              help="Read every cut's audio once and reject what cannot be used (unreadable, empty, NaN/inf samples, "
                   "a rate other than declared); --no-check-audio checks manifests, sources and transcripts only.")
@shard_option
def import_(lhotse_dir, kaldi_dir, sampling_rate, out_dir, check_audio, shard):
    """Import an existing lhotse manifest folder or Kaldi data folder as OUT/cuts.jsonl.gz.

    Every utterance is kept or written to OUT/rejected.jsonl with the reason: unreadable manifest lines (FILE:LINE),
    supervisions without a recording, wav.scp entries that are missing, not audio or piped commands, duplicate ids,
    transcripts without words, entity offsets that do not slice the entity, and (--check-audio) bad audio.

    Example:

        jstip prepare import --kaldi-dir kaldi/data/train --out data/train

        jstip prepare import --kaldi-dir kaldi/data/train --out data/train.shard0 --shard 0/4   # ... 3/4, then
        jstip shards combine data/train data/train.shard0 data/train.shard1 data/train.shard2 data/train.shard3
    """
    from jstip.corpora.importer import import_kaldi_dir, import_lhotse_dir

    if bool(lhotse_dir) == bool(kaldi_dir):
        raise click.UsageError("give exactly one of --lhotse-dir or --kaldi-dir")
    cuts = (import_lhotse_dir(lhotse_dir, out_dir, check_audio=check_audio, shard=shard) if lhotse_dir
            else import_kaldi_dir(kaldi_dir, out_dir, sampling_rate, check_audio=check_audio, shard=shard))
    click.echo(f"{len(cuts)} cuts -> {Path(out_dir) / 'cuts.jsonl.gz'} (rejected: {Path(out_dir) / 'rejected.jsonl'})")
