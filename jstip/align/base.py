"""The aligner interface and the job runner shared by every backend.

An aligner fills ``supervision.alignment["word"]`` of a cut with one ``AlignmentItem`` per transcript word
(``jstip.text.words(sup.text)``: the transcript's own words, punctuation attached), in order, non-overlapping and
inside the audio. Gaps between items are silence: segment-level interleaving splits at them. Times are seconds of the
*recording*, as lhotse keeps alignments (``SupervisionSegment.with_offset`` does not move them): a word at t seconds
into the cut is at ``cut.start + t``. For jstip's own cuts (cut and supervision start at 0) this is cut time.
Backends that can also write ``alignment["phone"]`` do.

``align_cuts`` runs an aligner over a cut set: parallel worker processes, a progress bar, restartable (ids already in
the output or already rejected are skipped), and every item that cannot be aligned goes to ``rejected.jsonl`` beside
the output with its reason, so that items in = aligned + rejected and one bad item never stops the job.
"""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from lhotse import CutSet
from lhotse.supervision import AlignmentItem
from lhotse.utils import fastcopy
from tqdm import tqdm

from jstip.audio import SAMPLE_RATE
from jstip.rejects import RejectLog, rejected_ids
from jstip.text import MARKUP_TOKEN
from jstip.text import words as split_words

STAGE = "align"
log = logging.getLogger(__name__)


class AlignmentError(Exception):
    """One item cannot be aligned; the message is the reason written to ``rejected.jsonl``."""


@dataclass
class WordSpanTime:
    """Where one transcript word was spoken, in seconds from the start of the audio the aligner was given."""

    word: str
    start: float
    end: float
    score: float | None = None
    phones: list[tuple[str, float, float]] = field(default_factory=list)  # (phone, start, end) in seconds


class Aligner:
    """Base class of aligners. Subclasses set ``name`` and implement ``align_audio`` (or override ``align_cut``).

    Aligners are created in the parent process and pickled to the worker processes, so heavy state (a decoder, a
    model) must be created lazily on first use, not in ``__init__``.
    """

    name: str = ""

    def align_audio(self, audio: np.ndarray, text: str) -> list[WordSpanTime]:
        """Align ``text`` to ``audio``.

        Args:
            audio: (T,) float32 samples in [-1, 1], mono, 16 kHz.
            text: the transcript (``supervision.text``).

        Returns:
            One ``WordSpanTime`` per word of ``jstip.text.words(text)``, in order, times in seconds from the start of
            ``audio``. Raises ``AlignmentError`` with a reason when it cannot.
        """
        raise NotImplementedError

    def align_cut(self, cut):
        """The cut with ``alignment["word"]`` (and ``alignment["phone"]`` where the backend gives phones) filled in
        on every supervision. Raises ``AlignmentError`` naming the problem."""
        if not cut.supervisions:
            raise AlignmentError(f"cut {cut.id} has no supervision: nothing to align")
        audio = load_cut_audio(cut)
        new_sups = []
        for sup in cut.supervisions:
            words = split_words(sup.text or "")
            if not words:
                raise AlignmentError(f"supervision {sup.id} has empty text: nothing to align (drop it or add text)")
            a = max(0, int(round(sup.start * SAMPLE_RATE)))
            b = min(len(audio), int(round(sup.end * SAMPLE_RATE)))
            if b - a < int(0.05 * SAMPLE_RATE):
                raise AlignmentError(f"supervision {sup.id} covers {max(0, b - a) / SAMPLE_RATE:.3f} s of audio: "
                                     "too short to align; check its start/duration against the recording")
            # Transcript markup (<hes>, [laughter], <unk>...) is not spoken as written: the words around it are
            # aligned, and each tag gets a zero-length item where it stands, so the items still match the words.
            spoken = [w for w in words if not MARKUP_TOKEN.match(w)]
            if not spoken:
                raise AlignmentError(f"supervision {sup.id} holds only markup ({sup.text[:60]!r}): no word to align")
            spans = self.align_audio(audio[a:b], " ".join(spoken)) if len(spoken) < len(words) \
                else self.align_audio(audio[a:b], sup.text)
            check_spans(spans, spoken, (b - a) / SAMPLE_RATE)
            if len(spoken) < len(words):
                spans = _with_markup(words, spans)
            offset = cut.start + a / SAMPLE_RATE  # recording time (lhotse's convention for alignments)
            items = [AlignmentItem(symbol=s.word, start=round(offset + s.start, 4),
                                   duration=round(s.end - s.start, 4), score=s.score) for s in spans]
            alignment = dict(sup.alignment or {})
            alignment["word"] = items
            phones = [AlignmentItem(symbol=p, start=round(offset + ps, 4), duration=round(pe - ps, 4))
                      for s in spans for p, ps, pe in s.phones]
            if phones:
                alignment["phone"] = phones
            else:
                alignment.pop("phone", None)
            new_sups.append(fastcopy(sup, alignment=alignment))
        return fastcopy(cut, supervisions=new_sups)


