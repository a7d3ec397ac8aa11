"""``jstip shards combine``: the outputs of a stage run in shards (``--shard i/N``) joined into one
(:mod:`jstip.shards`)."""

from __future__ import annotations

import click


@click.group(name="shards")
def cli() -> None:
    """Shards of a per-item stage (--shard i/N): combine their outputs, checking that nothing is lost or doubled."""


@cli.command(name="combine")
@click.argument("out", type=click.Path())
@click.argument("shard_outputs", nargs=-1, required=True, type=click.Path(exists=True))
def combine_cmd(out: str, shard_outputs: tuple[str, ...]) -> None:
    """Combine the outputs of shards 0..N-1 into OUT: manifests, example files and rejected.jsonl concatenated; every
    item given to a shard is kept or rejected exactly once, or the command stops naming it.

    \b
    Example:
      for i in 0 1 2 3; do jstip synthesize --in notes.txt --out tts/shard$i --shard $i/4 & done; wait
      jstip shards combine tts/all tts/shard0 tts/shard1 tts/shard2 tts/shard3
    """
    from jstip.errors import InputError
    from jstip.shards import ShardError, combine

    try:
        s = combine(shard_outputs, out)
    except ShardError as err:
        raise InputError(str(err)) from err
    click.echo(f"{s.shards} shards: {s.items} items = {s.kept} kept + {s.rejected} rejected -> {s.out}")


@click.command(name="export-shar")
@click.option("--in", "in_path", required=True, type=click.Path(), help="Cut manifest (.jsonl.gz) to export.")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="New directory for the Shar shards.")
@click.option("--shard-size", default=1000, show_default=True, help="Cuts per shard (every rank of a DDP run reads "
              "its own shards: give at least as many shards as ranks).")
@click.option("--audio-format", default="flac", show_default=True, type=click.Choice(["flac", "wav"]),
              help="How the audio is stored in the recording tar files.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def export_shar(in_path: str, out_dir: str, shard_size: int, audio_format: str, progress: bool) -> None:
    """Write a cut manifest and its audio as lhotse Shar: OUT/cuts.000000.jsonl.gz + OUT/recording.000000.tar, ...
    Training reads such a directory as data.train_cuts, each DDP rank its own shards. Cuts whose audio cannot be read
    are listed in OUT.rejected.jsonl (beside OUT, not in it).

    \b
    Example:
      jstip export-shar --in data/aligned/train/cuts.jsonl.gz --out data/shar/train --shard-size 500
      jstip train --config-name whisper_smollm2 data.train_cuts=data/shar/train ...
    """
    from jstip.errors import InputError
    from jstip.shards.shar import write_shar

    try:
        s = write_shar(in_path, out_dir, shard_size, audio_format, progress)
    except (FileNotFoundError, ValueError) as err:
        raise InputError(str(err)) from err
    click.echo(f"{s.cuts} cuts in {s.shards} shards -> {s.out}; {s.rejected} rejected"
               + (f" (reasons in {s.rejects_path})" if s.rejected else ""))
