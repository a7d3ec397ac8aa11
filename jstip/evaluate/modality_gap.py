"""The modality gap: the same multiple-choice items asked in text and in speech (JSTIP, METHOD.md).

The answer is read from the next-token distribution over the option letters after ``Answer:``, as in MMLU's
few-shot evaluation: no generation, no parsing. The model side is a callable, so this module needs no model::

    def letter_logprobs(item: dict, modality: str) -> dict[str, float]:
        # modality "text": the question and options as text (text_prompt(item, shots));
        # modality "speech": the same read by a TTS voice (speech_prompt(item, shots): text prefix, spoken part,
        # text suffix), the few-shot examples staying text in both cases.
        # Return the log-probabilities of the next token being "A", "B", "C", "D"
        # (letter_logprobs_from_logits() does this from a logits vector).
        ...

    result = modality_gap(load_mcq(), letter_logprobs)
    result["gap"]  # accuracy with speech input minus accuracy with text input (fraction; JSTIP reports points)

Items live in ``jstip/resources/eval/mcq.jsonl``: ``id``, ``subject`` (``general`` | ``medical``), ``question``, ``options``
(``{"A": ..., "B": ..., "C": ..., "D": ...}``) and ``answer`` (a letter); the answers are balanced over the letters.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from jstip.scoring.stats import paired_bootstrap

LETTERS = ("A", "B", "C", "D")
HEADER = "The following are multiple choice questions (with answers)."


def default_mcq_path() -> Path:
    """The shipped ``eval/mcq.jsonl`` (:mod:`jstip.paths`)."""
    from jstip.paths import resource_path

    return resource_path("eval", "mcq.jsonl")


def load_mcq(path: str | Path | None = None) -> list[dict]:
    """Load and validate multiple-choice items.

    Raises:
        ValueError: naming the file, the line and the problem.
    """
    from jstip.jsonl import read_jsonl

    def check(item: dict) -> None:
        options = item.get("options")
        if not item.get("id") or not item.get("question") or not isinstance(options, dict):
            raise ValueError("an item needs id, question and options {letter: text}")
        if item.get("answer") not in options:
            raise ValueError(f"item {item['id']}: answer {item.get('answer')!r} is not an option")

    return read_jsonl(Path(path) if path is not None else default_mcq_path(), check=check)


def _question_block(item: Mapping) -> str:
    lines = [f"Question: {item['question']}"]
    lines += [f"{letter}. {text}" for letter, text in item["options"].items()]
    return "\n".join(lines)


def few_shot_examples(items: Sequence[Mapping], item: Mapping, k: int) -> list[Mapping]:
    """The first ``k`` other items of the same subject (then of any subject), the same for text and speech."""
    same = [x for x in items if x["id"] != item["id"] and x.get("subject") == item.get("subject")]
    other = [x for x in items if x["id"] != item["id"] and x.get("subject") != item.get("subject")]
    return (same + other)[:k]


def text_prompt(item: Mapping, shots: Sequence[Mapping] = ()) -> str:
    """The text-input prompt, ending in ``Answer:`` (the next token is the letter)."""
    blocks = [HEADER] + [f"{_question_block(s)}\nAnswer: {s['answer']}" for s in shots]
    blocks.append(f"{_question_block(item)}\nAnswer:")
    return "\n\n".join(blocks)


def spoken_text(item: Mapping) -> str:
    """What the TTS voice reads for the speech-input condition: the question, then each option with its letter."""
    options = " ".join(f"Option {letter}: {text.rstrip('.')}." for letter, text in item["options"].items())
    return f"{item['question']} {options}"


def speech_prompt(item: Mapping, shots: Sequence[Mapping] = ()) -> tuple[str, str, str]:
    """The speech-input prompt as (text before the audio, the text spoken in the audio, text after the audio).

    The few-shot examples stay text, only the asked item is spoken; the suffix ends in ``Answer:`` as in
    :func:`text_prompt`, so the two conditions differ only in the modality of the asked item.
    """
    blocks = [HEADER] + [f"{_question_block(s)}\nAnswer: {s['answer']}" for s in shots]
    prefix = "\n\n".join(blocks) + "\n\nQuestion: "
    return prefix, spoken_text(item), "\nAnswer:"


def letter_token_ids(tokenizer, letters: Sequence[str] = LETTERS) -> dict[str, list[int]]:
    """Token ids that spell each letter as one token (``"A"`` and ``" A"``), for a HF-style tokenizer.

    Raises:
        ValueError: if a letter has no single-token spelling.
    """
    ids: dict[str, list[int]] = {}
    for letter in letters:
        found = []
        for spelling in (letter, " " + letter):
            encoded = tokenizer.encode(spelling, add_special_tokens=False)
            # The token must spell the letter back (not an unknown-token id) to count.
            if len(encoded) == 1 and encoded[0] not in found and tokenizer.decode(encoded).strip() == letter:
                found.append(int(encoded[0]))
        if not found:
            raise ValueError(f"the tokenizer has no single token for option letter {letter!r}")
        ids[letter] = found
    return ids


def letter_logprobs_from_logits(logits, token_ids: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Log-probabilities of the option letters from next-token logits, renormalised over the letters.

    Args:
        logits: (V,) next-token logits (numpy array, list or torch tensor).
        token_ids: letter -> token ids spelling it (:func:`letter_token_ids`); the spellings' probabilities add up.
    """
    values = np.asarray(logits.detach().float().cpu().numpy() if hasattr(logits, "detach") else logits,
                        dtype=np.float64)
    log_z = np.logaddexp.reduce(values)
    per_letter = {letter: float(np.logaddexp.reduce(values[list(ids)]) - log_z) for letter, ids in token_ids.items()}
    norm = np.logaddexp.reduce(list(per_letter.values()))
    return {letter: value - norm for letter, value in per_letter.items()}


