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
