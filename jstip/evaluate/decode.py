"""Decoding a test set with a trained speech-LLM: the ASR hypotheses that ``jstip evaluate`` scores.

:func:`evaluate_checkpoint` is the whole of ``jstip evaluate``: load, decode, score, spoken tasks, write.

The prompt is the one the model was trained on (``jstip.data.render``): ``BOS <asr>`` (or the text prompt of
``data.render.asr_prompt`` in the run's config) followed by the cut's audio (and, for a model with a first pass,
its first-pass transcript); the model continues with the transcript and EOS. Decoding is greedy, or beam search
with ``num_beams > 1`` (Hugging Face ``generate`` under :meth:`jstip.model.speechlm.SpeechLM.generate`).

Cuts are decoded in batches of similar duration (sorted longest first, so that a batch pads little and the first
batch shows at once whether memory suffices). A batch may generate at most ``min(max_new_tokens, 10 +
ceil(tokens_per_second * longest duration))`` tokens: an untrained model that never emits EOS then stops at a length
tied to the audio, not at the global maximum. A cut whose audio cannot be read is logged to ``rejected.jsonl``
and left without a hypothesis (scoring lists it under ``missing_ids`` and scores it as an empty hypothesis).

Loops. An LLM decoder can fall into a repetition loop ("before the and the and the ...") that runs to the token budget
and costs dozens of insertions. As Whisper does, a hypothesis whose zlib compression ratio is above
``loop_threshold`` (2.4, Whisper's figure) is decoded again, here with every repeated 3-gram of tokens forbidden (no
sampling: decoding stays deterministic); hypotheses that do not loop are untouched. ``loop_threshold=0`` turns this off.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path


log = logging.getLogger(__name__)

LOOP_THRESHOLD = 2.4
"""A hypothesis compressing better than this (zlib, as Whisper measures it) is a repetition loop: decoded again."""
LOOP_NO_REPEAT_NGRAM = 3
"""The re-decoding of a loop forbids every repeated n-gram of this many tokens."""

TOKENS_PER_SECOND = 25.0
"""Cap of generated tokens per second of audio (read speech is ~3 words/s; a 512-token BPE needs ~3 tokens/word)."""


def render_config(config: Mapping | None):
    """The ``RenderConfig`` of a training run's config dict (``data.render``), defaults for missing keys."""
    from omegaconf import OmegaConf

    from jstip.data.render import RenderConfig

    render = ((config or {}).get("data") or {}).get("render") or {}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RenderConfig), render))


def asr_prompt_ids(tokenizer, config: Mapping | None = None) -> list[int]:
    """The ids before the speech in the ASR format the run trained on: ``[BOS] + <asr>`` (see ``Renderer.asr``)."""
    from jstip.data.render import Renderer

    renderer = Renderer(tokenizer, render_config(config))
    bos = [renderer.bos_id] if renderer.cfg.add_bos and renderer.bos_id is not None else []
    return bos + list(renderer.prompt_ids)


def hypothesis_framing(tokenizer, config: Mapping | None = None):
    """``Renderer.hypothesis_ids`` of the run's rendering: how a first-pass transcript is framed in its prompts."""
    from jstip.data.render import Renderer

    return Renderer(tokenizer, render_config(config)).hypothesis_ids


def bos_ids(tokenizer, config: Mapping | None = None) -> list[int]:
    """``[BOS]`` when the run's documents start with BOS (``data.render.add_bos``), else ``[]``."""
    cfg = render_config(config)
    return [tokenizer.bos_token_id] if cfg.add_bos and tokenizer.bos_token_id is not None else []


def load_cuts(cuts_path, max_utterances: int | None = None, rejects=None):
    """The cuts of a test manifest or Shar directory, eagerly, the first ``max_utterances`` of them when given. With ``rejects`` (a
    ``jstip.rejects.RejectLog``) the cuts that cannot be scored are written there with the reason and left out: a
    duplicate id, no usable reference, entity offsets that do not slice the entity
    (:func:`jstip.cuts.screen_cuts`). Audio faults (a missing file, a 'command' source, NaN samples...)
    are found when the audio is read: such a cut is rejected and scored as missing."""
    from lhotse import CutSet

    from jstip.data.sources import is_shar_dir, read_shar

    if is_shar_dir(cuts_path):  # a Shar directory (jstip export-shar): the cuts with their audio
        cuts = CutSet.from_cuts(read_shar(cuts_path))
    elif rejects is not None:
        from jstip.manifests import read_cuts

        cuts = read_cuts(cuts_path, rejects)  # a bad manifest line: FILE:LINE and the reason
    else:
        cuts = CutSet.from_file(cuts_path)
    if max_utterances is not None:
        cuts = cuts.subset(first=max_utterances)
    if rejects is not None:
        from jstip.cuts import screen_cuts

        return screen_cuts(cuts, rejects, what="test", alignment=False, sources=False).to_eager()
    return cuts.to_eager()


