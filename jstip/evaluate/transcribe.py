"""Transcripts of a folder of audio, a Kaldi ``wav.scp`` or a cut manifest with a trained model.

One line per input in ``--out`` (``{"id", "hyp"}``, the format ``jstip score`` reads); an input whose audio cannot be
used is not transcribed and goes to ``rejected.jsonl`` beside ``--out`` with the reason, so that inputs = lines +
rejects.
"""

from __future__ import annotations

from pathlib import Path

from jstip.evaluate.decode import LOOP_THRESHOLD

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
        from jstip.audio import is_piped, read_wav_scp

        for lineno, utt_id, source in read_wav_scp(path):
            if source is None:
                rejects.reject(utt_id, f"{path}:{lineno}: no audio path")
            elif is_piped(source):
                rejects.reject(utt_id, f"{path}:{lineno}: a piped command; transcribe reads audio files only "
                                       "(decode it to a file, or import the folder with `jstip prepare import "
                                       "--kaldi-dir` and transcribe its cut manifest)")
            else:
                entries.append((utt_id, source))
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


def transcribe(checkpoint: str | Path, in_path: str | Path, out_path: str | Path, num_beams: int = 1,
               batch_size: int = 8, max_new_tokens: int = 256, threads: int | None = None, progress: bool = True,
               loop_threshold: float = LOOP_THRESHOLD, ctc_weight: float = 0.0):
    """Transcribe the inputs of :func:`cuts_of_input` into ``out_path`` (one ``{"id", "hyp"}`` line per input, in
    input order) and reject the unusable ones into ``rejected.jsonl`` beside it.

    Returns:
        (the number of transcripts, the :class:`jstip.rejects.RejectLog`).

    Raises:
        jstip.errors.InputError: the model or the input cannot be used (a bad manifest or checkpoint, no audio in a
            folder), with the reason.
    """
    import torch

    from jstip.evaluate.decode import asr_prompt_ids, decode_cuts, evaluation_rejects, hypothesis_framing
    from jstip.evaluate.rescore import rescorer_for
    from jstip.jsonl import write_jsonl
    from jstip.train.run import autocast, load_checkpoint

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    rejects = evaluation_rejects(out.parent, "transcribe")
    from jstip.errors import InputError

    try:  # the model and the inputs: what is wrong with them is the user's to fix (a bug in decoding is not)
        model, tokenizer, config = load_checkpoint(checkpoint)
        cuts = cuts_of_input(in_path, rejects)
    except (FileNotFoundError, ValueError) as err:  # ManifestError and CheckpointFileError are ValueErrors
        raise InputError(str(err)) from err
    torch.set_num_threads(int(threads or config.get("num_threads") or torch.get_num_threads()))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    with autocast(device, "auto"):
        hyps = decode_cuts(model, tokenizer, cuts, asr_prompt_ids(tokenizer, config), num_beams=num_beams,
                           batch_size=batch_size, max_new_tokens=max_new_tokens, rejects=rejects, progress=progress,
                           hypothesis_ids=hypothesis_framing(tokenizer, config),
                           loop_threshold=loop_threshold, rescorer=rescorer_for(model, num_beams, ctc_weight))
    tmp = out.with_name(out.name + ".tmp")
    write_jsonl(tmp, ({"id": cut.id, "hyp": hyps[cut.id]} for cut in cuts if cut.id in hyps))
    tmp.replace(out)
    return len(hyps), rejects
