"""Training cuts read lazily from manifests and lhotse Shar directories: screened once, dealt to the DDP ranks, mixed
by weight.

``data.train_cuts`` names a source or a list of them. A source is a cut manifest (``.jsonl`` / ``.jsonl.gz``) or a
Shar directory (``cuts.000000.jsonl.gz`` + ``recording.000000.tar`` ..., as ``jstip export-shar`` writes it). A list
of paths is one corpus, their cuts in order; a list of ``{path: ..., weight: ...}`` is mixed by lhotse's multiplexing,
each source drawn in proportion to its weight, the epoch ending when every source is spent.

Nothing here holds every cut, so memory does not grow with the corpus:

* the run starts with one pass over the metadata (no audio) that checks every cut (:class:`jstip.cuts.CutScreen`) and
  writes each unusable one to ``rejected.jsonl``; what it keeps is, per file, the positions of the rejected cuts (and,
  while it looks for repeated ids, 8 bytes per cut);
* every epoch then streams the files again, skipping those positions.

Under DDP each rank reads its own part, dealt before the sampler: the shards of a Shar directory, shuffled by (seed,
epoch), go round-robin to the ranks (rank r reads shards r, r+N, ...); the cuts of a manifest, which every rank
streams, are dealt by position. No cut is read by two ranks in an epoch. The ranks' batch counts then differ by a few;
:class:`jstip.train.data.EvenEpoch` ends the epoch on every rank as soon as one rank has no batch left, so that no
rank waits for gradients that never come (the few batches the other ranks had left are not trained on in that epoch).
"""

from __future__ import annotations

import hashlib
import random
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

SHAR_CUTS = "cuts.*.jsonl*"
"""The cut files of a Shar directory; the fields of shard ``cuts.000003.jsonl.gz`` are ``<field>.000003.*``."""


def is_shar_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and any(path.glob(SHAR_CUTS))


@dataclass
class CutFile:
    """One file of cuts read in order: a manifest, one shard of a Shar directory, or cuts held in memory.

    Attributes:
        cuts: the manifest, or the shard's cuts file.
        fields: Shar only: the shard's data files by field (``{"recording": .../recording.000003.tar}``).
        skip: positions (0-based, among the cuts the file yields) that screening rejected.
        count: cuts the file yields (known after the first screening pass).
        memory: cuts already in memory (a ``CutSet`` given by a caller), instead of a file.
        dropped: a Shar shard whose cuts file cannot be read, left out whole.
    """

    cuts: Path | None
    fields: dict[str, Path] = field(default_factory=dict)
    skip: set[int] = field(default_factory=set)
    count: int = 0
    memory: list | None = None
    rejects: object = None
    dropped: bool = False

    @property
    def kept(self) -> int:
        return self.count - len(self.skip)

    def metadata(self) -> Iterator:
        """Every cut of the file in order, without audio (for a Shar shard: its cuts file alone)."""
        if self.memory is not None:
            return iter(self.memory)
        from jstip.manifests import iter_cuts

        return iter_cuts(self.cuts, self.rejects)

    def __iter__(self) -> Iterator:
        """The kept cuts in order, with their audio (a Shar shard's recordings read from its tar files)."""
        if self.dropped or (self.count and self.kept <= 0):  # screened, and nothing kept
            return
        if self.fields:
            from lhotse.shar.readers.lazy import LazySharIterator

            cuts = iter(LazySharIterator(fields={"cuts": [str(self.cuts)],
                                                 **{k: [str(v)] for k, v in self.fields.items()}}))
        else:
            cuts = self.metadata()
        for i, cut in enumerate(cuts):
            if i not in self.skip:
                yield cut


