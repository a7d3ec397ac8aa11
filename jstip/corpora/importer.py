"""Import an existing lhotse manifest folder or a Kaldi data folder as jstip cuts."""

from __future__ import annotations

import tempfile
from pathlib import Path

from lhotse import CutSet, RecordingSet, SupervisionSet

from jstip.cuts import validate_and_write
from jstip.rejects import RejectLog


def import_lhotse_dir(manifest_dir: str | Path, out_dir: str | Path, check_audio: bool = False, shard=None) -> CutSet:
    """Cuts from a folder with ``*cuts*.jsonl.gz``, or ``*recordings*`` + ``*supervisions*`` manifests.

    Every item is accounted for in ``out_dir/rejected.jsonl``: a line that cannot be read (FILE:LINE: not UTF-8,
    not JSON, not a lhotse item, or the rest of a truncated file), a supervision whose recording is in no
    recordings manifest, and what :func:`jstip.cuts.check_cut` finds.
    """
    from jstip.manifests import iter_manifest, read_cuts

    d = Path(manifest_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rejected.jsonl").unlink(missing_ok=True)
    rejects = RejectLog(out_dir / "rejected.jsonl", "prepare")
    cut_files = sorted(d.glob("*cuts*.jsonl*"))
    if cut_files:
        cuts = CutSet.from_cuts(c for f in cut_files for c in read_cuts(f, rejects))
    else:
        recs = sorted(d.glob("*recordings*.jsonl*"))
        sups = sorted(d.glob("*supervisions*.jsonl*"))
        if not recs or not sups:
            raise FileNotFoundError(
                f"{d} has no lhotse manifests: expected *cuts*.jsonl.gz, or *recordings*.jsonl.gz and "
                "*supervisions*.jsonl.gz"
            )
        recordings = RecordingSet.from_recordings(r for f in recs for r in iter_manifest(f, rejects))
        known = set(recordings.ids)
        kept_sups = []
        for f in sups:
            for sup in iter_manifest(f, rejects):
                if sup.recording_id in known:
                    kept_sups.append(sup)
                else:
                    rejects.reject(sup.id, f"{f}: its recording {sup.recording_id} is in no recordings manifest of "
                                           f"{d}; add the recording or drop the supervision")
        supervisions = SupervisionSet.from_segments(kept_sups)
        cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions).trim_to_supervisions(
            keep_overlapping=False
        )
    return validate_and_write(cuts, out_dir, stage="prepare", rejects=rejects, check_audio=check_audio, shard=shard,
                              source=d)