def evaluation_rejects(out: Path, stage: str = "evaluate"):
    """A fresh ``out/rejected.jsonl`` (of ``stage``): an evaluation rewrites all of its outputs."""
    from jstip.rejects import RejectLog

    (out / "rejected.jsonl").unlink(missing_ok=True)
    return RejectLog(out / "rejected.jsonl", stage)


def token_budget(duration: float, max_new_tokens: int, tokens_per_second: float = TOKENS_PER_SECOND) -> int:
    """Most tokens generated for ``duration`` seconds of audio: ``min(max_new_tokens, 10 + ceil(rate * duration))``."""
    return max(1, min(int(max_new_tokens), 10 + math.ceil(tokens_per_second * max(0.0, float(duration)))))


def decode_cuts(
    model,
    tokenizer,
    cuts: Iterable,
    prompt_ids: list[int],
    num_beams: int = 1,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    tokens_per_second: float = TOKENS_PER_SECOND,
    rejects=None,
    progress: bool = True,
    hypothesis_ids=None,
    loop_threshold: float = LOOP_THRESHOLD,
    loops: list | None = None,
    rescorer=None,
) -> dict[str, str]:
    """ASR hypotheses of ``cuts``: cut id -> transcript (special tokens removed, stripped).

    Args:
        model: a ``SpeechLM`` (``generate(prompts, eos_id, pad_id, max_new_tokens, num_beams, batch_size)``).
        tokenizer: the run's tokenizer (special tokens added).
        cuts: lhotse cuts (any iterable; read once).
        prompt_ids: ids before the audio (:func:`asr_prompt_ids`).
        num_beams: 1 = greedy, else beam search with this many beams.
        batch_size: cuts per ``generate`` call.
        max_new_tokens: hard cap of generated tokens (see the module docstring for the per-batch budget).
        rejects: a ``jstip.rejects.RejectLog`` for cuts whose audio cannot be read (None: only logged).
        progress: show a tqdm bar over utterances.
        hypothesis_ids: frames a first-pass transcript, for a model with ``model.first_pass``
            (:func:`hypothesis_framing` of the run's config; default: the default rendering's).
        loop_threshold: a hypothesis with a higher compression ratio is decoded again without repeated 3-grams (see
            the module docstring); 0 = never.
        loops: when given, the ids of the cuts decoded again are appended to it.
        rescorer: a :class:`jstip.evaluate.rescore.Rescorer` (a model with a first pass, ``num_beams > 1``): the
            transcript is chosen among the n-best and the CTC draft by LLM and CTC score together; it keeps the
            n-best lists.
    """
    from tqdm import tqdm

    from jstip.audio import load_cut_audio_or_reject
    from jstip.cuts import too_long_for_encoder
    from jstip.model.speechlm import asr_prompts
    from jstip.model.whisper_decode import compression_ratio

    if hypothesis_ids is None and getattr(model, "first_pass", None) is not None:
        hypothesis_ids = hypothesis_framing(tokenizer)

    kept = []
    for cut in cuts:
        reason = too_long_for_encoder(cut, getattr(model, "encoder", None), getattr(model, "frame_shift", None))
        if reason is None:
            kept.append(cut)
        else:  # rejected, and scored as missing like unreadable audio
            log.warning("%s: %s", cut.id, reason)
            if rejects is not None:
                rejects.reject(cut.id, reason)
    cuts = sorted(kept, key=lambda c: (-float(c.duration), c.id))
    hyps: dict[str, str] = {}
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id

    def text_of(ids) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True).strip()

    bar = tqdm(total=len(cuts), desc="decoding", unit="utt", disable=not progress, dynamic_ncols=True)
    try:
        for start in range(0, len(cuts), batch_size):
            batch, audios = [], []
            for cut in cuts[start:start + batch_size]:
                audio = load_cut_audio_or_reject(cut, rejects)
                if audio is None:
                    bar.update(1)
                    continue
                batch.append(cut)
                audios.append(audio)
            if batch:
                budget = token_budget(max(float(c.duration) for c in batch), max_new_tokens, tokens_per_second)
                drafts = model.hypotheses(audios, log_probs=True) if rescorer is not None else None
                prompts = asr_prompts(model, prompt_ids, audios, hypothesis_ids,
                                      drafts=None if drafts is None else [d[0] for d in drafts])

                def run(rows: list[int], **kw) -> list[str]:
                    n = num_beams if rescorer is not None else 1
                    out = model.generate([prompts[i] for i in rows], eos_id=eos, pad_id=pad, max_new_tokens=budget,
                                         num_beams=num_beams, batch_size=len(rows), num_return_sequences=n, **kw)
                    if rescorer is not None:
                        out = [rescorer.choose(batch[i].id, prompts[i], out[j * n:(j + 1) * n], drafts[i][0],
                                               drafts[i][1], eos, text_of) for j, i in enumerate(rows)]
                    return [text_of(ids) for ids in out]

                texts = run(list(range(len(batch))))
                looped = [i for i, t in enumerate(texts) if loop_threshold and compression_ratio(t) > loop_threshold]
                if looped:
                    for i, text in zip(looped, run(looped, no_repeat_ngram_size=LOOP_NO_REPEAT_NGRAM)):
                        texts[i] = text
                        log.info("%s: repetition loop (compression ratio above %g): decoded again without repeated "
                                 "%d-grams", batch[i].id, loop_threshold, LOOP_NO_REPEAT_NGRAM)
                        if loops is not None:
                            loops.append(batch[i].id)
                for cut, text in zip(batch, texts):
                    hyps[cut.id] = text
                bar.update(len(batch))
    finally:
        bar.close()
    return hyps


