"""A cut manifest and its audio written as lhotse Shar (``jstip export-shar``): shards of a chosen number of cuts,
each a cuts file and a tar of the cuts' audio, read back sequentially by training (:mod:`jstip.data.sources`), by
lhotse's ``CutSet.from_shar`` and by NeMo's Shar data path.

Layout of OUT: ``cuts.000000.jsonl.gz`` + ``recording.000000.tar``, ``cuts.000001.jsonl.gz`` + ... Every cut is
accounted for: a cut whose audio cannot be read (a missing file, a ``command`` source jstip does not run, a broken
file) is written to the rejected list, which lies beside OUT (``OUT.rejected.jsonl``), not in it: readers take every
file of a Shar directory for a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AUDIO_FORMATS = ("flac", "wav")


@dataclass
class SharSummary:
    out: Path
    cuts: int
    shards: int
    rejected: int
    rejects_path: Path


def rejects_path_for(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    return out_dir.parent / f"{out_dir.name}.rejected.jsonl"


def write_shar(in_path: str | Path, out_dir: str | Path, shard_size: int = 1000, audio_format: str = "flac",
               progress: bool = True) -> SharSummary:
    """Write the cuts of ``in_path`` and their audio as Shar shards of ``shard_size`` cuts in ``out_dir``.

    Raises:
        FileNotFoundError: no such manifest.
        ValueError: a bad shard size or format, or ``out_dir`` already holds files (named).
    """
    import warnings

    from lhotse.shar import SharWriter
    from tqdm import tqdm

    from jstip.cuts import CutScreen
    from jstip.manifests import iter_cuts
    from jstip.rejects import RejectLog

    if shard_size < 1:
        raise ValueError(f"--shard-size {shard_size}: give a number of cuts per shard (e.g. 1000)")
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio format {audio_format!r}: choose one of {', '.join(AUDIO_FORMATS)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} is not empty: give a new directory (a Shar directory is read whole)")
    out_dir.mkdir(parents=True, exist_ok=True)
    rejects_path = rejects_path_for(out_dir)
    rejects_path.unlink(missing_ok=True)
    rejects = RejectLog(rejects_path, "export-shar")
    screen = CutScreen(alignment=False, audio="sources")  # no command is run, a missing file named
    written = 0
    with SharWriter(str(out_dir), fields={"recording": audio_format}, shard_size=shard_size) as writer, \
            tqdm(desc="export-shar", unit="cut", disable=not progress) as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lhotse warns about every unused field (features, custom)
        for cut in iter_cuts(in_path, rejects):
            bar.update(1)
            reason = screen.reason(cut)
            if reason is None and not cut.has_recording:
                reason = "cut has no recording: nothing to write"
            if reason is None:
                try:
                    writer.write(cut)  # reads the audio before it writes anything of the cut
                    written += 1
                    continue
                except Exception as err:  # noqa: BLE001 - a cut whose audio cannot be read is rejected, not fatal
                    reason = f"audio could not be read: {type(err).__name__}: {err}"
            rejects.reject(cut.id, reason)
    shards = len(list(out_dir.glob("cuts.*.jsonl*")))
    return SharSummary(out_dir, written, shards, rejects.count, rejects_path)
