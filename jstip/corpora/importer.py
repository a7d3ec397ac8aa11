"""Import an existing lhotse manifest folder or a Kaldi data folder as jstip cuts."""

from __future__ import annotations

from pathlib import Path

from lhotse import CutSet, RecordingSet, SupervisionSet

from jstip.corpora.validate import validate_and_write


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
    recordings, supervisions, _ = load_kaldi_data_dir(d, sampling_rate=sampling_rate)
    if supervisions is None:
        raise FileNotFoundError(f"{d} has no 'text' file: transcripts are needed")
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions).trim_to_supervisions(
        keep_overlapping=False
    )
    return validate_and_write(cuts, out_dir, stage="prepare")
