"""Spoken question answering with exact answers: a question is spoken by a TTS voice, the response is text.

Items live in ``jstip/resources/eval/spoken_qa.jsonl``: ``id``, ``question`` and ``answers`` (accepted answers, e.g.
``["eight", "8"]``). A response is compared after :func:`normalize_answer` (the WER normaliser, then the articles
``a``/``an``/``the`` dropped):

- **exact match**: the normalised response equals a normalised accepted answer;
- **contains**: a normalised accepted answer occurs in the normalised response as whole words (for models that
  answer in a sentence: "The capital of France is Paris.").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from jstip.scoring.normalize import normalize_text

_ARTICLES = {"a", "an", "the"}


def default_qa_path() -> Path:
    """The shipped ``eval/spoken_qa.jsonl`` (:mod:`jstip.paths`)."""
    from jstip.paths import resource_path

    return resource_path("eval", "spoken_qa.jsonl")


def load_qa(path: str | Path | None = None) -> list[dict]:
    """Load and validate QA items.

    Raises:
        ValueError: naming the file and the line of an item without id, question or answers.
    """
    from jstip.jsonl import read_jsonl

    def check(item: dict) -> None:
        if not item.get("id") or not item.get("question") or not item.get("answers"):
            raise ValueError("an item needs id, question and a non-empty answers list")

    return read_jsonl(Path(path) if path is not None else default_qa_path(), check=check)


def normalize_answer(text: str) -> str:
    """Normalised words of an answer, articles dropped: ``"The Pacific Ocean."`` -> ``"pacific ocean"``."""
    return " ".join(w for w in normalize_text(text).split() if w not in _ARTICLES)


def exact_match(response: str, answers: Iterable[str]) -> bool:
    """True if the normalised response equals one of the normalised answers."""
    got = normalize_answer(response)
    return any(got == normalize_answer(a) for a in answers)


def contains_answer(response: str, answers: Iterable[str]) -> bool:
    """True if a normalised answer occurs as whole words in the normalised response."""
    got = f" {normalize_answer(response)} "
    return any(normalize_answer(a) and f" {normalize_answer(a)} " in got for a in answers)


def score_qa(items: Iterable[Mapping], responses: Mapping[str, str]) -> dict:
    """Exact-match and contains accuracy of responses (item id -> response text).

    Items without a response count as wrong and are listed in ``missing_ids``.
    """
    items = list(items)
    rows, missing = [], []
    for item in items:
        response = responses.get(item["id"])
        if response is None:
            missing.append(item["id"])
            response = ""
        rows.append({"id": item["id"], "response": response, "exact": exact_match(response, item["answers"]),
                     "contains": contains_answer(response, item["answers"])})
    n = len(rows)
    return {"exact_match": sum(r["exact"] for r in rows) / n if n else None,
            "contains": sum(r["contains"] for r in rows) / n if n else None,
            "num_items": n, "missing_ids": missing, "items": rows}
