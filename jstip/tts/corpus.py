"""Synthesise a text corpus into lhotse manifests with the engine's word times (``jstip synthesize``).

Layout of ``out_dir``::

    audio/<id>.flac          16 kHz mono speech
    meta/<id>.json           what the engine reported (written after the audio: its presence marks an item done)
    recordings.jsonl.gz  supervisions.jsonl.gz  cuts.jsonl.gz
    rejected.jsonl           {"id", "stage": "synthesize", "reason"} per item that could not be spoken

Restartable: items with a meta file are not synthesised again; items already rejected are not retried.
"""

from __future__ import annotations

import json
import os
import unicodedata
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, Iterator

import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.audio import AudioSource
from lhotse.supervision import AlignmentItem
from tqdm import tqdm

from jstip.rejects import RejectLog, rejected_ids
from jstip.text import words as split_words
from jstip.tts.base import Synthesis, SynthesisError, Voice
from jstip.tts.voices import pick_voice

STAGE = "synthesize"
MAX_WORDS = 120  # longer lines are rejected: split them into sentences

# Symbols the English voices speak; letters must be Latin script.
_SPOKEN_SYMBOLS = set("$%&+/=°#@'\"-")


def read_text_items(path: str | Path, rejects: RejectLog, shard=None, assigned: list[str] | None = None) -> list[dict]:
    """Items of a text file (one sentence per line) or a jsonl file (``text``, optional ``id``, ``entities``, ``voice``).

    Lines that are empty, not UTF-8 or not valid JSON are rejected here with the line number, never fatal. With
    ``shard`` ``(i, N)`` only the lines whose item id is in the shard are kept (:mod:`jstip.sharding`); ``assigned``
    gets the id of every such line, kept or rejected.
    """
    from jstip.sharding import in_shard

    path = Path(path)
    items: list[dict] = []
    is_jsonl = path.suffix == ".jsonl"
    logged = rejected_ids(rejects.path)  # a restarted run does not log the same bad line twice

    def reject(item_id: str, reason: str) -> None:
        if item_id not in logged:
            rejects.reject(item_id, reason)

    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            item_id = f"{path.stem}-{lineno:06d}"
            item, reason = None, None
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                line, reason = "", (f"line {lineno} of {path} is not valid UTF-8 (byte {raw[e.start]:#04x} at "
                                    f"column {e.start}): re-encode the file as UTF-8")
            if reason is None and not line.strip():
                reason = f"line {lineno} of {path} is empty"
            if reason is None and is_jsonl:
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                        raise ValueError('expected an object with a "text" string')
                except ValueError as e:
                    reason = f"line {lineno} of {path} is not a JSON object with text: {e}"
                else:
                    record.setdefault("id", item_id)
                    record["id"] = item_id = str(record["id"])
                    item = record
            elif reason is None:
                item = {"id": item_id, "text": line}
            if not in_shard(item_id, shard):
                continue
            if assigned is not None:
                assigned.append(item_id)
            if reason is not None:
                reject(item_id, reason)
            else:
                items.append(item)
    return items


def check_item(item: dict, max_words: int = MAX_WORDS) -> str | None:
    """Why this item cannot be synthesised, or None. Checks text, length, characters and entity offsets."""
    text = item.get("text", "")
    words = split_words(text)
    if not words:
        return "empty text"
    if len(words) > max_words:
        return f"text has {len(words)} words; the limit is {max_words} (--max-words): split it into sentences"
    for ch in text:
        if ch.isspace() or ch.isdigit() or ch in _SPOKEN_SYMBOLS:
            continue
        cat = unicodedata.category(ch)
        if cat.startswith("L"):
            if "LATIN" not in unicodedata.name(ch, ""):
                return (f"character {ch!r} (U+{ord(ch):04X}, {unicodedata.name(ch, 'unnamed')}) is not in an English "
                        "voice's alphabet: transliterate or remove it")
        elif cat.startswith("P"):
            continue
        else:
            return (f"character {ch!r} (U+{ord(ch):04X}, {unicodedata.name(ch, 'unnamed')}) cannot be spoken by "
                    "the TTS engine: replace it with words")
    for w in words:
        if not any(c.isalnum() for c in w):
            return f"word {w!r} has no letter or digit to speak: remove it or join it to its neighbour"
    for ent in item.get("entities") or []:
        try:
            start, end, etext = int(ent["start"]), int(ent["end"]), ent["text"]
        except (KeyError, TypeError, ValueError):
            return f"entity {ent!r} needs text, category, start and end"
        if text[start:end] != etext:
            return f"entity {etext!r} at [{start}:{end}] does not match the text there ({text[start:end]!r})"
    return None


def _meta_path(out_dir: Path, item_id: str) -> Path:
    return out_dir / "meta" / f"{item_id}.json"


