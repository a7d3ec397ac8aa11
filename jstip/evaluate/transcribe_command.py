"""``jstip transcribe``: transcripts of a folder of audio, a Kaldi ``wav.scp`` or a cut manifest with a trained model.

One line per input in ``--out`` (``{"id", "hyp"}``, the format ``jstip score`` reads); an input whose audio cannot be
used is not transcribed and goes to ``rejected.jsonl`` beside ``--out`` with the reason, so that inputs = lines +
rejects.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".sph", ".m4a")


def cuts_of_input(path: str | Path, rejects):
    """Cuts of ``path``: a folder of audio files (searched recursively; id = the path below the folder without its
    suffix, ``/`` as ``_``), a Kaldi ``wav.scp`` (``<id> <path>``; piped entries are rejected), or a lhotse cut
    manifest. A file that cannot be opened as audio is rejected with the reason."""
    from lhotse import MonoCut, Recording

    from jstip.manifests import read_cuts

    path = Path(path)
    entries: list[tuple[str, str]] = []
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
            entries.append((str(f.relative_to(path).with_suffix("")).replace("/", "_"), str(f)))
        if not entries:
            raise FileNotFoundError(f"{path}: no audio file ({', '.join(AUDIO_SUFFIXES)}) in this folder")
    elif path.name == "wav.scp" or path.suffix == ".scp":
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.strip().split(maxsplit=1)
            if not parts:
                continue
            if len(parts) < 2:
                rejects.reject(parts[0], f"{path}:{lineno}: no audio path")
            elif parts[1].rstrip().endswith("|"):
                rejects.reject(parts[0], f"{path}:{lineno}: a piped command; transcribe reads audio files only "
                                         "(decode it to a file, or import the folder with `jstip prepare import "
                                         "--kaldi-dir` and transcribe its cut manifest)")
            else:
                entries.append((parts[0], parts[1]))
    else:
        return list(read_cuts(path, rejects))
    cuts = []
    for utt_id, source in entries:
        try:
            if not Path(source).is_file():
                raise FileNotFoundError(f"{source} does not exist")
            rec = Recording.from_file(source, recording_id=utt_id)
        except Exception as err:  # noqa: BLE001 -- lhotse raises many types for a file that is not audio
            rejects.reject(utt_id, f"{source}: not readable audio ({type(err).__name__}: {str(err)[:120]})")
            continue
        cuts.append(MonoCut(id=utt_id, start=0.0, duration=rec.duration, channel=0, recording=rec))
    return cuts


@click.command(name="transcribe", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "checkpoint", required=True, type=click.Path(exists=True),
              help="A checkpoint written by `jstip train` (EXP/checkpoints/last.ckpt) or a folder written by "
                   "`jstip export`.")
@click.option("--in", "in_path", required=True, type=click.Path(exists=True),
              help="A folder of audio files, a Kaldi wav.scp, or a lhotse cut manifest (*.jsonl.gz).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Transcripts, jsonl: one {id, hyp} per input (what `jstip score --hyp` reads).")
@click.option("--beam", "num_beams", default=1, show_default=True, type=click.IntRange(min=1),
              help="Beams of beam search (1 = greedy).")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Utterances per generate call.")
@click.option("--max-new-tokens", default=256, show_default=True, type=click.IntRange(min=1),
              help="Most tokens per transcript (a batch is also capped at 10 + 25 tokens per second of audio).")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="Torch CPU threads.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def cli(checkpoint: str, in_path: str, out_path: str, num_beams: int, batch_size: int, max_new_tokens: int,
        threads: int | None, progress: bool) -> None:
    """Transcribe a folder of audio, a wav.scp or a cut manifest with a trained model.

    Writes OUT (one {"id", "hyp"} line per input, in input order) and rejected.jsonl beside it (inputs whose audio
    cannot be used, with the reason).

    \b
    Example:
      jstip transcribe --model exp/stage2/checkpoints/last.ckpt --in recordings/ --out exp/recordings.hyp.jsonl
      jstip transcribe --model exp/stage2/checkpoints/last.ckpt --in data/test/cuts.jsonl.gz --out test.hyp.jsonl
      jstip score --ref data/test/cuts.jsonl.gz --hyp test.hyp.jsonl --out exp/test_scored
    """
    import torch

    from jstip.errors import InputError
    from jstip.evaluate.decode import asr_prompt_ids, hypothesis_framing, decode_cuts, evaluation_rejects
    from jstip.manifests import ManifestError
    from jstip.train.checkpoint_file import CheckpointFileError
    from jstip.train.run import autocast, load_checkpoint

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    rejects = evaluation_rejects(out.parent, "transcribe")
    try:
        model, tokenizer, config = load_checkpoint(checkpoint)
        cuts = cuts_of_input(in_path, rejects)
    except (ManifestError, CheckpointFileError) as err:
        raise InputError(str(err)) from err
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    torch.set_num_threads(int(threads or config.get("num_threads") or torch.get_num_threads()))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    with autocast(device, "auto"):
        hyps = decode_cuts(model, tokenizer, cuts, asr_prompt_ids(tokenizer, config), num_beams=num_beams,
                           batch_size=batch_size, max_new_tokens=max_new_tokens, rejects=rejects, progress=progress,
                           hypothesis_ids=hypothesis_framing(tokenizer, config))
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for cut in cuts:
            if cut.id in hyps:
                f.write(json.dumps({"id": cut.id, "hyp": hyps[cut.id]}, ensure_ascii=False) + "\n")
    tmp.replace(out)
    click.echo(f"{len(hyps)} transcripts -> {out}; {rejects.count} rejected -> {rejects.path}")