def training_log_rows(exp_dir: str | Path, max_step: int | None = None) -> list[str]:
    """The lines of a run's ``metrics.jsonl`` up to ``max_step`` (the checkpoint's step), as written."""
    path = Path(exp_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    kept = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a killed run
            step = row.get("step") if isinstance(row, dict) else None
            if max_step is not None and isinstance(step, (int, float)) and step > max_step:
                continue
            kept.append(line.rstrip("\n"))
    return kept


def evaluate_checkpoint(checkpoint: str | Path, cuts_path: str | Path, out_dir: str | Path, num_beams: int = 1,
                        batch_size: int = 8, max_utterances: int | None = None, max_new_tokens: int = 256,
                        spoken_tasks: bool | Sequence[str] = True, voice: str = "espeak:en-us+f3@160", spoken_items: int | None = None,
                        shots: int = 5, response_tokens: int = 128, normalizer: str = "english-v2",
                        device: str | None = None, threads: int | None = None, progress: bool = True,
                        listen_utterances: int | None = 100, precision: str = "auto",
                        exposure_cuts=None, exposure_edges=None, loop_threshold: float = LOOP_THRESHOLD,
                        ctc_weight: float = 0.0) -> dict:
    """Decode ``cuts_path`` with ``checkpoint`` and write ``out_dir/{metrics.json,hyps.jsonl}``.

    Also writes ``out_dir/train/metrics.jsonl`` (the run's training log up to the checkpoint's step, for the learning
    curves of ``jstip report``), ``out_dir/spoken_tasks/<task>.jsonl`` (per-item results) and
    ``out_dir/rejected.jsonl`` (cuts whose audio could not be read, if any).

    Args:
        checkpoint: a checkpoint of ``jstip train``; its run folder (``checkpoint/../..``) holds the tokenizer and
            ``metrics.jsonl``.
        cuts_path: the test cut manifest (references and entities from its supervisions).
        num_beams, batch_size, max_new_tokens: decoding (:func:`decode_cuts`); ``max_utterances``: first N cuts only.
        spoken_tasks, voice, spoken_items, shots, response_tokens: the spoken tasks
            (:func:`jstip.evaluate.spoken_eval.run_spoken_tasks`); ``spoken_tasks``: all (True), none (False) or
            the names of those to run.
        normalizer: the WER normaliser (:func:`jstip.scoring.score.score`).
        precision: ``auto`` (bfloat16 autocast where the device computes it natively), ``bf16`` or ``fp32``.
        exposure_cuts: cut manifests that count how often each entity was heard in training (EER per exposure
            bucket, ``exposure_edges``); None: the run's own ``data.train_cuts``; ``()``: none.
        listen_utterances: utterances of the "does it listen" figure (:mod:`jstip.evaluate.listening`: loss per
            token with own vs another utterance's audio), 0 to skip; None: all.
        device: ``cpu``, ``cuda``, ``cuda:1``...; None: the first GPU if there is one, else the CPU.
        threads: torch CPU threads; None: the run config's ``num_threads`` (else torch's default). On a busy CPU,
            more threads than free cores makes decoding many times slower.
        ctc_weight: for a model with a first pass and ``num_beams > 1``, the CTC share of joint CTC/LLM rescoring of
            the n-best and the CTC draft (:mod:`jstip.evaluate.rescore`; the lists go to ``out_dir/nbest.jsonl``);
            0 = the beam's own best.

    Returns:
        The ``metrics.json`` object.
    """
    import torch

    from jstip.scoring.files import refs_from_cuts
    from jstip.scoring.score import score, write_scores
    from jstip.train.run import load_checkpoint

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = Path(checkpoint)
    model, tokenizer, config = load_checkpoint(ckpt_path)
    threads = threads or config.get("num_threads")
    if threads:
        torch.set_num_threads(int(threads))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    from jstip.model.export import is_export
    from jstip.train.checkpoint_file import read_checkpoint

    exported = is_export(ckpt_path)
    if exported:  # a `jstip export` folder: its step is in config.json, its training log stays behind
        step = json.loads((ckpt_path / "config.json").read_text(encoding="utf-8")).get("step")
    else:
        meta = read_checkpoint(ckpt_path, mmap=True)
        step = meta.get("global_step")
        del meta

    rejects = evaluation_rejects(out)
    cuts = load_cuts(cuts_path, max_utterances, rejects)
    refs = refs_from_cuts(cuts)
    from jstip.train.run import autocast

    from jstip.evaluate.rescore import rescorer_for

    (out / "nbest.jsonl").unlink(missing_ok=True)
    rescorer = rescorer_for(model, num_beams, ctc_weight)
    with autocast(device, precision):
        loops: list[str] = []
        hyps = decode_cuts(model, tokenizer, cuts, asr_prompt_ids(tokenizer, config), num_beams=num_beams,
                           batch_size=batch_size, max_new_tokens=max_new_tokens, rejects=rejects, progress=progress,
                           loop_threshold=loop_threshold, loops=loops, rescorer=rescorer,
                           hypothesis_ids=hypothesis_framing(tokenizer, config))
    if rescorer is not None:
        rescorer.write(out / "nbest.jsonl")
    if exposure_cuts is None:  # the run's own training manifests
        train_cuts = (config.get("data") or {}).get("train_cuts")
        exposure_cuts = [train_cuts] if isinstance(train_cuts, str) else list(train_cuts or [])
        gone = [p for p in exposure_cuts if not Path(p).is_file()]
        if gone:
            log.warning("no EER by exposure: the run's training manifest %s is not here; give --exposure-cuts", gone[0])
            exposure_cuts = []
    from jstip.entities import load_exposure

    exposure, source = load_exposure(exposure_cuts)
    result = score(refs, hyps, normalizer=normalizer, exposure=exposure, exposure_edges=exposure_edges,
                   exposure_source=source)
    if listen_utterances != 0:
        from jstip.evaluate.listening import listening_figure

        with autocast(device, precision):
            result["listening"] = listening_figure(model, tokenizer, config, cuts, max_utterances=listen_utterances,
                                                   batch_size=batch_size)

    if spoken_tasks:
        from jstip.evaluate.spoken_eval import run_spoken_tasks

        with autocast(device, precision):
            summary, per_item = run_spoken_tasks(model, tokenizer, bos_ids(tokenizer, config), voice=voice,
                                                 limit=spoken_items, shots=shots, max_new_tokens=response_tokens,
                                                 batch_size=batch_size, progress=progress,
                                                 tasks=None if spoken_tasks is True else list(spoken_tasks))
        result.update(summary)
        task_dir = out / "spoken_tasks"
        task_dir.mkdir(exist_ok=True)
        for name, rows in per_item.items():
            with open(task_dir / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")

    exp_dir = ckpt_path.resolve().parent.parent
    log_rows = [] if exported else training_log_rows(exp_dir, step)
    train_log = None
    if log_rows:
        train_log = out / "train" / "metrics.jsonl"
        train_log.parent.mkdir(exist_ok=True)
        train_log.write_text("\n".join(log_rows) + "\n", encoding="utf-8")
    else:
        log.warning("no training log at %s: the report will have no learning curve", exp_dir / "metrics.jsonl")
    result["evaluate"] = {
        "checkpoint": str(ckpt_path.resolve()), "step": step, "cuts": str(Path(cuts_path).resolve()),
        "decoding": "greedy" if num_beams == 1 else f"beam search, {num_beams} beams",
        "num_beams": num_beams, "max_new_tokens": max_new_tokens, "max_utterances": max_utterances,
        "loop_threshold": loop_threshold, "loops_decoded_again": sorted(loops),
        "ctc_weight": rescorer.weight if rescorer is not None else 0.0,
        "rescored": rescorer.summary() if rescorer is not None else None,
        "precision": precision,
        "device": str(device),
        "training_log": str(exp_dir / "metrics.jsonl") if log_rows else None,
        "training_log_copy": str(train_log) if train_log else None,
        "spoken_tasks": {"voice": voice, "items_per_task": spoken_items, "shots": shots,
                         "response_tokens": response_tokens,
                         "tasks": None if spoken_tasks is True else list(spoken_tasks)} if spoken_tasks else None,
    }
    write_scores(result, out)
    return {k: v for k, v in result.items() if k != "utterances"}


__all__ = ["TOKENS_PER_SECOND", "asr_prompt_ids", "bos_ids", "decode_cuts", "evaluate_checkpoint", "render_config",
           "token_budget", "training_log_rows"]