def _synthesize_one(args: tuple[dict, str]) -> tuple[str, str | None]:
    """Worker: synthesise one item, write audio then meta. Returns (id, reason if rejected)."""
    item, out_dir_s = args
    out_dir = Path(out_dir_s)
    from jstip.tts import synthesize

    voice = Voice.parse(item["voice"])
    try:
        syn: Synthesis = synthesize(item["text"], voice)
    except SynthesisError as e:
        return item["id"], f"{voice.id}: {e}"
    except Exception as e:  # an engine crash on one item must not stop the job
        return item["id"], f"{voice.id}: unexpected {type(e).__name__}: {e}"
    audio_path = out_dir / "audio" / f"{item['id']}.flac"
    tmp = audio_path.with_suffix(".tmp.flac")
    sf.write(tmp, syn.audio, syn.sampling_rate, subtype="PCM_16")
    os.replace(tmp, audio_path)
    meta = {
        "id": item["id"],
        "text": item["text"],
        "voice": voice.id,
        "speaker": voice.speaker,
        "sampling_rate": syn.sampling_rate,
        "num_samples": int(len(syn.audio)),
        "words": [[w.word, w.start, round(w.end - w.start, 4)] for w in syn.words],
        "entities": item.get("entities") or [],
        "custom": item.get("custom") or {},
    }
    mpath = _meta_path(out_dir, item["id"])
    mtmp = mpath.with_suffix(".tmp")
    mtmp.write_text(json.dumps(meta, ensure_ascii=False))
    os.replace(mtmp, mpath)
    return item["id"], None


def cut_from_meta(meta: dict, audio_path: Path) -> MonoCut:
    """The lhotse cut of one synthesised item: recording, one supervision with word alignment and entities."""
    sr, n = meta["sampling_rate"], meta["num_samples"]
    duration = n / sr
    rec = Recording(
        id=meta["id"], sources=[AudioSource(type="file", channels=[0], source=str(audio_path.resolve()))],
        sampling_rate=sr, num_samples=n, duration=duration,
    )
    alignment = [AlignmentItem(symbol=w, start=s, duration=d) for w, s, d in meta["words"]]
    custom = {"entities": meta["entities"], "voice": meta["voice"], "word_times": "tts", **meta.get("custom", {})}
    sup = SupervisionSegment(
        id=meta["id"], recording_id=meta["id"], start=0.0, duration=duration, channel=0, text=meta["text"],
        language="en", speaker=meta["speaker"], alignment={"word": alignment}, custom=custom,
    )
    return MonoCut(id=meta["id"], start=0.0, duration=duration, channel=0, recording=rec, supervisions=[sup])


def synthesize_items(
    items: Iterable[dict],
    out_dir: str | Path,
    voices: list[Voice] | None = None,
    num_jobs: int = 1,
    seed: int = 0,
    max_words: int = MAX_WORDS,
    progress: bool = True,
    rejects: RejectLog | None = None,
) -> CutSet:
    """Synthesise items and write manifests; returns the cuts of every item spoken (now or in an earlier run).

    Args:
        items: dicts with ``id`` and ``text``; optional ``entities`` (DESIGN.md format), ``voice``
            (``engine:name[@rate]``) and ``custom`` (merged into the supervision's custom).
        out_dir: output folder (layout in the module docstring).
        voices: pool to draw a voice (and rate) from for items without one; default: every default voice.
        num_jobs: worker processes.
        seed: voice choice seed.
        max_words: longer texts are rejected.
        rejects: where to log rejected items (default ``out_dir/rejected.jsonl``).
    """
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    (out_dir / "meta").mkdir(parents=True, exist_ok=True)
    rejects = rejects or RejectLog(out_dir / "rejected.jsonl", STAGE)
    already_rejected = rejected_ids(rejects.path)
    if voices is None:
        from jstip.tts import default_voices

        voices = default_voices()
    todo, keep_ids, seen = [], [], set()
    for item in items:
        item = dict(item)
        item_id = str(item.get("id", ""))
        if not item_id or item_id in seen:
            rejects.reject(item_id or "<missing id>", "duplicate or missing id: every item needs a unique id")
            continue
        seen.add(item_id)
        if _meta_path(out_dir, item_id).exists():
            keep_ids.append(item_id)
            continue
        if item_id in already_rejected:
            continue
        reason = check_item(item, max_words)
        if reason:
            rejects.reject(item_id, reason)
            continue
        if not item.get("voice"):
            item["voice"] = pick_voice(item_id, voices, seed).id
        todo.append(item)
        keep_ids.append(item_id)
    bar = tqdm(total=len(todo), desc="synthesize", unit="utt", disable=not progress or not todo)
    failed: set[str] = set()
    jobs = [(item, str(out_dir)) for item in todo]
    if num_jobs > 1 and len(jobs) > 1:
        with get_context("spawn").Pool(num_jobs) as pool:
            results: Iterator = pool.imap_unordered(_synthesize_one, jobs, chunksize=8)
            for item_id, reason in results:
                if reason:
                    rejects.reject(item_id, reason)
                    failed.add(item_id)
                bar.update()
    else:
        for job in jobs:
            item_id, reason = _synthesize_one(job)
            if reason:
                rejects.reject(item_id, reason)
                failed.add(item_id)
            bar.update()
    bar.close()
    cuts = []
    for item_id in keep_ids:
        if item_id in failed:
            continue
        meta = json.loads(_meta_path(out_dir, item_id).read_text())
        cuts.append(cut_from_meta(meta, out_dir / "audio" / f"{item_id}.flac"))
    cutset = CutSet.from_cuts(cuts)
    write_manifests(cutset, out_dir)
    return cutset


def write_manifests(cuts: CutSet, out_dir: str | Path, prefix: str = "") -> None:
    """Write ``recordings``, ``supervisions`` and ``cuts`` jsonl.gz of a cut set into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    RecordingSet.from_recordings(c.recording for c in cuts).to_file(out_dir / f"{prefix}recordings.jsonl.gz")
    SupervisionSet.from_segments(s for c in cuts for s in c.supervisions).to_file(
        out_dir / f"{prefix}supervisions.jsonl.gz"
    )
    cuts.to_file(out_dir / f"{prefix}cuts.jsonl.gz")
