"""``jstip evaluate --whisper``: a whole Whisper model (its own decoder) scored like any jstip model.

The baseline a speech engineer would otherwise pick: Whisper zero-shot with the decoding defaults of openai-whisper
and faster-whisper (temperature fallback, see :mod:`jstip.model.whisper_decode`), or greedy. It writes the same
``metrics.json`` / ``hyps.jsonl`` as :func:`jstip.evaluate.decode.evaluate_checkpoint`, so reports put it beside
jstip's models.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

DECODINGS = ("fallback", "greedy")


def evaluate_whisper(model: str | Path | None, cuts_path: str | Path, out_dir: str | Path,
                     decoding: str = "fallback", batch_size: int = 8, max_utterances: int | None = None,
                     normalizer: str = "english-v2", threads: int | None = None, seed: int = 0,
                     engine: str = "auto", exposure_cuts=(), exposure_edges=None, progress: bool = True) -> dict:
    """Transcribe ``cuts_path`` with Whisper and write ``out_dir/{metrics.json,hyps.jsonl}``.

    Args:
        model: a packaged name (``tiny.en``, ``base``), a Hugging Face Whisper folder or a CTranslate2 model.bin;
            None: ``tiny.en``.
        decoding: ``fallback`` (temperatures 0, 0.2 ... 1.0, openai-whisper's default) or ``greedy``.
        seed: seeds the sampling of the fallback.
        engine: ``auto`` (CTranslate2 for a model.bin when the package is installed, else PyTorch), ``torch`` or
            ``ctranslate2`` (:class:`jstip.model.whisper_decode.WhisperTranscriber`).
        exposure_cuts, exposure_edges: training manifests whose entity annotations give EER per exposure bucket
            (the jstip model's, so that both systems are bucketed alike).

    Returns:
        The ``metrics.json`` object (without the per-utterance rows).
    """
    import torch
    from tqdm import tqdm

    from jstip.audio import load_cut_audio_or_reject
    from jstip.evaluate.decode import evaluation_rejects, load_cuts
    from jstip.scoring.files import refs_from_cuts
    from jstip.scoring.score import score, write_scores
    from jstip.model.whisper import load_whisper
    from jstip.model.whisper_decode import DEFAULT_TEMPERATURES, WhisperTranscriber

    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    whisper = load_whisper(model)
    temperatures = DEFAULT_TEMPERATURES if decoding == "fallback" else (0.0,)
    transcriber = WhisperTranscriber(whisper, temperatures=temperatures, seed=seed, engine=engine, threads=threads)

    rejects = evaluation_rejects(out)
    cuts = load_cuts(cuts_path, max_utterances, rejects)
    refs = refs_from_cuts(cuts)
    ids, audios = [], []
    for cut in cuts:
        audio = load_cut_audio_or_reject(cut, rejects)
        if audio is None:
            continue
        ids.append(cut.id)
        audios.append(audio)
    bar = tqdm(total=len(audios), desc=f"{whisper.name}", unit="utt", disable=not progress, dynamic_ncols=True)
    try:
        results = transcriber.transcribe(audios, batch_size=batch_size, progress=bar.update)
    finally:
        bar.close()
    hyps = {i: r.text for i, r in zip(ids, results)}
    from jstip.entities import load_exposure

    exposure, source = load_exposure(exposure_cuts)
    result = score(refs, hyps, normalizer=normalizer, exposure=exposure, exposure_edges=exposure_edges,
                   exposure_source=source)
    fallbacks = sum(r.temperature > 0 for r in results)
    result["evaluate"] = {
        "system": whisper.name, "model": whisper.source, "cuts": str(Path(cuts_path).resolve()),
        "decoding": ("temperature fallback (0, 0.2, ..., 1.0; best of 5; compression ratio 2.4, log-prob -1.0)"
                     if decoding == "fallback" else "greedy"),
        "fallback_utterances": fallbacks, "max_utterances": max_utterances, "device": "cpu",
        "engine": transcriber.engine.name,
    }
    write_scores(result, out)
    return {k: v for k, v in result.items() if k != "utterances"}
