"""`jstip interleave` and `jstip interleave stats` through the real CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from lhotse import CutSet

from jstip.cli import main
from jstip.rejects import read_rejected


@pytest.fixture()
def mixed_cuts_file(tmp_path, tts_cuts, broken_cuts):
    path = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(list(tts_cuts) + [c for k, c in broken_cuts.items() if k != "single_word"]).to_file(path)
    return path


@pytest.mark.parametrize("level", ["word", "segment", "mixed"])
def test_cli_writes_examples_and_rejects(tmp_path, mixed_cuts_file, tts_cuts, broken_cuts, level):
    out = tmp_path / "out" / "il.jsonl"
    res = CliRunner().invoke(main, ["interleave", "--in", str(mixed_cuts_file), "--out", str(out), "--level", level,
                                    "--seed", "7"])
    assert res.exit_code == 0, res.output
    examples = [json.loads(line) for line in out.read_text().splitlines()]
    rejected = read_rejected(out.parent / "rejected.jsonl")
    n_in = len(tts_cuts) + len(broken_cuts) - 1
    assert len(examples) + len(rejected) == n_in
    assert {r["id"] for r in rejected} == {"s5", "no_alignment", "wrong_word", "missing_word", "backwards"}
    assert all(r["stage"] == "interleave" and r["reason"] for r in rejected)
    for ex in examples:
        assert ex["level"] == level and ex["segments"][-1]["modality"] == "text"
        assert set(ex["segments"][0]) == {"modality", "text", "start", "end"}
    # Same seed, same file; a rerun into the same folder does not log its rejects twice.
    before = out.read_text()
    res = CliRunner().invoke(main, ["interleave", "--in", str(mixed_cuts_file), "--out", str(out), "--level", level,
                                    "--seed", "7"])
    assert res.exit_code == 0, res.output
    assert out.read_text() == before
    assert len(read_rejected(out.parent / "rejected.jsonl")) == len(rejected)


def test_cli_policy_and_epoch_change_examples(tmp_path, mixed_cuts_file):
    outs = []
    for epoch in (0, 1):
        out = tmp_path / f"e{epoch}" / "il.jsonl"
        res = CliRunner().invoke(main, ["interleave", "--in", str(mixed_cuts_file), "--out", str(out), "--level",
                                        "word", "--policy", "alternate", "--epoch", str(epoch)])
        assert res.exit_code == 0, res.output
        outs.append([json.loads(x)["variant"] for x in out.read_text().splitlines()])
    assert all(a != b for a, b in zip(*outs))


def test_cli_stats(mixed_cuts_file):
    res = CliRunner().invoke(main, ["interleave", "stats", "--in", str(mixed_cuts_file), "--level", "word",
                                    "--policy", "random", "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)
    assert stats["cuts"] == stats["examples"] + stats["rejected"]
    assert stats["rejected"] == 5
    assert 0.1 < stats["speech_share"] < 0.6
    assert stats["segment_units"] > 0 and stats["word_units"] > stats["segment_units"]
    assert sum(stats["segment_words_histogram"].values()) == stats["segment_units"]
    table = CliRunner().invoke(main, ["interleave", "stats", "--in", str(mixed_cuts_file)])
    assert "speech share" in table.output and "segment length (words)" in table.output


def test_cli_help_and_usage_errors(tmp_path):
    runner = CliRunner()
    assert "Example" in runner.invoke(main, ["interleave", "--help"]).output
    assert "Example" in runner.invoke(main, ["interleave", "stats", "--help"]).output
    res = runner.invoke(main, ["interleave", "--out", str(tmp_path / "x.jsonl")])
    assert res.exit_code != 0 and "--in" in res.output
