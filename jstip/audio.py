"""The one way a cut's audio becomes samples: mono float32 at 16 kHz, checked.

Every stage that reads audio (alignment, training data, the CTC prior, decoding, evaluation) calls
:func:`load_cut_audio`, so a cut gives the same samples everywhere:

- **Mono**: a multi-channel recording is the mean of its channels (not channel 0): what a single-channel model would
  hear from a downmix.
- **16 kHz**: other rates are resampled by lhotse.
- **Checked**: audio that cannot be read, is empty, holds non-finite samples (NaN, inf), or whose file's real rate
  differs from the rate the manifest declares raises :class:`AudioError`, naming the cut and the fix. Callers turn it
  into a reject with that reason; one bad cut never stops a job.
- **Nothing runs**: lhotse runs a ``"type": "command"`` audio source through a shell. A manifest is data, so such a
  source is refused unless the user says they trust it: ``jstip --allow-command-audio ...`` (or the environment
  variable ``JSTIP_ALLOW_COMMAND_AUDIO=1``, which worker processes inherit).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
"""The sample rate of every model input in jstip."""

FRAME_SHIFT = 0.08
"""Seconds of audio per LLM speech position by default (``model.frame_shift`` sets a model's own)."""


def samples_per_frame(frame_shift: float = FRAME_SHIFT, sampling_rate: int = SAMPLE_RATE) -> int:
    """Samples of one speech position: 1280 at 80 ms and 16 kHz."""
    return int(round(frame_shift * sampling_rate))


def num_frames(num_samples: int, frame_shift: float = FRAME_SHIFT, sampling_rate: int = SAMPLE_RATE) -> int:
    """Speech positions of ``num_samples`` samples: rounded to the nearest whole frame, at least one (the rounding
    rule of the rendered-batch contract, :mod:`jstip.data.batch`)."""
    spf = samples_per_frame(frame_shift, sampling_rate)
    return max(1, int(num_samples / spf + 0.5))

ALLOW_COMMANDS_ENV = "JSTIP_ALLOW_COMMAND_AUDIO"


class AudioError(ValueError):
    """A cut's audio cannot be used: the message names the cut, the reason and the fix."""


def command_sources_allowed() -> bool:
    return os.environ.get(ALLOW_COMMANDS_ENV, "") not in ("", "0", "false", "no")


def allow_command_sources(allow: bool = True) -> None:
    """Let (or stop) lhotse run ``command`` audio sources, in this process and the worker processes it starts."""
    if allow:
        os.environ[ALLOW_COMMANDS_ENV] = "1"
    else:
        os.environ.pop(ALLOW_COMMANDS_ENV, None)


def recordings_of(cut) -> list:
    """The recordings a cut reads: its own, or every track's of a mixed cut."""
    recording = getattr(cut, "recording", None)
    if recording is not None:
        return [recording]
    out = []
    for track in getattr(cut, "tracks", None) or []:
        out += recordings_of(track.cut)
    return out


def check_sources(cut) -> None:
    """Raise :class:`AudioError` for a source that would run a command (unless allowed) or a file that is missing.
    Reads no audio."""
    for recording in recordings_of(cut):
        for source in recording.sources:
            if source.type == "command" and not command_sources_allowed():
                raise AudioError(
                    f"cut {cut.id}: recording {recording.id} has a 'command' audio source ({str(source.source)[:120]!r})"
                    " that lhotse would run through a shell; jstip does not run commands found in a manifest. If you "
                    f"trust it, run with `jstip --allow-command-audio ...` (or {ALLOW_COMMANDS_ENV}=1)")
            if source.type == "file" and not Path(source.source).is_file():
                raise AudioError(f"cut {cut.id}: audio file {source.source} of recording {recording.id} does not "
                                 "exist; fix the path in the recordings manifest")


def _check_declared_rate(cut) -> None:
    """A file whose header rate differs from the manifest's ``sampling_rate`` would be played at the wrong speed."""
    import soundfile as sf

    for recording in recordings_of(cut):
        for source in recording.sources:
            if source.type != "file":
                continue
            try:
                info = sf.info(str(source.source))
            except Exception:  # noqa: BLE001 -- a format soundfile cannot parse is read (and checked) by lhotse
                continue
            if int(info.samplerate) != int(recording.sampling_rate):
                raise AudioError(f"cut {cut.id}: recording {recording.id} declares {recording.sampling_rate} Hz but "
                                 f"its file {source.source} is {info.samplerate} Hz; fix sampling_rate (and "
                                 "num_samples, duration) in the recordings manifest")


def load_cut_audio(cut) -> np.ndarray:
    """(T,) float32 mono samples of a lhotse cut at 16 kHz (see the module docstring for what is checked).

    Raises:
        AudioError: naming the cut, the reason and the fix.
    """
    check_sources(cut)
    _check_declared_rate(cut)
    try:
        resampled = cut.resample(SAMPLE_RATE) if cut.sampling_rate != SAMPLE_RATE else cut
        audio = np.asarray(resampled.load_audio(), dtype=np.float32)
    except Exception as err:  # noqa: BLE001 -- lhotse raises many types for missing or corrupt audio
        sources = ", ".join(str(s.source) for r in recordings_of(cut) for s in r.sources)
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        raise AudioError(f"cut {cut.id}: cannot read its audio ({sources}): {type(err).__name__}: {first}; fix the "
                         "path or the file") from err
    if audio.ndim == 2:
        audio = audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]
    audio = audio.reshape(-1)
    if audio.size == 0:
        raise AudioError(f"cut {cut.id}: its audio is empty (0 samples); drop the cut or fix its start/duration")
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise AudioError(f"cut {cut.id}: its audio holds {bad} non-finite samples (NaN or inf); re-export the file "
                         "or drop the cut")
    return audio


def load_cut_audio_or_reject(cut, rejects=None) -> np.ndarray | None:
    """:func:`load_cut_audio`, or None for audio that cannot be used: logged, and written to ``rejects`` (a
    ``jstip.rejects.RejectLog``) with the reason; one unreadable cut never stops a job."""
    import logging

    try:
        return load_cut_audio(cut)
    except AudioError as err:
        reason = str(err)
    except Exception as err:  # noqa: BLE001 -- one unreadable cut never stops the job
        reason = f"audio not readable ({type(err).__name__}: {err}); check the recording's source path"
    logging.getLogger(__name__).warning("%s: %s", cut.id, reason)
    if rejects is not None:
        rejects.reject(cut.id, reason)
    return None


def read_wav_scp(path: str | Path) -> list[tuple[int, str, str | None]]:
    """The entries of a Kaldi ``wav.scp``: (line number, recording id, its source) per non-empty line. The source is
    a path, or a piped command ending in ``|`` (:func:`is_piped`); None when the line holds only an id."""
    entries = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.strip().split(maxsplit=1)
        if parts:
            entries.append((lineno, parts[0], parts[1].strip() if len(parts) > 1 else None))
    return entries


def is_piped(source: str) -> bool:
    """True for a ``wav.scp`` source that is a shell command (``sox ... - |``), not a file."""
    return source.rstrip().endswith("|")


__all__ = ["ALLOW_COMMANDS_ENV", "AudioError", "FRAME_SHIFT", "SAMPLE_RATE", "allow_command_sources", "check_sources",
           "command_sources_allowed", "is_piped", "load_cut_audio", "load_cut_audio_or_reject", "num_frames",
           "read_wav_scp", "recordings_of", "samples_per_frame"]
