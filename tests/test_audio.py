"""jstip/audio.py: one way a cut's audio becomes samples, the same in every stage."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture()
def stereo_cut(tmp_path):
    from lhotse import MonoCut, Recording, SupervisionSegment

    rng = np.random.default_rng(0)
    left = (0.2 * rng.standard_normal(8000)).astype(np.float32)
    right = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    rec = Recording.from_file(str(path), recording_id="stereo")
    sup = SupervisionSegment(id="stereo", recording_id="stereo", start=0.0, duration=rec.duration, channel=[0, 1],
                             text="two channels here")
    cut = MonoCut(id="stereo", start=0.0, duration=rec.duration, channel=[0, 1], recording=rec, supervisions=[sup])
    return cut, (left + right) / 2


def test_a_stereo_cut_gives_the_same_samples_to_every_stage(stereo_cut):
    from jstip.align.base import load_cut_audio as align_audio
    from jstip.audio import load_cut_audio
    from jstip.audio import load_cut_audio_or_reject as decode_audio
    from jstip.model.speechlm import _audio_of
    from jstip.pretrain.ctc import CTCCutDataset

    cut, mean = stereo_cut
    reference = load_cut_audio(cut)
    np.testing.assert_allclose(reference, mean, atol=1e-6)  # the documented downmix: the mean of the channels
    for name, samples in (("align", align_audio(cut)), ("evaluate", decode_audio(cut)), ("model", _audio_of(cut)),
                          ("ctc prior", CTCCutDataset(["a"], cache_audio=False).audio(cut))):
        np.testing.assert_array_equal(samples, reference, err_msg=name)


def test_bad_audio_is_named_with_the_reason(tmp_path, stereo_cut, monkeypatch):
    from lhotse.audio import AudioSource
    from lhotse.utils import fastcopy

    from jstip.audio import AudioError, allow_command_sources, load_cut_audio

    cut, _ = stereo_cut
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1] * 1000, dtype=np.float32), 16000, subtype="FLOAT")
    rec = fastcopy(cut.recording, sources=[AudioSource("file", [0], str(path))], num_samples=3000, duration=3000 / 16000)
    with pytest.raises(AudioError, match="cut stereo: its audio holds 1000 non-finite samples"):
        load_cut_audio(fastcopy(cut, recording=rec, duration=rec.duration, channel=0))
    marker = tmp_path / "ran"
    cmd = fastcopy(cut.recording, sources=[AudioSource("command", [0, 1], f"touch {marker}; cat {cut.recording.sources[0].source}")])
    monkeypatch.delenv("JSTIP_ALLOW_COMMAND_AUDIO", raising=False)
    with pytest.raises(AudioError, match="'command' audio source"):
        load_cut_audio(fastcopy(cut, recording=cmd))
    assert not marker.exists()
    allow_command_sources()  # the user's explicit choice: then lhotse runs it
    try:
        load_cut_audio(fastcopy(cut, recording=cmd))
    finally:
        allow_command_sources(False)
    assert marker.exists()
