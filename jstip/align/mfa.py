"""Montreal Forced Aligner backend: for users who have the ``mfa`` command (it installs only from conda).

A batch of cuts is written in MFA's corpus layout (``<speaker>/<name>.wav`` + ``<name>.lab``; the ``.lab`` holds the
normalised tokens of ``jstip.align.normalize`` so numbers are spelled out), ``mfa align`` is run with an argument list
(no shell), and each TextGrid is read back onto the transcript's words. Utterances MFA could not align (no TextGrid,
or a TextGrid that does not fit the transcript) are rejected with the reason and the log path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from jstip.audio import SAMPLE_RATE
from jstip.align.base import Aligner, AlignmentError, load_cut_audio
from jstip.align.normalize import tokens_for_word
from jstip.align.textgrid import cut_with_textgrid
from jstip.text import words as split_words

INSTALL_HINT = "install with conda: see alignment/mfa/README.md"


class MfaNotFound(RuntimeError):
    pass


class MfaAligner(Aligner):
    """Runs ``mfa align`` on batches of cuts.

    Args:
        dictionary: MFA dictionary name or path (``english_us_arpa`` after ``mfa model download dictionary
            english_us_arpa``).
        acoustic_model: MFA acoustic model name or path (``english_us_arpa``).
        batch_size: cuts per ``mfa align`` call (MFA has a large start-up cost; it parallelises inside with -j).
        num_jobs: passed to ``mfa align -j``.
        extra_args: further ``mfa align`` arguments, e.g. ``["--beam", "100", "--retry_beam", "400"]``.
        work_dir: where corpora and outputs are written (default: a temporary folder, removed afterwards).
    """

    name = "mfa"

    def __init__(self, dictionary: str = "english_us_arpa", acoustic_model: str = "english_us_arpa",
                 batch_size: int = 2000, num_jobs: int = 1, extra_args: list[str] | None = None,
                 work_dir: str | None = None, executable: str = "mfa") -> None:
        self.executable = shutil.which(executable)
        if self.executable is None:
            raise MfaNotFound(f"the `{executable}` command is not on PATH: {INSTALL_HINT}")
        self.dictionary = dictionary
        self.acoustic_model = acoustic_model
        self.batch_size = batch_size
        self.num_jobs = num_jobs
        self.extra_args = list(extra_args or [])
        self.work_dir = work_dir

    def align_cut(self, cut):
        results = list(self.align_batch([cut]))
        _, aligned, reason = results[0]
        if aligned is None:
            raise AlignmentError(reason)
        return aligned

    def align_batch(self, cuts):
        """Yield (cut id, aligned cut or None, reason or None) for every cut, in batches of ``batch_size``."""
        cuts = list(cuts)
        for i in range(0, len(cuts), self.batch_size):
            yield from self._align_chunk(cuts[i:i + self.batch_size])

    def _align_chunk(self, cuts):
        tmp = tempfile.mkdtemp(prefix="jstip-mfa-", dir=self.work_dir)
        root = Path(tmp)
        corpus, output = root / "corpus", root / "aligned"
        names: dict[str, str] = {}
        try:
            for k, cut in enumerate(cuts):
                try:
                    names[cut.id] = self._write_utterance(corpus, cut, k)
                except AlignmentError as e:
                    yield cut.id, None, str(e)
            if not names:
                return
            cmd = [self.executable, "align", str(corpus), self.dictionary, self.acoustic_model, str(output),
                   "--clean", "--single_speaker", "-j", str(self.num_jobs), *self.extra_args]
            log_path = root / "mfa.log"
            with open(log_path, "w") as log_file:
                proc = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT, check=False)
            log_text = log_path.read_text(errors="replace")[-800:]
            for cut in cuts:
                if cut.id not in names:
                    continue
                hits = list(output.rglob(names[cut.id] + ".TextGrid"))
                if not hits:
                    yield cut.id, None, (f"MFA wrote no TextGrid for this utterance (mfa exit code {proc.returncode}; "
                                         f"command: {' '.join(cmd)}; log tail: {log_text.strip()[-300:]!r})")
                    continue
                try:
                    yield cut.id, cut_with_textgrid(cut, hits[0]), None
                except AlignmentError as e:
                    yield cut.id, None, str(e)
        finally:
            if self.work_dir is None:
                shutil.rmtree(root, ignore_errors=True)

    def _write_utterance(self, corpus: Path, cut, k: int) -> str:
        if len(cut.supervisions) != 1:
            raise AlignmentError(f"cut {cut.id} has {len(cut.supervisions)} supervisions; the MFA backend aligns "
                                 "cuts with exactly one (split it with lhotse's trim_to_supervisions)")
        sup = cut.supervisions[0]
        words = split_words(sup.text or "")
        tokens = [t for w in words for t in tokens_for_word(w)]
        if not tokens:
            raise AlignmentError(f"supervision {sup.id} has no spoken word: nothing to align")
        audio = load_cut_audio(cut)
        a, b = int(sup.start * SAMPLE_RATE), int(sup.end * SAMPLE_RATE)
        if sup.start > 0:
            audio = np.concatenate([np.zeros(a, np.float32), audio[a:b]])  # keep cut time in the TextGrid
        else:
            audio = audio[:b]
        speaker = re.sub(r"[^A-Za-z0-9_-]", "_", sup.speaker or "spk")
        name = f"utt{k:07d}"
        folder = corpus / speaker
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{name}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
        (folder / f"{name}.lab").write_text(" ".join(tokens) + "\n", encoding="utf-8")
        return name
