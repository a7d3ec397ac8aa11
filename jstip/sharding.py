"""Running a per-item stage in shards: ``--shard i/N``, which items a shard handles, and the record it leaves.

``--shard i/N`` makes a stage handle only the items whose id hashes to ``i`` modulo ``N`` (CRC-32 of the id: stable
across runs, machines and Python versions, and the same for two items that share an id, so a duplicate is found in
one shard as in one run). Each shard
records the ids of the items it was given (``shard.json`` in an output folder, ``<file>.shard.json`` beside an
output file), so that `jstip shards combine` (:mod:`jstip.shards`) can check that nothing is lost or doubled.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import click

Shard = tuple[int, int]
RECORD = "shard.json"


def parse_shard(shard: str | Shard | None) -> Shard | None:
    """``"i/N"`` -> ``(i, N)``; None stays None.

    Raises:
        ValueError: not of the form i/N with 0 <= i < N.
    """
    if shard is None or isinstance(shard, tuple):
        return shard
    try:
        i, n = (int(x) for x in str(shard).split("/"))
    except ValueError:
        raise ValueError(f"--shard {shard!r} is not of the form i/N (e.g. 0/8)") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {shard!r}: need 0 <= i < N")
    return i, n


def in_shard(item_id: str, shard: Shard | None) -> bool:
    """Whether the item ``item_id`` belongs to ``shard`` (every item does without one)."""
    return shard is None or zlib.crc32(str(item_id).encode("utf-8")) % shard[1] == shard[0]


def shard_option(func):
    """``--shard i/N`` for a per-item stage's click command (parsed to a tuple or None)."""

    def convert(ctx, param, value):
        try:
            return parse_shard(value)
        except ValueError as err:
            raise click.BadParameter(str(err)) from err

    return click.option("--shard", default=None, callback=convert,
                        help="Handle only shard i of N (i/N: the items whose id hashes to i modulo N), into this "
                             "shard's own --out; `jstip shards combine` joins the shards.")(func)


def record_path(out: str | Path) -> Path:
    """Where the record of a shard's output lives: inside an output folder, beside an output file."""
    out = Path(out)
    if out.is_file():
        return out.with_name(out.name + ".shard.json")
    return out / RECORD if out.is_dir() or not out.suffix else out.with_name(out.name + ".shard.json")


def write_record(out: str | Path, stage: str, shard: Shard | None, source: str | Path, items: Sequence[str],
                 options: dict | None = None, **extra) -> None:
    """Record what a shard of ``stage`` was given: the ids of its items (nothing without a shard). ``source``: the
    input (a path, or a description of a generated one); ``options``: the settings every shard must share (combine
    refuses shards that differ); ``extra``: what a finisher needs (``jstip.shards.FINISHERS``)."""
    if shard is None:
        return
    from jstip.paths import write_atomic

    path = record_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    source = str(Path(source).resolve()) if isinstance(source, Path) or Path(str(source)).exists() else str(source)
    record = {"stage": stage, "shard": list(shard), "input": source, "items": list(items),
              "options": json.loads(json.dumps(options or {}, default=str)), **extra}
    write_atomic(path, json.dumps(record))
