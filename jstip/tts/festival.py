"""Festival: audio plus the engine's own word times, read from its utterance structure.

One ``festival -b`` run per text: it synthesises, saves the wave, and prints, for every top-level Token (Festival
tokenises on whitespace and peels punctuation off, like ``jstip.text.words``), the start of its first segment and the
end of its last segment over the words the token expanded to ("20" -> "twenty", "mg" -> "m g"). Tokens map one to one
onto the input words, in order; a text Festival tokenises differently is rejected with that reason.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import unicodedata
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from jstip.text import words as split_words
from jstip.audio import SAMPLE_RATE
from jstip.tts.base import Synthesis, SynthesisError, TTSBackend, Voice, WordTime
from jstip.tts.timing import tighten_to_voiced

# Debian packages festvox-kallpc16k and festvox-us-slt-hts.
VOICES = ["kal_diphone", "cmu_us_slt_arctic_hts"]

_SCRIPT = """
(voice_{voice})
(Parameter.set 'Duration_Stretch {stretch})
(set! utt (Utterance Text "{text}"))
(utt.synth utt)
(utt.save.wave utt "{wav}" 'riff)
(set! tok (utt.relation.first utt 'Token))
(while tok
  (format t "TOKEN\\n")
  (mapcar (lambda (w)
     (if (item.relation w 'SylStructure)
       (format t "WORD\\t%s\\t%s\\n"
          (item.feat w "R:SylStructure.daughter1.daughter1.R:Segment.p.end")
          (item.feat w "R:SylStructure.daughtern.daughtern.end"))))
     (item.daughters tok))
  (set! tok (item.next tok)))
"""


def _scheme_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class FestivalBackend(TTSBackend):
    """Festival voices ``kal_diphone`` and ``cmu_us_slt_arctic_hts``; rate = duration stretch in percent (100 = normal)."""

    engine = "festival"

    def __init__(self) -> None:
        self.binary = shutil.which("festival")

    def voices(self) -> list[Voice]:
        return [Voice(self.engine, v) for v in VOICES]

    def synthesize(self, text: str, voice: Voice) -> Synthesis:
        if self.binary is None:
            raise SynthesisError("festival not found; install it with: apt-get install festival festvox-kallpc16k")
        if voice.name not in VOICES:
            raise SynthesisError(f"festival voice {voice.name!r} is not one of {VOICES}")
        words = split_words(text)
        if not words:
            raise SynthesisError("empty text: nothing to speak")
        # Festival reads Latin-1 text; give it an ASCII transliteration (the words of the manifest stay the input's).
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        if len(ascii_text.split()) != len(words):
            raise SynthesisError("text has words with no ASCII spelling, which festival cannot speak")
        stretch = (voice.rate or 100) / 100.0
        with tempfile.TemporaryDirectory(prefix="jstip-festival-") as tmp:
            wav = Path(tmp) / "out.wav"
            script = Path(tmp) / "synth.scm"
            script.write_text(
                _SCRIPT.format(voice=voice.name, stretch=stretch, text=_scheme_string(ascii_text), wav=wav)
            )
            proc = subprocess.run([self.binary, "-b", str(script)], capture_output=True, text=True, timeout=120)
            if proc.returncode != 0 or not wav.exists():
                raise SynthesisError(f"festival failed: {proc.stderr.strip()[-300:] or 'no audio written'}")
            audio, rate = sf.read(wav, dtype="float32")
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        token_times: list[list[tuple[float, float]]] = []
        for line in proc.stdout.splitlines():
            if line == "TOKEN":
                token_times.append([])
            elif line.startswith("WORD\t") and token_times:
                _, s, e = line.split("\t")
                token_times[-1].append((float(s), float(e)))
        spoken = [t for t in token_times if t]
        if len(spoken) != len(words):
            raise SynthesisError(
                f"festival made {len(spoken)} spoken tokens of {len(words)} words "
                "(a word it tokenises differently or does not speak, e.g. a bare symbol): spell it out"
            )
        raw = [(min(s for s, _ in t), max(e for _, e in t)) for t in spoken]
        if rate != SAMPLE_RATE:
            g = gcd(SAMPLE_RATE, int(rate))
            audio = resample_poly(audio, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
        np.clip(audio, -1.0, 1.0, out=audio)
        times = tighten_to_voiced(audio, SAMPLE_RATE, raw)
        return Synthesis(audio, [WordTime(w, s, e) for w, (s, e) in zip(words, times)], SAMPLE_RATE,
                         info={"engine": "festival", "engine_rate": int(rate)})