def load_cut_audio(cut) -> np.ndarray:
    """(T,) float32 mono 16 kHz samples of a cut (:func:`jstip.audio.load_cut_audio`: the mean of the channels,
    checked). Raises ``AlignmentError`` with the reason if the audio cannot be used."""
    from jstip.audio import AudioError
    from jstip.audio import load_cut_audio as load

    try:
        return load(cut)
    except AudioError as e:
        raise AlignmentError(str(e)) from e


def _with_markup(words: list[str], spans: list[WordSpanTime]) -> list[WordSpanTime]:
    """``spans`` of the spoken words with a zero-length span for each markup token of ``words``, at the end of the
    word before it (or the start of the first word)."""
    out, k = [], 0
    for w in words:
        if MARKUP_TOKEN.match(w):
            t = out[-1].end if out else (spans[0].start if spans else 0.0)
            out.append(WordSpanTime(w, t, t))
        else:
            out.append(spans[k])
            k += 1
    return out


def check_spans(spans: list[WordSpanTime], words: list[str], duration: float) -> None:
    """Raise ``AlignmentError`` unless ``spans`` has one entry per word, in order, monotonic, inside ``duration``."""
    if len(spans) != len(words):
        raise AlignmentError(f"aligner returned {len(spans)} items for {len(words)} words")
    prev = 0.0
    for s, w in zip(spans, words):
        if s.word != w:
            raise AlignmentError(f"aligner returned symbol {s.word!r} where the transcript has {w!r}")
        if not (s.start >= prev - 1e-6 and s.end >= s.start and s.end <= duration + 0.011):
            raise AlignmentError(f"word {w!r} at {s.start:.3f}-{s.end:.3f} s is not monotonic or not inside the "
                                 f"{duration:.3f} s of audio")
        prev = s.end


_worker_aligner: Aligner | None = None


def _init_worker(aligner: Aligner) -> None:
    global _worker_aligner
    _worker_aligner = aligner
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _align_one(cut) -> tuple[str, object, str | None]:
    """(cut id, aligned cut or None, reason or None). Never raises: a bad item must not stop the job."""
    try:
        return cut.id, _worker_aligner.align_cut(cut), None
    except AlignmentError as e:
        return cut.id, None, str(e)
    except Exception as e:  # noqa: BLE001 - a backend bug on one item is still only that item's failure
        log.exception("unexpected error aligning %s", cut.id)
        return cut.id, None, f"unexpected {type(e).__name__} in aligner {_worker_aligner.name}: {e}"


@dataclass
class AlignSummary:
    """What an ``align_cuts`` run did. ``total == aligned + rejected`` over the shard (restarts included)."""

    total: int = 0
    aligned: int = 0
    rejected: int = 0
    skipped: int = 0  # done by an earlier run (counted in aligned/rejected too)

    def as_dict(self) -> dict:
        return dict(total=self.total, aligned=self.aligned, rejected=self.rejected, skipped=self.skipped)


def salvage_manifest(path: str | Path) -> int | None:
    """Make a cut manifest left by a killed job readable again; returns the number of cuts kept (None: no file).

    A job killed while appending to a ``.jsonl.gz`` leaves a gzip stream without its end (and maybe half a line); lhotse
    then cannot read the ids it must skip. Every complete line that can still be decompressed is kept (the file is
    rewritten atomically); the cuts after it are simply aligned again.
    """
    import gzip
    import json
    import os
    import zlib

    path = Path(path)
    if not path.exists():
        return None
    opener = gzip.open if path.suffix == ".gz" else open
    good: list[str] = []
    damaged = False
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    damaged = True
                    break
                try:
                    json.loads(line)
                except ValueError:
                    damaged = True
                    break
                good.append(line)
    except (EOFError, OSError, zlib.error, UnicodeDecodeError):
        damaged = True
    if damaged:
        tmp = path.with_name(path.name + ".salvage")
        with opener(tmp, "wt", encoding="utf-8") as f:
            f.writelines(good)
        os.replace(tmp, path)
        log.warning("%s was cut short (a killed job?): kept its %d complete cuts, the rest are aligned again",
                    path, len(good))
    return len(good)


def _complete_lines(path: Path) -> tuple[list[tuple[str, int]], int]:
    """(id, byte offset) of every complete JSON line of a plain-text cut manifest, and the byte offset where they
    end; a torn last line (a job killed while writing it) is left out."""
    import json

    out, offset = [], 0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                out.append((json.loads(raw)["id"], offset))
            except (ValueError, KeyError, TypeError):
                break
            offset += len(raw)
    return out, offset


