"""The TTS backends: real engines, 16 kHz audio, one word time per input word, mapped back from expansions."""

import numpy as np
import pytest

from jstip.text import words
from jstip.tts import SynthesisError, Voice, default_voices, synthesize


def _check(syn, text):
    assert syn.sampling_rate == 16000
    assert syn.audio.dtype == np.float32 and syn.audio.ndim == 1
    assert np.abs(syn.audio).max() > 0.05, "silent audio"
    assert [w.word for w in syn.words] == words(text)
    prev = 0.0
    for w in syn.words:
        assert prev <= w.start < w.end <= syn.duration + 1e-6, (w, prev, syn.duration)
        prev = w.end


@pytest.mark.parametrize("voice", ["espeak:en-us+f3@160", "espeak:en-gb-scotland+m2@210", "espeak:en+klatt@140",
                                   "festival:kal_diphone", "festival:cmu_us_slt_arctic_hts@110"])
def test_voices_speak_every_word_in_order(voice):
    text = "Take 20 mg of atorvastatin, Dr. Smith said. The patient (aged 64) has type-2 diabetes."
    _check(synthesize(text, voice), text)


def test_expanded_words_map_back_to_input_words():
    # "2,500" is spoken as several engine words; "the" is joined to "on" by espeak-ng: still one item each.
    text = "He walked 2,500 steps on the beach."
    syn = synthesize(text, "espeak:en-us+m1@175")
    _check(syn, text)
    by_word = {w.word: w for w in syn.words}
    assert by_word["2,500"].end - by_word["2,500"].start > 0.5  # "two thousand five hundred" is long
    assert by_word["the"].start > by_word["on"].start


def test_word_times_track_the_audio():
    # A word's span holds speech; the silence at a sentence break lies between words, not inside them.
    syn = synthesize("Hello there. Goodbye now.", "espeak:en-us+f2@150")
    hop = 80
    energy = np.array([np.mean(syn.audio[i:i + hop] ** 2) for i in range(0, len(syn.audio) - hop, hop)])
    loud = energy > energy.max() * 1e-3
    for w in syn.words:
        a, b = int(w.start * 16000 / hop), int(w.end * 16000 / hop)
        assert loud[a:b].mean() > 0.5, w
    gap = syn.words[2].start - syn.words[1].end
    assert gap > 0.1, "the pause after 'there.' should not be inside a word"


def test_rates_change_duration():
    slow = synthesize("The meeting starts at seven.", "espeak:en-us+m3@120")
    fast = synthesize("The meeting starts at seven.", "espeak:en-us+m3@260")
    assert slow.duration > 1.5 * fast.duration


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(SynthesisError, match="no voice"):
        synthesize("hello", "espeak:xx-nonexistent")
    with pytest.raises(ValueError, match="engine:name"):
        Voice.parse("nocolon")


def test_default_voices_are_many_and_span_engines():
    voices = default_voices()
    assert len(voices) >= 50
    assert {v.engine for v in voices} == {"espeak", "festival"}


@pytest.mark.parametrize("voice", ["espeak:en-029+f2@195", "espeak:en-us+klatt@140", "festival:kal_diphone"])
def test_the_same_text_and_voice_give_the_same_samples_whatever_was_spoken_before(voice):
    # libespeak-ng keeps state between utterances and seeds rand() from the clock: each utterance is spoken in a fresh
    # fork of a helper whose engine never spoke, so a corpus comes out the same in every run and every worker.
    text = "Please send the report to Mitchell by Sunday."
    first = synthesize(text, voice)
    synthesize("Her intubation is booked for Monday at midnight.", "espeak:en-gb-scotland+m3@175")
    synthesize("Take two tablets daily.", voice)
    again = synthesize(text, voice)
    assert np.array_equal(first.audio, again.audio)
    assert [(w.start, w.end) for w in first.words] == [(w.start, w.end) for w in again.words]


def test_a_dead_espeak_helper_is_replaced():
    from jstip.tts import espeak

    before = synthesize("One two three.", "espeak:en-us+m1")
    helper = espeak._get_helper()
    helper.proc.kill()
    helper.proc.wait()
    with pytest.raises(SynthesisError, match="helper process failed"):  # a request to the dead one: a clear error
        helper.speak("One two three.", Voice.parse("espeak:en-us+m1"), ["One", "two", "three."])
    after = synthesize("One two three.", "espeak:en-us+m1")
    assert espeak._get_helper() is not helper
    assert np.array_equal(before.audio, after.audio)