def predict(logprobs: Mapping[str, float]) -> str:
    """The letter with the highest log-probability (ties: the first letter in order)."""
    best, best_value = None, -math.inf
    for letter, value in logprobs.items():
        if value > best_value:
            best, best_value = letter, value
    return best


def modality_gap(
    items: Sequence[Mapping],
    letter_logprobs: Callable[[Mapping, str], Mapping[str, float]],
    num_samples: int = 1000,
    seed: int = 0,
) -> dict:
    """Accuracy of the items asked in text and in speech, and the gap (speech minus text).

    Args:
        items: multiple-choice items (:func:`load_mcq`).
        letter_logprobs: ``(item, modality) -> {letter: logprob}`` with modality ``"text"`` or ``"speech"``.
        num_samples: paired bootstrap samples over items for the interval of the gap.

    Returns:
        ``accuracy_text``, ``accuracy_speech``, ``gap`` (fractions), ``gap_interval`` (95% paired bootstrap over
        items), ``agreement`` (share of items answered the same way in both modalities), ``per_subject`` and
        per-item predictions.
    """
    rows = []
    for item in items:
        text_lp = dict(letter_logprobs(item, "text"))
        speech_lp = dict(letter_logprobs(item, "speech"))
        pred_text, pred_speech = predict(text_lp), predict(speech_lp)
        rows.append({"id": item["id"], "subject": item.get("subject"), "answer": item["answer"],
                     "pred_text": pred_text, "pred_speech": pred_speech,
                     "correct_text": pred_text == item["answer"], "correct_speech": pred_speech == item["answer"],
                     "logprobs_text": text_lp, "logprobs_speech": speech_lp})

    def accuracies(subset: list[dict]) -> dict:
        n = len(subset)
        acc_text = sum(r["correct_text"] for r in subset) / n
        acc_speech = sum(r["correct_speech"] for r in subset) / n
        return {"accuracy_text": acc_text, "accuracy_speech": acc_speech, "gap": acc_speech - acc_text, "items": n}

    if not rows:
        return {"accuracy_text": None, "accuracy_speech": None, "gap": None, "gap_interval": None,
                "agreement": None, "per_subject": {}, "num_items": 0, "items": []}
    out = accuracies(rows)
    out.pop("items")
    # The gap is a difference of accuracies; as error rates: (1 - acc_speech) - (1 - acc_text) = -gap.
    errors_text = np.array([not r["correct_text"] for r in rows], dtype=np.float64)
    errors_speech = np.array([not r["correct_speech"] for r in rows], dtype=np.float64)
    _, low, high, _ = paired_bootstrap(errors_text, errors_speech, np.ones(len(rows)), num_samples, seed)
    out["gap_interval"] = [0.0 - high, 0.0 - low]  # 0.0 - x: no "-0.00" in reports
    out["agreement"] = sum(r["pred_text"] == r["pred_speech"] for r in rows) / len(rows)
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_subject[str(r["subject"])].append(r)
    out["per_subject"] = {s: accuracies(subset) for s, subset in sorted(by_subject.items())}
    out["num_items"] = len(rows)
    out["items"] = rows
    return out


def causal_lm_text_logprobs(model, tokenizer, items: Sequence[Mapping], shots: int = 5):
    """A ``letter_logprobs`` callable for the *text* condition of any Hugging Face causal LM.

    It builds :func:`text_prompt` with ``shots`` examples (:func:`few_shot_examples`), runs one forward pass and reads
    the letter log-probs from the last position. The speech condition needs a speech-LLM: pass your own callable
    that handles ``modality == "speech"`` and defers to this one for text.

    Args:
        model: a causal LM returning ``.logits`` of shape (1, T, V).
        tokenizer: its tokenizer (``encode``/``decode``).
        items: the pool the few-shot examples are drawn from (usually the evaluated items themselves).
        shots: number of examples in the prompt.
    """
    import torch

    token_ids = letter_token_ids(tokenizer)
    pool = list(items)

    def letter_logprobs(item: Mapping, modality: str) -> dict[str, float]:
        if modality != "text":
            raise ValueError(f"causal_lm_text_logprobs handles the text condition only, not {modality!r}")
        prompt = text_prompt(item, few_shot_examples(pool, item, shots))
        ids = torch.tensor([tokenizer.encode(prompt)], dtype=torch.long)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]  # (V,)
        return letter_logprobs_from_logits(logits, token_ids)

    return letter_logprobs