def align_cuts(cuts: CutSet | Iterable, aligner: Aligner, out_path: str | Path, num_jobs: int = 1,
               shard: str | tuple[int, int] | None = None, progress: bool = True,
               source: str | Path | None = None, options: dict | None = None) -> AlignSummary:
    """Align every cut and write the aligned ones to ``out_path`` (a cuts ``jsonl.gz``).

    Each aligned cut is appended, and flushed, to ``OUT.partial.jsonl`` as soon as it is done; at the end ``OUT`` is
    written from it in input order, as a gzip without a timestamp, and the partial file is removed. A job killed at
    any point and started again keeps every cut finished before the kill and gives the same bytes as a job never
    killed, with any number of workers (each utterance is aligned independently of the ones before it).

    Args:
        cuts: the input cuts (each with audio and supervision text).
        aligner: the backend (see ``jstip.align.get_aligner``).
        out_path: output cut manifest; ``rejected.jsonl`` is written in the same folder (stage ``align``).
        num_jobs: worker processes (1 = in this process).
        shard: ``"i/N"``: align only the cuts of shard i (:mod:`jstip.sharding`); write each shard into its own
            folder (``OUT.shard.json`` records its cuts; ``jstip shards combine`` joins the shards).
        source / options: the input manifest and the aligner's settings, named in the shard record (shards with
            other settings are not combined).
        progress: show a tqdm bar.

    Returns:
        Counts; items in = aligned + rejected.
    """
    import gzip
    import json
    import os

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rejects = RejectLog(out_path.parent / "rejected.jsonl", STAGE)
    already_rejected = rejected_ids(rejects.path, STAGE)
    from jstip.sharding import in_shard, parse_shard, write_record

    shard = parse_shard(shard)
    assigned: list[str] = []
    summary = AlignSummary()
    partial = out_path.with_name(out_path.name + ".partial.jsonl")
    if out_path.exists():  # a finished (or older, killed) output: its cuts count as done
        salvage_manifest(out_path)
        have = {i for i, _ in _complete_lines(partial)[0]} if partial.exists() else set()
        opener = gzip.open if out_path.suffix == ".gz" else open
        with opener(out_path, "rt", encoding="utf-8") as src, open(partial, "a", encoding="utf-8") as dst:
            for line in src:
                if json.loads(line)["id"] not in have:
                    dst.write(line)
        out_path.unlink()
    done: dict[str, int] = {}
    if partial.exists():
        lines, end = _complete_lines(partial)
        if end != partial.stat().st_size:  # drop a torn last line
            with open(partial, "r+b") as f:
                f.truncate(end)
        done = dict(lines)
    order: list[str] = []

    with open(partial, "ab") as writer:

        def todo() -> Iterator:
            from jstip.cuts import CutScreen

            # Faults seen without audio (the audio is read, and checked, by the aligner): a duplicate id and what
            # check_cut finds, an old alignment aside.
            screen = CutScreen(alignment=False, audio=None)
            for idx, cut in enumerate(cuts):
                if not in_shard(cut.id, shard):
                    continue
                assigned.append(cut.id)
                summary.total += 1
                reason = screen.reason(cut)
                if reason is not None:
                    summary.rejected += 1
                    if cut.id not in already_rejected:  # a restarted job does not record it twice
                        rejects.reject(cut.id, reason)
                    bar.update(1)
                    continue
                order.append(cut.id)
                if cut.id in done or cut.id in already_rejected:
                    summary.skipped += 1
                    if cut.id in done:
                        summary.aligned += 1
                    else:
                        summary.rejected += 1
                    continue
                yield cut

        bar = tqdm(desc=f"align ({aligner.name})", unit="cut", disable=not progress)
        if hasattr(aligner, "align_batch"):  # backends with a large start-up cost (MFA) align whole batches
            results = aligner.align_batch(todo())
            pool = None
        elif num_jobs <= 1:
            _init_worker(aligner)
            results = (_align_one(c) for c in todo())
            pool = None
        else:
            ctx = multiprocessing.get_context("fork")
            pool = ctx.Pool(num_jobs, initializer=_init_worker, initargs=(aligner,))
            results = pool.imap_unordered(_align_one, todo(), chunksize=2)
        try:
            for cut_id, aligned, reason in results:
                if aligned is not None:
                    done[cut_id] = writer.tell()
                    writer.write((json.dumps(aligned.to_dict(), ensure_ascii=False) + "\n").encode("utf-8"))
                    writer.flush()  # a kill after this line keeps the cut
                    summary.aligned += 1
                else:
                    rejects.reject(cut_id, reason)
                    summary.rejected += 1
                    log.info("rejected %s: %s", cut_id, reason)
                bar.update(1)
                bar.set_postfix(rejected=summary.rejected)
        finally:
            bar.close()
            if pool is not None:
                pool.close()
                pool.join()

    # The manifest, in input order, the same bytes however the job ran (no gzip timestamp).
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(partial, "rb") as src, open(tmp, "wb") as raw:
        with (gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") if out_path.suffix == ".gz"
              else raw) as dst:
            for cut_id in order:
                if cut_id in done:
                    src.seek(done[cut_id])
                    dst.write(src.readline())
    os.replace(tmp, out_path)
    partial.unlink()
    write_record(out_path, STAGE, shard, source or out_path, assigned, options=options)
    return summary
