"""pocketsphinx backend on real recorded speech, TTS speech and bad input, through the library and the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from lhotse import CutSet

from jstip.align import align_cuts, compare_alignments, get_aligner
from jstip.align.base import AlignmentError
from jstip.cli import main
from jstip.rejects import read_rejected
from jstip.text import words as split_words

TESTDATA = Path("/usr/share/pocketsphinx/test/data")


def _testdata_cuts(folder: Path, make_cut) -> list:
    """Every wav of pocketsphinx-testdata that has a transcript (librivox and cards: ``<s> text </s> (id)``)."""
    cuts = []
    for transcription in sorted(TESTDATA.rglob("*transcription")):
        for line in transcription.read_text().splitlines():
            m = re.match(r"\s*<s>(.*)</s>\s*\((\S+)\)", line)
            if not m:
                continue
            wav = transcription.parent / f"{m.group(2)}.wav"
            if not wav.exists():
                continue
            audio, sr = sf.read(wav, dtype="float32")
            assert sr == 16000
            cuts.append(make_cut(folder, f"{transcription.parent.name}-{m.group(2)}", audio,
                                 " ".join(m.group(1).split()), audio_path=wav))
    return cuts


def _check_items(cut) -> None:
    for sup in cut.supervisions:
        items = sup.alignment["word"]
        assert [a.symbol for a in items] == split_words(sup.text)
        prev = 0.0
        for a in items:
            assert a.start >= prev - 1e-6 and a.duration >= 0
            assert a.start + a.duration <= cut.duration + 0.011
            prev = a.start + a.duration


@pytest.mark.skipif(not TESTDATA.exists(), reason="pocketsphinx-testdata not installed (apt-get install "
                                                  "pocketsphinx-testdata)")
def test_pocketsphinx_testdata_aligns_or_rejects(tmp_path, cut_maker):
    cuts = _testdata_cuts(tmp_path, cut_maker)
    assert len(cuts) >= 10
    out = tmp_path / "out" / "cuts.jsonl.gz"
    summary = align_cuts(CutSet.from_cuts(cuts), get_aligner("pocketsphinx"), out, progress=False)
    rejected = read_rejected(out.parent / "rejected.jsonl")
    assert summary.total == len(cuts) == summary.aligned + summary.rejected
    assert all(r["reason"] for r in rejected)
    aligned = list(CutSet.from_file(out))
    assert len(aligned) == summary.aligned >= len(cuts) - 1
    for cut in aligned:
        _check_items(cut)
    # A word the recording has a clear pause before: the first word starts after the leading silence.
    first = {c.id: c for c in aligned}["librivox-sense_and_sensibility_01_austen_64kb-0930"]
    assert 0.1 < first.supervisions[0].alignment["word"][0].start < 0.4


def test_tts_speech_boundaries_close_to_engine(tts_cuts, tmp_path):
    path, cuts = tts_cuts
    out = tmp_path / "ps" / "cuts.jsonl.gz"
    summary = align_cuts(cuts, get_aligner("pocketsphinx"), out, progress=False)
    assert summary.rejected == 0, read_rejected(out.parent / "rejected.jsonl")
    hyp = CutSet.from_file(out)
    for cut in hyp:
        _check_items(cut)
    report = compare_alignments(cuts, hyp, trim_to_voiced=True)
    assert report["overall"]["n_utterances"] == len(cuts)
    assert report["overall"]["mean_abs_ms"] < 40, report["overall"]
    assert report["overall"]["within_50ms"] > 0.85, report["overall"]
    # Punctuation rides on the words; the transcript's digits stay digits.
    symbols = [a.symbol for a in hyp[0].supervisions[0].alignment["word"]]
    assert symbols[3] == "20" and symbols[-1] == "daily."


def test_out_of_dictionary_medical_word_aligns(tts_cuts):
    _, cuts = tts_cuts
    aligner = get_aligner("pocketsphinx")
    assert aligner.pronunciation("atorvastatin")  # from letter-to-sound, not cmudict
    cut = aligner.align_cut(cuts[0])
    items = {a.symbol: a for a in cut.supervisions[0].alignment["word"]}
    engine = {a.symbol: a for a in cuts[0].supervisions[0].alignment["word"]}
    assert abs(items["atorvastatin"].start - engine["atorvastatin"].start) < 0.06
    assert items["atorvastatin"].duration > 0.4


def test_phone_alignment_inside_words(tts_cuts):
    _, cuts = tts_cuts
    cut = get_aligner("pocketsphinx", phones=True).align_cut(cuts[1])
    sup = cut.supervisions[0]
    phones = sup.alignment["phone"]
    words = sup.alignment["word"]
    assert len(phones) > len(words)
    assert phones[0].start == pytest.approx(words[0].start) and phones[-1].end == pytest.approx(words[-1].end)


def test_wide_beam_retry(tts_cuts, monkeypatch):
    import jstip.align.pocketsphinx as ps

    _, cuts = tts_cuts
    # Beams so narrow that the first pass finds no path; the retry must rescue the utterance.
    monkeypatch.setattr(ps, "DEFAULT_BEAMS", dict(beam=1e-2, wbeam=1e-2, pbeam=1e-2))
    aligner = ps.PocketsphinxAligner()
    cut = aligner.align_cut(cuts[2])
    assert aligner.retried == 1
    _check_items(cut)


def test_bad_input_rejected_with_reasons(bad_cuts, tmp_path):
    path, expected = bad_cuts
    out = tmp_path / "aligned" / "cuts.jsonl.gz"
    result = CliRunner().invoke(main, ["align", "--aligner", "pocketsphinx", "--in", str(path), "--out", str(out),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    rejected = {r["id"]: r for r in read_rejected(out.parent / "rejected.jsonl")}
    aligned = {c.id for c in CutSet.from_file(out)}
    n_in = len(CutSet.from_file(path))
    assert n_in == len(aligned) + len(rejected) == summary["aligned"] + summary["rejected"]
    assert aligned == {"good-1", "good-2"}
    for cut_id, fragment in expected.items():
        assert cut_id in rejected, cut_id
        assert rejected[cut_id]["stage"] == "align"
        assert fragment in rejected[cut_id]["reason"], rejected[cut_id]


def test_unspellable_and_empty_raise():
    aligner = get_aligner("pocketsphinx")
    import numpy as np

    with pytest.raises(AlignmentError, match="punctuation only"):
        aligner.align_audio(np.zeros(16000, np.float32), "... -")
    with pytest.raises(AlignmentError, match="no Latin letters"):
        aligner.align_audio(np.zeros(16000, np.float32), "hello 日本")


def test_cut_inside_a_longer_recording_gets_recording_times(tts_cuts, tmp_path, cut_maker):
    """Alignment items are in recording time (lhotse's convention): a cut starting at 2.5 s of its recording gets
    items near 2.5 s + the times of the same audio aligned alone; TextGrid export writes cut-relative times."""
    import numpy as np
    from lhotse import SupervisionSegment
    from lhotse.utils import fastcopy

    _, cuts = tts_cuts
    alone = get_aligner("pocketsphinx").align_cut(cuts[1])
    audio_b = cuts[1].load_audio()[0]
    lead = np.zeros(int(2.5 * 16000), np.float32)
    long_cut = cut_maker(tmp_path, "long", np.concatenate([lead, audio_b]), "x")
    window = long_cut.truncate(offset=2.5, duration=cuts[1].duration, keep_excessive_supervisions=False)
    sup = SupervisionSegment(id="win", recording_id="long", start=0.0, duration=window.duration,
                             text=cuts[1].supervisions[0].text)
    window = fastcopy(window, supervisions=[sup])
    aligned = get_aligner("pocketsphinx").align_cut(window)
    got = [(a.symbol, a.start) for a in aligned.supervisions[0].alignment["word"]]
    want = [(a.symbol, a.start + 2.5) for a in alone.supervisions[0].alignment["word"]]
    assert [g[0] for g in got] == [w[0] for w in want]
    assert np.allclose([g[1] for g in got], [w[1] for w in want], atol=0.02)
    # The TTS-native validator and the compare helper read them the same way.
    assert get_aligner("tts").align_cut(aligned) is aligned
    from jstip.align.textgrid import read_textgrid_words, write_textgrid

    write_textgrid(aligned, tmp_path / "win.TextGrid")
    first = read_textgrid_words(tmp_path / "win.TextGrid")[0]
    assert first[1] == pytest.approx(got[0][1] - 2.5, abs=1e-3)


def test_fast_speech_aligned_at_5ms_frames():
    """At 300 words per minute espeak's phones are shorter than 30 ms, the minimum of the model's 3-state phones at
    10 ms frames: no path exists at any beam, and the 5 ms frame retry aligns it."""
    from jstip.tts import synthesize

    text = "Her angiogram is booked for Friday at seven."
    syn = synthesize(text, "espeak:en-us+m7@300")
    aligner = get_aligner("pocketsphinx")
    spans = aligner.align_audio(syn.audio, text)
    assert aligner.attempts == {2: 1}
    errors = [abs(s.start - w.start) for s, w in zip(spans, syn.words)][1:]  # the first start sits in silence
    assert np.mean(errors) < 0.05


@pytest.mark.skipif(not TESTDATA.exists(), reason="pocketsphinx-testdata not installed")
def test_wrong_transcript_on_real_speech_is_caught_by_word_scores():
    """A real recording with another utterance's transcript: a path exists, but most words fit poorly."""
    from jstip.align.pocketsphinx import PocketsphinxAligner

    audio, _ = sf.read(TESTDATA / "librivox" / "sense_and_sensibility_01_austen_64kb-0920.wav", dtype="float32")
    wrong = "he might even have been made amiable himself"
    with pytest.raises(AlignmentError, match="does not match the audio"):
        get_aligner("pocketsphinx").align_audio(audio, wrong)
    unchecked = PocketsphinxAligner(max_poor_share=float("inf"), min_mean_score=float("-inf"))
    assert len(unchecked.align_audio(audio, wrong)) == 8  # without the check it would be accepted
    right = "had he married a more a amiable woman he might have been made still more respectable than he was"
    assert len(get_aligner("pocketsphinx").align_audio(audio, right)) == len(right.split())