def shar_files(path: Path, rejects=None) -> list[CutFile]:
    """The shards of a Shar directory in order, each with its fields; a field missing for a shard is an error."""
    cut_files = sorted(path.glob(SHAR_CUTS))
    out = []
    for cuts in cut_files:
        number = cuts.name.split(".")[1]
        fields = {}
        for data in sorted(path.glob(f"*.{number}.*")):
            name = data.name.split(".")[0]
            if name != "cuts":
                fields[name] = data
        # No reject log for a shard's metadata: a bad line must not be skipped (the cuts that follow it would be paired
        # with the wrong audio of the tar); the screening pass leaves such a shard out whole.
        out.append(CutFile(cuts, fields))
    names = {frozenset(f.fields) for f in out}
    if len(names) > 1:
        raise ValueError(f"{path}: the shards do not all have the same fields ({sorted(sorted(n) for n in names)}): "
                         "a shard was not fully written; export the directory again with `jstip export-shar`")
    return out


def read_shar(path: str | Path) -> list:
    """Every cut of a Shar directory, in shard order, with its audio in memory (a test set: see ``jstip evaluate``).

    Raises:
        ValueError: a shard that cannot be read (named).
    """
    cuts = []
    for f in shar_files(Path(path)):
        try:
            cuts.extend(f)
        except Exception as err:  # noqa: BLE001 - lhotse raises many types for a damaged shard
            raise ValueError(f"{f.cuts} (a shard of {path}) cannot be read ({type(err).__name__}: {err}): export the "
                             "directory again with `jstip export-shar`") from err
    return cuts


@dataclass
class Source:
    """One entry of ``data.train_cuts``: its files, whether it is Shar, and its weight in a mix."""

    name: str
    files: list[CutFile]
    shar: bool = False
    weight: float | None = None

    @property
    def kept(self) -> int:
        return sum(f.kept for f in self.files)


def open_source(spec, rejects=None) -> Source:
    """A :class:`Source` from a path, a ``{path, weight}`` mapping, or an in-memory ``CutSet``."""
    from lhotse import CutSet

    if isinstance(spec, CutSet):
        cuts = list(spec)
        return Source("memory", [CutFile(None, count=len(cuts), memory=cuts)])
    weight = None
    if hasattr(spec, "keys"):  # a dict or an OmegaConf DictConfig
        if "path" not in spec:
            raise ValueError(f"data.train_cuts entry {dict(spec)} has no path: write {{path: ..., weight: ...}}")
        weight = float(spec.get("weight", 1.0))
        if weight <= 0:
            raise ValueError(f"data.train_cuts entry {spec['path']} has weight {weight}: weights must be positive")
        spec = spec["path"]
    path = Path(str(spec))
    if is_shar_dir(path):
        return Source(str(path), shar_files(path, rejects), shar=True, weight=weight)
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a directory without Shar cut files ({SHAR_CUTS}): give a cut manifest or "
                                "a directory written by `jstip export-shar`")
    if not path.exists():
        raise FileNotFoundError(f"cut manifest not found: {path} (make one with `jstip prepare ...`)")
    return Source(str(path), [CutFile(path, rejects=rejects)], weight=weight)


class _Stream:
    """Cuts of some files in order, optionally dealt by position to one of ``world`` ranks; knows its length."""

    def __init__(self, files: list[CutFile], world: int = 1, rank: int = 0) -> None:
        self.files, self.world, self.rank = files, world, rank

    def __iter__(self) -> Iterator:
        k = 0
        for f in self.files:
            for cut in f:
                if k % self.world == self.rank:
                    yield cut
                k += 1

    def __len__(self) -> int:
        return len(range(self.rank, sum(f.kept for f in self.files), self.world))


def _id_hash(cut_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(cut_id.encode("utf-8"), digest_size=8).digest(), "little")


