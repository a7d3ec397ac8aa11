"""The English text normaliser that WER and CER are computed on.

WER compares *normalised* words so that a system is not charged for writing conventions (case, punctuation, curly
versus straight quotes). TER and the entity error rate are computed on the raw text instead, where those conventions
count. The rules, applied in this order:

0. Transcript markup is removed (english-v2): a whole token in angle or square brackets is an annotation of the
   corpus, not a word to recognise: ``<hes>``, ``<unk>``, ``<cutoff-x>``, ``<noise>``, ``[laughter]``,
   ``[noise]`` (a bracket inside a word, ``a[b]c``, is punctuation as before). ``english-v1`` is the same without
   this rule, kept for comparing older figures.
1. Unicode NFKC (full-width letters and ligatures become plain letters); curly apostrophes become ``'``.
2. Lowercase (``str.lower``; letters with diacritics keep them: ``Café`` -> ``café``).
3. Hyphens and dashes become spaces: ``COVID-19`` -> ``covid 19``, ``well—known`` -> ``well known``.
4. Numbers are left as written (no spelling out, no digit conversion): a ``.`` or ``,`` between two digits is kept
   (``3.5``, ``1,000``), so ``3.5`` and ``three point five`` stay different words.
5. Periods of single-letter abbreviations are removed (``U.S.A.`` -> ``usa``, ``e.g.`` -> ``eg``); any other period
   is punctuation (``end.Next`` -> ``end next``).
6. An apostrophe between two letters or digits is kept (``don't``, ``o'clock``, ``90's``); every other apostrophe is
   removed (``'tis`` -> ``tis``, ``students'`` -> ``students``, quoted ``'word'`` -> ``word``).
7. Every other punctuation or symbol character (Unicode categories P* and S*: ``, . ! ? ; : " ( ) [ ] % $ & / *``...)
   becomes a space.
8. Runs of whitespace collapse to one space; the ends are stripped.

Examples::

    >>> normalize_text("Dr. Smith's patients—about 1,000 of them—took 3.5 mg!")
    "dr smith's patients about 1,000 of them took 3.5 mg"
    >>> normalize_text("“Hello,” she said; ‘it's 5 o’clock.’")
    "hello she said it's 5 o'clock"

The rules are versioned (:data:`NORMALIZER_VERSION`) and the version is written into every ``metrics.json``, so
figures computed under different rules are never compared by accident. ``whisper`` (:func:`normalize_text_whisper`)
is Whisper's English normaliser instead, for figures comparable with published Whisper WERs.
"""

from __future__ import annotations

import re
import unicodedata

from jstip.text import strip_markup

NORMALIZER_VERSION = "english-v2"

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})
_DASHES = re.compile(r"[\-\u2010\u2011\u2012\u2013\u2014\u2015\u2212]")
_NUMBER_SEPARATOR = re.compile(r"(?<=\d)[.,](?=\d)")
_LETTER_ABBREVIATION = re.compile(r"\b(?:[^\W\d_]\.)+[^\W\d_]\b\.?")
_INNER_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
# Private-use placeholders protect the characters kept by rules 4 and 6 while rule 7 blanks the rest.
_KEEP_DOT, _KEEP_COMMA, _KEEP_APOSTROPHE = "\ue000", "\ue001", "\ue002"


def _blank_punctuation(text: str) -> str:
    return "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)


def normalize_text(text: str) -> str:
    """Normalise English text for WER, english-v2 (see the module docstring for the rules and examples)."""
    return normalize_text_v1(strip_markup(text))


def normalize_text_v1(text: str) -> str:
    """Normalise English text for WER, english-v1: the rules without rule 0 (markup is scored as words).

    Args:
        text: any text, e.g. a transcript or a hypothesis.

    Returns:
        The normalised text: lowercase words separated by single spaces.
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = _DASHES.sub(" ", text)
    text = _NUMBER_SEPARATOR.sub(lambda m: _KEEP_DOT if m.group(0) == "." else _KEEP_COMMA, text)
    text = _LETTER_ABBREVIATION.sub(lambda m: m.group(0).replace(".", ""), text)
    text = _INNER_APOSTROPHE.sub(_KEEP_APOSTROPHE, text)
    text = _blank_punctuation(text)
    text = text.replace(_KEEP_DOT, ".").replace(_KEEP_COMMA, ",").replace(_KEEP_APOSTROPHE, "'")
    return " ".join(text.split())


def normalize_words(text: str) -> list[str]:
    """The words of the normalised text."""
    return normalize_text(text).split()


def whitespace_words(text: str) -> list[str]:
    """No normalisation at all: the whitespace tokens as written (for already-normalised corpora)."""
    return text.split()


_WHISPER = None


def normalize_text_whisper(text: str) -> str:
    """Whisper's English text normaliser (openai-whisper's ``EnglishTextNormalizer``, from the ``whisper-normalizer``
    package): numbers spelled out become digits (``two point five million`` -> ``2500000``, ``ninety percent`` ->
    ``90%``), British spellings become American (``colour`` -> ``color``), contractions and titles are expanded
    (``let's`` -> ``let us``, ``Dr.`` -> ``doctor``), fillers (``um``, ``hmm``) and bracketed markup are dropped. The
    normaliser of published Whisper and Open ASR Leaderboard WERs; ``english-v2`` is jstip's default."""
    global _WHISPER
    if _WHISPER is None:
        try:
            from whisper_normalizer.english import EnglishTextNormalizer
        except ImportError as e:  # a dependency of jstip; only a broken environment lacks it
            raise ImportError("the whisper normaliser needs the whisper-normalizer package: pip install -c "
                              "constraints.txt whisper-normalizer") from e
        _WHISPER = EnglishTextNormalizer()
    return " ".join(_WHISPER(text).split())


NORMALIZERS = {
    NORMALIZER_VERSION: normalize_text,
    "english-v1": normalize_text_v1,
    "whisper": normalize_text_whisper,
    "none": lambda text: " ".join(text.split()),
}
"""Normalisers by name, as accepted by ``jstip score --normalizer``."""