def import_kaldi_dir(kaldi_dir: str | Path, out_dir: str | Path, sampling_rate: int = 16000,
                     check_audio: bool = False, shard=None) -> CutSet:
    """Cuts from a Kaldi data folder (``wav.scp``, ``segments``, ``text``, ``utt2spk``)."""
    from lhotse.kaldi import load_kaldi_data_dir

    d = Path(kaldi_dir)
    if not (d / "wav.scp").exists():
        raise FileNotFoundError(f"{d} is not a Kaldi data folder: {d / 'wav.scp'} is missing")
    if not (d / "text").exists():
        raise FileNotFoundError(f"{d} has no 'text' file: transcripts are needed")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rejected.jsonl").unlink(missing_ok=True)
    rejects = RejectLog(out_dir / "rejected.jsonl", "prepare")
    # lhotse's reader stops at the first line without a transcript: reject those lines here and give it a clean copy.
    with tempfile.TemporaryDirectory(prefix="jstip-kaldi-") as tmp:
        clean = Path(tmp)
        kept, dropped = [], set()
        for lineno, line in enumerate((d / "text").read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.strip().split(maxsplit=1)
            if not parts:
                continue
            if len(parts) < 2:
                rejects.reject(parts[0], f"{d / 'text'} line {lineno}: utterance has no transcript")
                dropped.add(parts[0])
                continue
            kept.append(line.strip())
        (clean / "text").write_text("\n".join(kept) + "\n", encoding="utf-8")
        # Recordings that cannot be read (a missing or unreadable file, a piped command) are rejected with their
        # utterances: lhotse would stop at the first one (or run the command to read its length).
        bad_recs = _check_wav_scp(d / "wav.scp", rejects)
        if bad_recs:
            if (d / "segments").exists():
                for line in (d / "segments").read_text(encoding="utf-8").splitlines():
                    parts = line.split()
                    if len(parts) >= 2 and parts[1] in bad_recs and parts[0] not in dropped:
                        rejects.reject(parts[0], f"its recording {parts[1]} was rejected: {bad_recs[parts[1]]}")
                        dropped.add(parts[0])
            else:
                dropped |= set(bad_recs)
        # Without a segments file, utterance ids are recording ids: a dropped utterance drops its recording.
        gone = set(bad_recs) | (set() if (d / "segments").exists() else dropped)
        (clean / "wav.scp").write_text("".join(line + "\n" for line in (d / "wav.scp").read_text(
            encoding="utf-8").splitlines() if line.split() and line.split()[0] not in gone), encoding="utf-8")
        kept_text = [x for x in kept if x.split()[0] not in dropped]
        (clean / "text").write_text("\n".join(kept_text) + "\n", encoding="utf-8")
        # Without a segments file, utterance ids are recording ids: drop the rejected ones everywhere.
        keyed = ["utt2spk", "segments", "utt2dur"] + ([] if (d / "segments").exists() else ["reco2dur"])
        for f in d.iterdir():
            if not f.is_file() or f.name in ("text", "wav.scp"):
                continue
            if f.name in keyed:
                lines = [x for x in f.read_text(encoding="utf-8").splitlines() if x.strip() and x.split()[0] not in dropped]
                (clean / f.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
            else:
                (clean / f.name).symlink_to(f.resolve())
        recordings, supervisions, _ = load_kaldi_data_dir(clean, sampling_rate=sampling_rate)
        cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions).trim_to_supervisions(
            keep_overlapping=False
        )
        return validate_and_write(cuts, out_dir, stage="prepare", rejects=rejects, check_audio=check_audio,
                                  shard=shard, source=d, options={"sampling_rate": sampling_rate})


def _check_wav_scp(wav_scp: Path, rejects: RejectLog) -> dict[str, str]:
    """Recording id -> reason for every ``wav.scp`` entry that cannot be read, each written to ``rejects``: a file
    that is missing or not audio, or a piped command (``... |``) unless command sources are allowed
    (:mod:`jstip.audio`)."""
    import soundfile as sf

    from jstip.audio import ALLOW_COMMANDS_ENV, command_sources_allowed, is_piped, read_wav_scp

    bad: dict[str, str] = {}
    for lineno, rec_id, source in read_wav_scp(wav_scp):
        if source is None:
            reason = f"{wav_scp} line {lineno}: no audio path"
        elif is_piped(source):
            if command_sources_allowed():
                continue
            reason = (f"{wav_scp} line {lineno}: a piped command ({source[:80]!r}); jstip does not run commands "
                      f"from a data folder unless you pass `jstip --allow-command-audio` (or {ALLOW_COMMANDS_ENV}=1)")
        elif not Path(source).is_file():
            reason = f"{wav_scp} line {lineno}: audio file {source} does not exist; fix the path"
        else:
            try:
                sf.info(source)
                continue
            except Exception:  # noqa: BLE001 -- soundfile raises several types; lhotse's other backends may read it
                from lhotse import Recording

                try:
                    Recording.from_file(source)
                    continue
                except Exception as err:  # noqa: BLE001
                    reason = f"{wav_scp} line {lineno}: {source} is not readable audio ({type(err).__name__})"
        bad[rec_id] = reason
        rejects.reject(rec_id, reason)
    return bad
