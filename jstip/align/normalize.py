"""Text normalisation for dictionary-based aligners, mapped back to the transcript's words.

An aligner's dictionary holds lower-case words without punctuation and without digits, while a jstip transcript keeps
case, punctuation and numbers ("Take 20 mg, twice."). ``tokens_for_word`` turns one transcript word into the list of
dictionary tokens that are spoken for it (``"20"`` -> ``["twenty"]``, ``"$5"`` -> ``["five", "dollars"]``,
``"well-known"`` -> ``["well", "known"]``), so that the aligner aligns the tokens and the result is folded back into
exactly one item per transcript word. A word that yields no token (``"-"``, ``"..."``) is not spoken: it gets a
zero-length item at the boundary where it stands.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from jstip.align.base import WordSpanTime
from jstip.text import strip_punctuation

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}
_SYMBOLS = {"&": ["and"], "%": ["percent"], "+": ["plus"], "=": ["equals"], "@": ["at"], "#": ["number"],
            "°": ["degrees"]}
_CURRENCY = {"$": "dollars", "€": "euros", "£": "pounds"}

_NUMBER_RE = re.compile(r"^(?P<cur>[$€£]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?"
                        r"(?P<suffix>st|nd|rd|th|s|%)?$", re.IGNORECASE)
_PIECE_RE = re.compile(r"\d+|[a-z]+(?:'[a-z]+)*|[&%+=@#°]")


def spell_number(n: int) -> list[str]:
    """Cardinal number as words: ``1984`` -> ``["one", "thousand", "nine", "hundred", "eighty", "four"]``."""
    if n < 0:
        return ["minus", *spell_number(-n)]
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return [_ONES[hundreds], "hundred"] + (spell_number(rest) if rest else [])
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return spell_number(high) + [name] + (spell_number(rest) if rest else [])
    raise AssertionError(n)


def spell_ordinal(n: int) -> list[str]:
    """Ordinal number as words: ``21`` -> ``["twenty", "first"]``."""
    words = spell_number(n)
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return words[:-1] + [last]


def _spell_digits(digits: str) -> list[str]:
    """A run of digits as spoken: years like 1990 as "nineteen ninety", long codes digit by digit."""
    n = int(digits)
    if len(digits) == 4 and 1100 <= n <= 1999 and n % 100 != 0:
        return spell_number(n // 100) + (spell_number(n % 100) if n % 100 >= 10 else ["oh", *spell_number(n % 100)])
    if len(digits) > 1 and digits.startswith("0") or len(digits) > 9:
        return [_ONES[int(d)] for d in digits]
    return spell_number(n)


def _spell_numeric(word: str) -> list[str] | None:
    m = _NUMBER_RE.match(word)
    if not m:
        return None
    integer = m.group("int").replace(",", "")
    suffix = (m.group("suffix") or "").lower()
    if suffix in ("st", "nd", "rd", "th") and not m.group("frac"):
        return spell_ordinal(int(integer))
    out = _spell_digits(integer)
    if m.group("frac"):
        out += ["point"] + [_ONES[int(d)] for d in m.group("frac")]
    if suffix == "s":  # "1990s"
        out[-1] = out[-1][:-1] + "ies" if out[-1].endswith("y") else out[-1] + "s"
    if suffix == "%":
        out.append("percent")
    if m.group("cur"):
        out.append(_CURRENCY[m.group("cur")])
    return out


def fold_accents(text: str) -> str:
    """Latin letters without their accents (``café`` -> ``cafe``); letters of other scripts are kept as they are."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens_for_word(word: str) -> list[str]:
    """The dictionary tokens spoken for one transcript word (lower case, no punctuation, numbers spelled out).

    Returns an empty list for a word that is not spoken (punctuation only). Letters of a script without a
    letter-to-sound rule (``"日本"``) are returned as they are, so that the pronunciation step can name the word
    it cannot spell.
    """
    spelled = _spell_numeric(word.strip("\"'()[]{}.,;:!?"))
    if spelled is not None:
        return spelled
    core = strip_punctuation(word)
    if not core:
        # "&", "%" alone are spoken; pure punctuation is not.
        return list(_SYMBOLS.get(word, []))
    text = fold_accents(core).lower().replace("’", "'")
    tokens: list[str] = []
    for piece in re.split(r"[-/_.]+", text):  # well-known, and/or, U.S.
        if not piece:
            continue
        if not piece.isascii() and any(unicodedata.category(c).startswith("L") and not c.isascii() for c in piece):
            tokens.append(piece)  # a non-Latin script: left for the pronunciation step to reject with its name
            continue
        for m in _PIECE_RE.finditer(piece):
            tok = m.group(0)
            if tok.isdigit():
                tokens.extend(_spell_digits(tok))
            elif tok in _SYMBOLS:
                tokens.extend(_SYMBOLS[tok])
            else:
                tokens.append(tok)
    return tokens


def fold_tokens(words: list[str], tokens_per_word: list[list[str]], segs: list[tuple[float, float, float | None]],
                phones: list[tuple[int, str, float, float]] = ()) -> list[WordSpanTime]:
    """One ``WordSpanTime`` per transcript word from per-token times.

    Args:
        words: the transcript words.
        tokens_per_word: ``tokens_for_word`` of each word.
        segs: (start, end, score or None) in seconds per token, in order (one per token of all words).
        phones: optional (token index, phone, start, end).

    A word with several tokens spans from its first token's start to its last token's end; a word without tokens
    (punctuation) gets a zero-length item at the boundary where it stands.
    """
    out: list[WordSpanTime] = []
    k = 0
    token_word = []
    for i, ts in enumerate(tokens_per_word):
        if not ts:
            out.append(WordSpanTime(words[i], -1.0, -1.0))
            continue
        first, last = segs[k], segs[k + len(ts) - 1]
        scores = [s[2] for s in segs[k:k + len(ts)] if s[2] is not None]
        score = round(float(np.mean(scores)), 1) if scores else None
        out.append(WordSpanTime(words[i], round(first[0], 3), round(last[1], 3), score))
        token_word.extend([len(out) - 1] * len(ts))
        k += len(ts)
    for tok, name, ps, pe in phones:
        out[token_word[tok]].phones.append((name, round(ps, 3), round(pe, 3)))
    # Unspoken words (punctuation tokens) sit at the boundary before the next spoken word (or after the last).
    for i, w in enumerate(out):
        if w.start < 0:
            prev_end = out[i - 1].end if i > 0 else None
            nxt = next((x.start for x in out[i + 1:] if x.start >= 0), None)
            t = prev_end if prev_end is not None else (nxt if nxt is not None else 0.0)
            w.start = w.end = t
    return out
