"""Shards of a per-item stage, and their outputs combined back into one with nothing lost or doubled.

``--shard i/N`` on a per-item stage (``synthesize``, ``prepare mini``, ``prepare import``, ``align``,
``interleave``; :mod:`jstip.sharding`) makes it handle only the items whose id hashes to ``i`` modulo ``N``; each
shard writes its own output (a folder or a file, with its ``rejected.jsonl``) and a record of the items it
was given (``shard.json`` in an output folder, ``<file>.shard.json`` beside an output file).
``jstip shards combine OUT SHARD_OUT...`` then:

- checks that the shards are 0..N-1 of one split of one input, run with the same options (each once);
- concatenates every manifest (``*.jsonl.gz``), example file (``*.jsonl``) and ``rejected.jsonl`` of the shards;
- checks that every item a shard was given is in its output or in its ``rejected.jsonl``, and that no item is in
  two shards or twice in one output: items in = items out + items rejected, over the whole input;
- copies any other file the shards hold only when they all hold the same bytes (refusing otherwise), and computes
  what needs the whole output (:data:`FINISHERS`: the mini corpus's terms.json and summary.json).

Audio stays where the shards wrote it: the combined manifests point at the shards' audio files.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jstip.sharding import RECORD, record_path

class ShardError(ValueError):
    """Shard outputs that cannot be combined: the message names the shard, the item and the fix."""


# ---------------------------------------------------------------------------------------------------------------
# Combining


@dataclass
class CombineSummary:
    out: Path
    shards: int
    items: int
    kept: int
    rejected: int
    files: list[str] = field(default_factory=list)


def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line for line in f if line.strip()]


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(tmp, "wt", encoding="utf-8") as f:
        for line in lines:
            f.write(line if line.endswith("\n") else line + "\n")
    tmp.replace(path)


MAIN = "<main>"
"""The key of a file output itself among the files of a shard (its name may differ from shard to shard)."""


def _files_of(out: Path) -> dict[str, Path]:
    """Relative name -> path of every file of a shard's output: a folder's files (its audio/ and meta/ left where
    they are), or an output file (key :data:`MAIN`) with the ``rejected.jsonl`` beside it."""
    if out.is_dir():
        files = {}
        for p in sorted(out.rglob("*")):
            rel = p.relative_to(out).as_posix()
            if p.is_file() and p.name != RECORD and not p.name.endswith(".tmp") and not {"audio", "meta"} & set(
                    rel.split("/")[:-1]):
                files[rel] = p
        return files
    files = {MAIN: out}
    rejected = out.parent / "rejected.jsonl"
    if rejected.is_file():
        files["rejected.jsonl"] = rejected
    return files


def _check_split(outputs: list[Path], records: list[dict]) -> int:
    first, n = records[0], records[0]["shard"][1]
    for p, r in zip(outputs, records):
        if r["shard"][1] != n or r["stage"] != first["stage"] or r["input"] != first["input"]:
            raise ShardError(f"{p}: shard {r['shard'][0]}/{r['shard'][1]} of `{r['stage']}` on {r['input']}, not of "
                             f"the same split as {outputs[0]} ({first['stage']} on {first['input']}, N={n})")
        if r.get("options") != first.get("options"):
            diff = sorted(k for k in {**r.get("options", {}), **first.get("options", {})}
                          if (r.get("options") or {}).get(k) != (first.get("options") or {}).get(k))
            raise ShardError(f"{p}: run with other options than {outputs[0]} ({', '.join(diff)}): run every shard "
                             "with the same options")
    have = [r["shard"][0] for r in records]
    missing = sorted(set(range(n)) - set(have))
    doubled = sorted({i for i in have if have.count(i) > 1})
    if missing or doubled:
        raise ShardError(f"shards of N={n}: "
                         + "; ".join(([f"missing {', '.join(f'{i}/{n}' for i in missing)}"] if missing else [])
                                     + ([f"given twice {', '.join(f'{i}/{n}' for i in doubled)}"] if doubled else [])))
    if not outputs[0].is_dir():
        beside = [p.parent / "rejected.jsonl" for p in outputs]
        if len(set(beside)) != len(beside):
            raise ShardError("two shards wrote their output files into one folder, so they share one rejected.jsonl: "
                             "give each shard its own folder (--out shard0/cuts.jsonl.gz, shard1/cuts.jsonl.gz...)")
    return n


def combine(shard_outputs: Sequence[str | Path], out: str | Path) -> CombineSummary:
    """Combine the outputs of shards 0..N-1 of one stage into ``out`` (module docstring).

    Raises:
        ShardError: a shard missing, doubled or of another split or input; an item lost or in two places; other
            files that differ between shards.
    """
    outputs = [Path(p) for p in shard_outputs]
    records = []
    for p in outputs:
        rp = record_path(p)
        if not rp.is_file():
            raise ShardError(f"{p}: no shard record ({rp}); run the stage with --shard i/N and --out {p}")
        records.append(json.loads(rp.read_text(encoding="utf-8")))
    n = _check_split(outputs, records)
    names: dict[str, list[tuple[int, Path]]] = {}
    for k, p in enumerate(outputs):
        for rel, path in _files_of(p).items():
            names.setdefault(rel, []).append((k, path))
    kept: list[set[str]] = [set() for _ in outputs]
    rejected: list[set[str]] = [set() for _ in outputs]
    combined: dict[str, list[str]] = {}
    other: dict[str, bytes] = {}
    for rel, where in sorted(names.items()):
        name = Path(outputs[0].name if rel == MAIN else rel).name
        if not name.endswith((".jsonl", ".jsonl.gz")):
            data = [path.read_bytes() for _, path in where]
            if len(where) != len(outputs) or any(d != data[0] for d in data):
                raise ShardError(f"{rel} differs between the shards (or is missing from some): it cannot be combined; "
                                 "remove it or recompute it on the combined output")
            other[rel] = data[0]
            continue
        lines: list[str] = []
        seen: dict[str, int] = {}
        seen_lines: set[str] = set()
        for k, path in where:
            part = _read_lines(path)
            rows = [json.loads(line) for line in part]
            if name == "rejected.jsonl":
                # only this stage's rows (a folder may also hold the rejects of the stage before), and a bad input
                # line that every shard read (and rejected) is one reject
                stages = REJECT_STAGES.get(records[k]["stage"], {records[k]["stage"]})
                keep = [row.get("stage") in stages and line not in seen_lines for line, row in zip(part, rows)]
                part = [line for line, ok in zip(part, keep) if ok]
                rejected[k].update(str(row["id"]) for row, ok in zip(rows, keep) if ok)
                seen_lines.update(part)
            else:
                for r in rows:  # manifests and example files: every row's id once over all shards
                    key = str(r.get("id"))
                    if key in seen:
                        raise ShardError(f"{rel}: {key} is in the output of shard {records[seen[key]]['shard'][0]} "
                                         f"and of shard {records[k]['shard'][0]}: were the shards run on one input?")
                    seen[key] = k
                if rel == MAIN:  # a stage's output file: align's cuts, interleave's examples (the item: the cut)
                    key = "cut_id" if records[k]["stage"] == "interleave" else "id"
                    kept[k].update(str(r[key]) for r in rows)
                elif name.startswith("cuts"):  # the cut manifests of an output folder
                    kept[k].update(str(r["id"]) for r in rows)
            lines += part
        combined[rel] = lines
    for k, r in enumerate(records):  # (an id both kept and rejected: two input items shared it, one was kept)
        lost = sorted(set(r["items"]) - kept[k] - rejected[k])
        if lost:
            raise ShardError(f"{len(lost)} item(s) given to shard {r['shard'][0]}/{n} are neither in its output nor in "
                             f"its rejected.jsonl (first: {lost[0]}): the shard did not finish; run it again, then "
                             "combine")
    out = Path(out)
    written = []
    for rel, lines in combined.items():
        dest = out if rel == MAIN else (out / rel if outputs[0].is_dir() else out.parent / rel)
        if rel == "rejected.jsonl" and dest.is_file() and not outputs[0].is_dir():
            # beside an output file, rejected.jsonl is shared with the stages that wrote there before: append
            old = _read_lines(dest)
            have = set(old)
            lines = old + [line for line in lines if line not in have]
        _write_lines(dest, lines)
        written.append(str(dest))
    for rel, data in other.items():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        written.append(str(dest))
    finisher = FINISHERS.get(records[0]["stage"])
    if finisher is not None:
        written += finisher(out, records[0])
    return CombineSummary(out, n, sum(len(r["items"]) for r in records), sum(map(len, kept)),
                          len(set().union(*rejected)), written)


def _finish_mini(out: Path, record: dict) -> list[str]:
    from jstip.corpora.mini import finish_mini

    finish_mini(out, int(record["num_utterances"]), int(record["seed"]))
    return [str(out / "terms.json"), str(out / "summary.json")]


FINISHERS = {"prepare-mini": _finish_mini}
REJECT_STAGES = {"prepare-mini": {"synthesize"}}
"""Stage of a shard record -> the ``stage`` of its rows in rejected.jsonl, where the two differ."""
"""Stage -> what combining its shards must compute over the whole output (files no shard can write alone)."""