class TrainCuts:
    """The training cuts of a run, read lazily (see the module docstring).

    Build with :meth:`open`; :meth:`screen` adds a check; iterate for every kept cut (one-off passes: tokenizer
    texts, first-pass transcripts); :meth:`epoch` is what one rank samples from in one epoch.
    """

    def __init__(self, sources: list[Source], rejects=None) -> None:
        self.sources = sources
        self.rejects = rejects
        weights = [s.weight for s in sources]
        if len(sources) > 1 and any(w is not None for w in weights) and any(w is None for w in weights):
            raise ValueError("data.train_cuts mixes entries with and without weights: give every entry as "
                             "{path: ..., weight: ...} (mixed by weight), or none (one corpus, in order)")
        self.weighted = len(sources) > 1 and all(w is not None for w in weights)

    @classmethod
    def open(cls, spec, rejects=None, max_duration: float | None = None,
             exclude: frozenset = frozenset(), what: str = "train") -> "TrainCuts":
        """Open ``data.train_cuts`` (a path, a list, an in-memory ``CutSet``) and screen every cut once.

        Raises:
            FileNotFoundError / ValueError: a missing source, a bad entry (named).
        """
        from lhotse import CutSet

        if spec is None:
            raise ValueError("data.train_cuts is not set: give a cut manifest or a Shar directory")
        entries = [spec] if isinstance(spec, (str, Path, CutSet)) or hasattr(spec, "keys") else list(spec)
        if not entries:
            raise ValueError("data.train_cuts is an empty list: give at least one cut manifest or Shar directory")
        cuts = cls([open_source(e, rejects) for e in entries], rejects)
        cuts._first_screen(max_duration, exclude, what)
        return cuts

    @classmethod
    def of(cls, cuts) -> "TrainCuts":
        """Cuts a caller holds in memory (a ``CutSet``), used as they are (no screening)."""
        return cls([open_source(cuts)])

    def _first_screen(self, max_duration, exclude, what) -> None:
        from jstip.cuts import CutScreen
        from jstip.rejects import rejected_ids

        done = rejected_ids(self.rejects.path, self.rejects.stage) if self.rejects is not None else set()
        hashes = array("Q")
        for source in self.sources:
            # A Shar cut carries its audio in the shard's tar, read when the cut is used; a manifest's audio sources
            # are checked now (a missing file, a command).
            screen = CutScreen(alignment=True, audio=None if source.shar else "sources", max_duration=max_duration,
                               exclude=exclude, repeats=False)
            for f in source.files:
                f.count, f.skip = 0, set()
                try:
                    for i, cut in enumerate(f.metadata()):
                        f.count += 1
                        hashes.append(_id_hash(cut.id))
                        reason = screen.reason(cut)
                        if reason is not None:
                            self._reject(f, i, cut.id, f"{what}: {reason}", done)
                except Exception as err:  # noqa: BLE001 - a shard whose cuts file is damaged is left out whole
                    if not source.shar:
                        raise
                    self._drop_shard(f, err, what, done)
        self._reject_repeats(hashes, what, done)
        if self.kept == 0:
            where = self.rejects.path if self.rejects is not None else "the checks above"
            raise ValueError(f"no usable training cut in {', '.join(s.name for s in self.sources)}: every cut was "
                             f"rejected (reasons in {where})")

    def _drop_shard(self, f: CutFile, err: Exception, what: str, done: set) -> None:
        """A Shar shard whose cuts file cannot be read is left out whole; every cut it names is rejected."""
        f.dropped = True
        reason = (f"{what}: {f.cuts} cannot be read ({type(err).__name__}: {err}); the shard's cuts are left out: "
                  "export the directory again with `jstip export-shar`")
        if self.rejects is None:
            raise ValueError(reason) from err
        from jstip.manifests import iter_manifest

        self.rejects.reject(str(f.cuts), reason)
        ids = []
        try:  # the cuts it names that can be read, each accounted for (the bad lines are recorded as FILE:LINE)
            ids = [getattr(item, "id", None) for item in iter_manifest(f.cuts, self.rejects)]
        except Exception:  # noqa: BLE001 - a file whose first line is bad names no cut: the record above stands
            pass
        f.count = len(ids)
        f.skip = set(range(len(ids)))
        for cut_id in ids:
            if cut_id is not None and cut_id not in done:
                self.rejects.reject(cut_id, reason)
                done.add(cut_id)

    def _reject(self, f: CutFile, position: int, cut_id: str, reason: str, done: set) -> None:
        f.skip.add(position)
        if self.rejects is None:
            return
        if cut_id not in done:
            self.rejects.reject(cut_id, reason)
            done.add(cut_id)

    def _reject_repeats(self, hashes: array, what: str, done: set) -> None:
        """A cut id met twice: the first cut keeps it, every later one is rejected (8 bytes per cut, one more pass
        over the metadata only when two hashes collide)."""
        import numpy as np

        values = np.frombuffer(hashes, dtype=np.uint64) if len(hashes) else np.zeros(0, dtype=np.uint64)
        ordered = np.sort(values)
        repeated = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
        if not repeated:
            return
        first: set[str] = set()
        for source in self.sources:
            for f in source.files:
                if f.dropped:  # a damaged shard, left out whole
                    continue
                for i, cut in enumerate(f.metadata()):
                    if _id_hash(cut.id) not in repeated:
                        continue
                    if cut.id in first:
                        self._reject(f, i, cut.id, f"{what}: duplicate cut id: only the first cut with this id is "
                                                   "used (ids must be unique)", done)
                    else:
                        first.add(cut.id)

    def screen(self, reason: Callable, what: str = "train") -> int:
        """One more check over the kept cuts' metadata (``reason(cut) -> str | None``); returns the cuts it
        rejected."""
        from jstip.rejects import rejected_ids

        done = rejected_ids(self.rejects.path, self.rejects.stage) if self.rejects is not None else set()
        before = self.kept
        for source in self.sources:
            for f in source.files:
                if f.dropped:
                    continue
                for i, cut in enumerate(f.metadata()):
                    if i in f.skip:
                        continue
                    why = reason(cut)
                    if why is not None:
                        self._reject(f, i, cut.id, f"{what}: {why}", done)
        return before - self.kept

    @property
    def kept(self) -> int:
        return sum(s.kept for s in self.sources)

    def __len__(self) -> int:
        return self.kept

    def __iter__(self) -> Iterator:
        """Every kept cut, source by source, in order (a Shar cut with its audio)."""
        for source in self.sources:
            for f in source.files:
                yield from f

    def epoch(self, epoch: int, seed: int, world_size: int | None = None, rank: int | None = None):
        """The lazy ``CutSet`` rank ``rank`` of ``world_size`` reads in ``epoch`` (every kept cut when not
        distributed).

        Raises:
            ValueError: a Shar source with fewer shards than ranks (named, with the fix).
        """
        from lhotse import CutSet

        world, rank = int(world_size or 1), int(rank or 0)
        parts = []
        for i, source in enumerate(self.sources):
            if source.shar:  # shards in a fresh order every epoch, dealt round-robin to the ranks
                if len(source.files) < world:
                    raise ValueError(f"{source.name} has {len(source.files)} shard(s) for {world} ranks: every rank "
                                     "reads its own shards; export it again with a smaller --shard-size")
                order = list(range(len(source.files)))
                # Seeded by the source's place in data.train_cuts, not its path: the same deal wherever the data lives.
                random.Random(f"shar|{seed}|{epoch}|{i}").shuffle(order)
                parts.append(_Stream([source.files[i] for i in order[rank::world]]))
            else:
                parts.append(_Stream(source.files, world, rank))
        sets = [CutSet(p) for p in parts]
        if len(sets) == 1:
            return sets[0]
        if self.weighted:
            return CutSet.mux(*sets, weights=[s.weight for s in self.sources], seed=_mix_seed(seed, epoch, rank))
        return CutSet(_Chain(parts))


class _Chain:
    def __init__(self, parts) -> None:
        self.parts = parts

    def __iter__(self) -> Iterator:
        for p in self.parts:
            yield from p

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)


def _mix_seed(seed: int, epoch: int, rank: int) -> int:
    """A seed for one (run seed, epoch, rank)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}|{epoch}|{rank}".encode(), digest_size=4).digest(), "little")
