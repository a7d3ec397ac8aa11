"""Letter-to-sound fallback: CMU (ARPAbet) pronunciations for words missing from the aligner's dictionary.

First choice is espeak-ng's IPA output mapped to the CMU phone set (its English rules handle drug names and other
rare words better than flite's, e.g. "atorvastatin"); when espeak-ng is not installed, flite's ``t2p`` (the letter-
to-sound rules of its CMU lexicon, already in the CMU phone set). Both are external programs called with an
argument list (no shell). A word neither can spell (no Latin letters, e.g. another script) raises
``AlignmentError`` naming the word, so that one utterance is rejected with a reason instead of being mis-aligned.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from jstip.align.base import AlignmentError

CMU_PHONES = {"AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
              "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y",
              "Z", "ZH"}
_FLITE_MAP = {"AX": "AH", "AXR": "ER", "DX": "T", "NX": "N", "EL": "L", "EM": "M", "EN": "N"}

# espeak-ng IPA -> CMU. Longest symbols first when tokenising.
_IPA_MAP = {
    "tʃ": ["CH"], "dʒ": ["JH"], "eɪ": ["EY"], "aɪ": ["AY"], "ɔɪ": ["OY"], "aʊ": ["AW"], "oʊ": ["OW"], "əʊ": ["OW"],
    "ɪə": ["IH", "R"], "eə": ["EH", "R"], "ʊə": ["UH", "R"], "ɜː": ["ER"], "ɚ": ["ER"], "ɝ": ["ER"], "ɑː": ["AA"],
    "ɔː": ["AO"], "iː": ["IY"], "uː": ["UW"], "i": ["IY"], "ɪ": ["IH"], "ᵻ": ["IH"], "e": ["EH"], "ɛ": ["EH"],
    "æ": ["AE"], "a": ["AE"], "ɐ": ["AH"], "ə": ["AH"], "ʌ": ["AH"], "ɑ": ["AA"], "ɒ": ["AA"], "ɔ": ["AO"],
    "o": ["OW"], "ʊ": ["UH"], "u": ["UW"], "p": ["P"], "b": ["B"], "t": ["T"], "d": ["D"], "k": ["K"], "g": ["G"],
    "ɡ": ["G"], "f": ["F"], "v": ["V"], "θ": ["TH"], "ð": ["DH"], "s": ["S"], "z": ["Z"], "ʃ": ["SH"], "ʒ": ["ZH"],
    "h": ["HH"], "m": ["M"], "n": ["N"], "ŋ": ["NG"], "l": ["L"], "ɫ": ["L"], "r": ["R"], "ɹ": ["R"], "ɾ": ["T"],
    "w": ["W"], "j": ["Y"], "x": ["K"], "ʔ": [],
}
_IPA_KEYS = sorted(_IPA_MAP, key=len, reverse=True)
_IPA_IGNORED = set("ˈˌː.‖|-_ ̩̃ʲ")


def _check_spellable(word: str) -> None:
    if not re.search(r"[a-z]", word):
        raise AlignmentError(f"no letter-to-sound rule can spell the word {word!r} (no Latin letters): transliterate "
                             "it or spell it out in the transcript")


def _flite_t2p(word: str) -> list[str]:
    out = subprocess.run(["t2p", word], capture_output=True, text=True, timeout=30).stdout
    phones = []
    for p in out.split():
        p = re.sub(r"\d", "", p).upper()
        if p == "PAU":
            continue
        p = _FLITE_MAP.get(p, p)
        if p in CMU_PHONES:
            phones.append(p)
    return phones


def ipa_to_cmu(ipa: str) -> list[str]:
    """Map an espeak-ng IPA string (``espeak-ng -q --ipa``) to CMU phones; unknown symbols are dropped."""
    phones: list[str] = []
    i = 0
    while i < len(ipa):
        if ipa[i] in _IPA_IGNORED or ipa[i].isspace():
            i += 1
            continue
        for key in _IPA_KEYS:
            if ipa.startswith(key, i):
                phones.extend(_IPA_MAP[key])
                i += len(key)
                break
        else:
            i += 1
    return phones


def _espeak_ipa(word: str) -> list[str]:
    out = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", "en-us", word], capture_output=True, text=True,
                         timeout=30).stdout
    return ipa_to_cmu(out.strip())


@functools.lru_cache(maxsize=100_000)
def letter_to_sound(word: str) -> tuple[str, ...]:
    """CMU phones for a lower-case token, from espeak-ng or else flite ``t2p``. Raises ``AlignmentError``."""
    _check_spellable(word)
    if shutil.which("espeak-ng"):
        phones = _espeak_ipa(word)
    elif shutil.which("t2p"):
        phones = _flite_t2p(word)
    else:
        raise AlignmentError(f"the word {word!r} is not in the dictionary and no letter-to-sound program is "
                             "installed: apt-get install espeak-ng (or flite)")
    if not phones:
        raise AlignmentError(f"no letter-to-sound rule can spell the word {word!r}: spell it out in the transcript")
    return tuple(phones)
