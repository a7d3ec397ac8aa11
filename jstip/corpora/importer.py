"""Import an existing lhotse manifest folder or a Kaldi data folder as jstip cuts."""

from __future__ import annotations

import tempfile
from pathlib import Path

from lhotse import CutSet, RecordingSet, SupervisionSet

from jstip.corpora.validate import validate_and_write
from jstip.rejects import RejectLog


def import_lhotse_dir(manifest_dir: str | Path, out_dir: str | Path) -> CutSet:
    """Cuts from a folder with ``*cuts*.jsonl.gz``, or ``*recordings*`` + ``*supervisions*`` manifests."""
    d = Path(manifest_dir)
    cut_files = sorted(d.glob("*cuts*.jsonl*"))
    if cut_files:
        cuts = CutSet.from_cuts(c for f in cut_files for c in CutSet.from_file(f))
    else:
        recs = sorted(d.glob("*recordings*.jsonl*"))
        sups = sorted(d.glob("*supervisions*.jsonl*"))
        if not recs or not sups:
            raise FileNotFoundError(
                f"{d} has no lhotse manifests: expected *cuts*.jsonl.gz, or *recordings*.jsonl.gz and "
                "*supervisions*.jsonl.gz"
            )
        recordings = RecordingSet.from_recordings(r for f in recs for r in RecordingSet.from_file(f))
        supervisions = SupervisionSet.from_segments(s for f in sups for s in SupervisionSet.from_file(f))
        cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions).trim_to_supervisions(
            keep_overlapping=False
        )
    return validate_and_write(cuts, out_dir, stage="prepare")


def import_kaldi_dir(kaldi_dir: str | Path, out_dir: str | Path, sampling_rate: int = 16000) -> CutSet:
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
        # Without a segments file, utterance ids are recording ids: drop the rejected ones everywhere.
        keyed = ["utt2spk", "segments", "utt2dur"] + ([] if (d / "segments").exists() else ["wav.scp", "reco2dur"])
        for f in d.iterdir():
            if not f.is_file() or f.name == "text":
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
        return validate_and_write(cuts, out_dir, stage="prepare", rejects=rejects)
