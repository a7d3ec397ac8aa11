"""What a "word" is in jstip, shared by every stage.

A word is a whitespace-separated token of ``supervision.text``, exactly as written: case and punctuation kept
("Smith," is one word). Alignment items carry these words as their symbols, in order, so that any stage can map an
item back to the transcript (character offsets) without re-tokenising, and segment-level interleaving can see the
punctuation attached to a word.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_WORD_RE = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?;:]+[\"')\]]*$")


@dataclass(frozen=True)
class WordSpan:
    """One word of a text with its character offsets (``text[start:end] == word``)."""

    word: str
    start: int
    end: int


MARKUP_TOKEN = re.compile(r"^(?:<[^<>\s]+>|\[[^\[\]\s]+\])$")
"""A whole-token transcript annotation, not a spoken word: ``<hes>``, ``<unk>``, ``<cutoff-x>``, ``[laughter]``,
``[noise]``. Alignment gives it a zero-length item; the english-v2 WER normaliser removes it."""


def strip_markup(text: str) -> str:
    """``text`` without its markup tokens (:data:`MARKUP_TOKEN`), single-spaced."""
    return " ".join(tok for tok in text.split() if not MARKUP_TOKEN.match(tok))


def words(text: str) -> list[str]:
    """The words of ``text``: whitespace-separated tokens, case and punctuation kept."""
    return text.split()


def word_spans(text: str) -> list[WordSpan]:
    """Words of ``text`` with their character offsets into ``text``."""
    return [WordSpan(m.group(0), m.start(), m.end()) for m in _WORD_RE.finditer(text)]


def ends_sentence(word: str) -> bool:
    """True if the word carries sentence-final (or clause-final) punctuation: ``.``, ``!``, ``?``, ``;``, ``:``."""
    return bool(_SENTENCE_END.search(word))


def strip_punctuation(word: str) -> str:
    """The word without leading/trailing punctuation (inner apostrophes and hyphens kept): ``"Smith,"`` -> ``Smith``."""
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(word[end - 1])[0] in "PS":
        end -= 1
    return word[start:end]


def normalise_space(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return " ".join(text.split())
