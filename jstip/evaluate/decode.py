"""Decoding a test set with a trained speech-LLM: the ASR hypotheses that ``jstip evaluate`` scores.

The prompt is the one the model was trained on (``jstip.data.render``): ``BOS <asr>`` (or the text prompt of
``data.render.asr_prompt`` in the run's config) followed by the cut's audio; the model continues with the transcript
and EOS. Decoding is greedy, or beam search with ``num_beams > 1`` (Hugging Face ``generate`` under
:meth:`jstip.model.speechlm.SpeechLM.generate`).

Cuts are decoded in batches of similar duration (sorted longest first, so that a batch pads little and the first
batch shows at once whether memory suffices). A batch may generate at most ``min(max_new_tokens, 10 +
ceil(tokens_per_second * longest duration))`` tokens: an untrained model that never emits EOS then stops at a length
tied to the audio, not at the global maximum. A cut whose audio cannot be read is logged to ``rejected.jsonl``
and left without a hypothesis (scoring lists it under ``missing_ids`` and scores it as an empty hypothesis).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

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


def bos_ids(tokenizer, config: Mapping | None = None) -> list[int]:
    """``[BOS]`` when the run's documents start with BOS (``data.render.add_bos``), else ``[]``."""
    cfg = render_config(config)
    return [tokenizer.bos_token_id] if cfg.add_bos and tokenizer.bos_token_id is not None else []


def load_audio(cut) -> np.ndarray:
    """(T,) float32 mono audio of a lhotse cut at 16 kHz."""
    from jstip.data.batch import SAMPLING_RATE

    if cut.sampling_rate != SAMPLING_RATE:
        cut = cut.resample(SAMPLING_RATE)
    audio = np.asarray(cut.load_audio(), dtype=np.float32)
    return audio.mean(axis=0) if audio.ndim == 2 else audio.reshape(-1)


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
    """
    from tqdm import tqdm

    cuts = sorted(cuts, key=lambda c: (-float(c.duration), c.id))
    hyps: dict[str, str] = {}
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    bar = tqdm(total=len(cuts), desc="decoding", unit="utt", disable=not progress, dynamic_ncols=True)
    try:
        for start in range(0, len(cuts), batch_size):
            batch, audios = [], []
            for cut in cuts[start:start + batch_size]:
                try:
                    audio = load_audio(cut)
                    if audio.size == 0:
                        raise ValueError("empty audio")
                except Exception as err:  # noqa: BLE001 -- one unreadable cut never stops the job
                    reason = f"audio not readable ({type(err).__name__}: {err}); check the recording's source path"
                    log.warning("%s: %s", cut.id, reason)
                    if rejects is not None:
                        rejects.reject(cut.id, reason)
                    bar.update(1)
                    continue
                batch.append(cut)
                audios.append(audio)
            if batch:
                budget = token_budget(max(float(c.duration) for c in batch), max_new_tokens, tokens_per_second)
                out = model.generate([[prompt_ids, audio] for audio in audios], eos_id=eos, pad_id=pad,
                                     max_new_tokens=budget, num_beams=num_beams, batch_size=len(batch))
                for cut, ids in zip(batch, out):
                    hyps[cut.id] = tokenizer.decode(ids, skip_special_tokens=True).strip()
                bar.update(len(batch))
    finally:
        bar.close()
    return hyps


def training_log_rows(exp_dir: str | Path, max_step: int | None = None) -> list[str]:
    """The lines of a run's ``metrics.jsonl`` up to ``max_step`` (the checkpoint's step), as written."""
    import json

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


__all__ = ["TOKENS_PER_SECOND", "asr_prompt_ids", "bos_ids", "decode_cuts", "load_audio", "render_config",
           "token_budget", "training_log_rows"]
