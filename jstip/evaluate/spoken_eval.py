"""The spoken tasks of ``jstip evaluate`` run on a trained ``SpeechLM``: modality gap, instruction following, QA.

Every item is spoken by one TTS voice (``jstip.tts.synthesize``; default ``espeak:en-us+f3@160``) and the audio is
placed in the prompt where the model's speech frames go, exactly as in ASR decoding. Prompts (``BOS`` when the run
uses it; ``[audio]`` = the adapter's frames of the spoken text):

- modality gap (:mod:`jstip.evaluate.modality_gap`): text ``BOS text_prompt(item, shots)``; speech ``BOS prefix
  [audio of the question and options] suffix`` with ``(prefix, spoken, suffix) = speech_prompt(item, shots)``. The
  answer is the option letter with the highest next-token probability after ``Answer:`` (one forward pass each).
- instruction following (:mod:`jstip.evaluate.instructions`): ``BOS [audio of item["prompt"]]`` + ``"\\nResponse:"``,
  then greedy generation; the response is checked by the item's rules.
- spoken QA (:mod:`jstip.evaluate.spoken_qa`): ``BOS [audio of item["question"]]`` + ``"\\nAnswer:"``, then greedy
  generation; exact-match and contains scoring.

A model trained for ASR only scores about 0 on these (it transcribes, or babbles): the figures matter for
instruction-tuned or merged models (``jstip merge``). An item whose text the TTS engine cannot speak is left out and
listed under ``skipped``; a task that fails as a whole is reported as ``{"error": ...}`` without stopping the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_VOICE = "espeak:en-us+f3@160"
SPOKEN_TASKS = ("modality_gap", "instruction_following", "spoken_qa")
"""The spoken tasks, in the order they run."""
INSTRUCTION_SUFFIX = "\nResponse:"
QA_SUFFIX = "\nAnswer:"


class Speaker:
    """Speaks texts with one TTS voice, each text once (16 kHz float32 audio)."""

    def __init__(self, voice: str = DEFAULT_VOICE, synthesize: Callable | None = None) -> None:
        if synthesize is None:
            from jstip.tts import synthesize
        self.voice = voice
        self._synthesize = synthesize
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, text: str) -> np.ndarray:
        """Audio of ``text``; raises ``jstip.tts.SynthesisError`` (or ValueError on silence) when it cannot."""
        if text not in self._cache:
            audio = np.asarray(self._synthesize(text, self.voice).audio, dtype=np.float32).reshape(-1)
            if audio.size == 0:
                raise ValueError(f"voice {self.voice} produced no audio")
            self._cache[text] = audio
        return self._cache[text]


def _speakable(items: Sequence[Mapping], text_of: Callable[[Mapping], str], speak: Speaker,
               skipped: list[dict]) -> list[Mapping]:
    kept = []
    for item in items:
        try:
            speak(text_of(item))
        except Exception as err:  # noqa: BLE001 -- one unspeakable item never stops the task
            skipped.append({"id": item["id"], "reason": f"TTS failed ({type(err).__name__}: {err})"})
            log.warning("%s: TTS failed, item left out: %s", item["id"], err)
            continue
        kept.append(item)
    return kept


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def next_token_logits(model, parts: list):
    """(V,) next-token logits after a prompt of parts (token id lists and 16 kHz audio arrays), one forward pass."""
    import torch

    with torch.no_grad():
        embeds = model.prompt_embeds(parts)  # (P, D): token embeddings and adapter frames, in order
        return model.llm(inputs_embeds=embeds[None], use_cache=False).logits[0, -1]


def speechlm_letter_logprobs(model, tokenizer, items: Sequence[Mapping], speak: Speaker, bos: list[int],
                             shots: int = 5) -> Callable[[Mapping, str], dict[str, float]]:
    """The ``letter_logprobs(item, modality)`` callable of :func:`jstip.evaluate.modality_gap.modality_gap` for a
    ``SpeechLM``: both conditions share the few-shot examples (text) and differ in the modality of the asked item."""
    from jstip.evaluate.modality_gap import (
        few_shot_examples,
        letter_logprobs_from_logits,
        letter_token_ids,
        speech_prompt,
        text_prompt,
    )

    token_ids = letter_token_ids(tokenizer)
    pool = list(items)

    def letter_logprobs(item: Mapping, modality: str) -> dict[str, float]:
        examples = few_shot_examples(pool, item, shots)
        if modality == "text":
            parts = [bos + _encode(tokenizer, text_prompt(item, examples))]
        elif modality == "speech":
            prefix, spoken, suffix = speech_prompt(item, examples)
            parts = [bos + _encode(tokenizer, prefix), speak(spoken), _encode(tokenizer, suffix)]
        else:
            raise ValueError(f"modality must be 'text' or 'speech', not {modality!r}")
        return letter_logprobs_from_logits(next_token_logits(model, parts), token_ids)

    return letter_logprobs


def spoken_responses(model, tokenizer, items: Sequence[Mapping], text_of: Callable[[Mapping], str], speak: Speaker,
                     bos: list[int], suffix: str, max_new_tokens: int = 128, batch_size: int = 8,
                     desc: str = "responses", progress: bool = True) -> dict[str, str]:
    """Greedy responses to spoken prompts: item id -> text (special tokens removed)."""
    from tqdm import tqdm

    suffix_ids = _encode(tokenizer, suffix)
    responses: dict[str, str] = {}
    with tqdm(total=len(items), desc=desc, unit="item", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            prompts = [[bos, speak(text_of(item)), suffix_ids] for item in chunk]
            out = model.generate(prompts, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id,
                                 max_new_tokens=max_new_tokens, num_beams=1, batch_size=len(chunk))
            for item, ids in zip(chunk, out):
                responses[item["id"]] = tokenizer.decode(ids, skip_special_tokens=True).strip()
            bar.update(len(chunk))
    return responses


def _without_items(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "items"}


def run_spoken_tasks(model, tokenizer, bos: list[int], voice: str = DEFAULT_VOICE, limit: int | None = None,
                     shots: int = 5, max_new_tokens: int = 128, batch_size: int = 8, progress: bool = True,
                     speaker: Speaker | None = None, tasks: Sequence[str] | None = None
                     ) -> tuple[dict, dict[str, list[dict]]]:
    """Run the spoken tasks on the shipped items (``jstip/resources/eval``): all three, or ``tasks`` (names of SPOKEN_TASKS).

    Args:
        bos: ids that start every prompt (:func:`jstip.evaluate.decode.bos_ids`).
        voice: the TTS voice that speaks every item.
        limit: use only the first ``limit`` items of each task (None: all).
        shots: few-shot examples of the multiple-choice prompts.
        max_new_tokens: most tokens per generated response.

    Returns:
        ``(summary, per_item)``: ``summary`` has the sections ``modality_gap``, ``instruction_following`` and
        ``spoken_qa`` (figures without per-item lists, plus ``voice`` and ``skipped``), for ``metrics.json``;
        ``per_item`` maps each section to its per-item rows.
    """
    from jstip.evaluate.instructions import load_items, score_responses
    from jstip.evaluate.modality_gap import load_mcq, modality_gap, spoken_text
    from jstip.evaluate.spoken_qa import load_qa, score_qa

    speak = speaker or Speaker(voice)
    summary: dict = {}
    per_item: dict[str, list[dict]] = {}

    def task(name: str, run: Callable[[list[dict]], dict]) -> None:
        skipped: list[dict] = []
        try:
            result = run(skipped)
        except Exception as err:  # noqa: BLE001 -- a failing task is reported, the others still run
            log.exception("spoken task %s failed", name)
            summary[name] = {"error": f"{type(err).__name__}: {err}", "voice": speak.voice}
            return
        summary[name] = {**_without_items(result), "voice": speak.voice, "skipped": skipped}
        per_item[name] = result.get("items", [])

    def mcq(skipped: list[dict]) -> dict:
        items = _speakable(load_mcq()[:limit], spoken_text, speak, skipped)
        from tqdm import tqdm

        fn = speechlm_letter_logprobs(model, tokenizer, items, speak, bos, shots)
        with tqdm(total=2 * len(items), desc="modality gap", unit="prompt", disable=not progress,
                  dynamic_ncols=True) as bar:

            def counted(item: Mapping, modality: str) -> dict[str, float]:
                bar.update(1)
                return fn(item, modality)

            return modality_gap(items, counted)

    def instructions(skipped: list[dict]) -> dict:
        items = _speakable(load_items()[:limit], lambda x: x["prompt"], speak, skipped)
        responses = spoken_responses(model, tokenizer, items, lambda x: x["prompt"], speak, bos, INSTRUCTION_SUFFIX,
                                     max_new_tokens, batch_size, "instructions", progress)
        return score_responses(items, responses)

    def qa(skipped: list[dict]) -> dict:
        items = _speakable(load_qa()[:limit], lambda x: x["question"], speak, skipped)
        responses = spoken_responses(model, tokenizer, items, lambda x: x["question"], speak, bos, QA_SUFFIX,
                                     max_new_tokens, batch_size, "spoken QA", progress)
        return score_qa(items, responses)

    runners = {"modality_gap": mcq, "instruction_following": instructions, "spoken_qa": qa}
    unknown = [t for t in (tasks or ()) if t not in runners]
    if unknown:
        raise ValueError(f"unknown spoken task(s) {', '.join(unknown)}: the tasks are {', '.join(SPOKEN_TASKS)}")
    for name in SPOKEN_TASKS:
        if tasks is None or name in tasks:
            task(name, runners[name])
    return summary, per_item


__all__ = ["DEFAULT_VOICE", "INSTRUCTION_SUFFIX", "QA_SUFFIX", "SPOKEN_TASKS", "Speaker", "next_token_logits", "run_spoken_tasks",
           "speechlm_letter_logprobs", "spoken_responses"]
