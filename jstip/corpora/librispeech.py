"""LibriSpeech from a local copy, through lhotse's recipe; its upper-case, punctuation-free text is kept as is."""

from __future__ import annotations

from pathlib import Path

from lhotse import CutSet

from jstip.cuts import validate_and_write


def prepare_librispeech(corpus_dir: str | Path, out_dir: str | Path, parts: str | list[str] = "auto",
                        num_jobs: int = 1) -> dict[str, CutSet]:
    """Prepare LibriSpeech parts found under ``corpus_dir`` (the folder holding ``LibriSpeech/`` or the parts).

    Writes lhotse's own manifests (``librispeech_{recordings,supervisions}_<part>.jsonl.gz``) and, per part,
    ``out_dir/<part>/cuts.jsonl.gz`` with ``rejected.jsonl`` for supervisions that cannot be used.

    Args:
        corpus_dir: local LibriSpeech copy.
        out_dir: output folder.
        parts: part names (``dev-clean``, ...) or ``auto`` for every part present.
        num_jobs: parallel jobs for lhotse's scan of the audio files.
    """
    from lhotse.recipes.librispeech import prepare_librispeech as lhotse_prepare

    corpus_dir = Path(corpus_dir)
    if (corpus_dir / "LibriSpeech").is_dir():
        corpus_dir = corpus_dir / "LibriSpeech"
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"LibriSpeech folder not found: {corpus_dir} (expected <dir>/LibriSpeech/<part>/...)")
    if parts not in ("auto", "mini_librispeech"):  # lhotse's own selectors; a named part must be there
        parts = [parts] if isinstance(parts, str) else list(parts)
        missing = [corpus_dir / p for p in parts if not (corpus_dir / p).is_dir()]
        if missing:
            present = sorted(p.name for p in corpus_dir.iterdir() if p.is_dir())
            raise FileNotFoundError(
                f"LibriSpeech part {missing[0].name!r} not found: {missing[0]} is missing (present: "
                f"{', '.join(present) or 'nothing'}); download https://www.openslr.org/resources/12/"
                f"{missing[0].name}.tar.gz and unpack it so that {missing[0]} exists, or leave the part out"
            )
    out_dir = Path(out_dir)
    manifests = lhotse_prepare(corpus_dir, dataset_parts=parts, output_dir=out_dir, num_jobs=num_jobs)
    if not manifests:
        raise FileNotFoundError(
            f"no LibriSpeech parts (dev-clean, train-clean-100, ...) with .trans.txt files found under {corpus_dir}"
        )
    out = {}
    for part, m in manifests.items():
        cuts = CutSet.from_manifests(recordings=m["recordings"], supervisions=m["supervisions"]).trim_to_supervisions(
            keep_overlapping=False
        )
        out[part] = validate_and_write(cuts, out_dir / part, stage="prepare")
    return out
