"""Conformance with the published biasing scorer (Le et al. 2021): every figure of expected.json, to the count."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from jstip.scoring.commands import cli

# The project's shared copy when the checkout sits beside it, else the copy committed in tests/fixtures (MIT licence,
# see its README): the test never depends on what is beside the checkout.
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "biasing"
BIASING = SHARED if (SHARED / "expected.json").exists() else \
    Path(__file__).resolve().parents[1] / "fixtures" / "conformance" / "biasing"
SYSTEMS = ["test-clean.b1", "test-clean.s1", "test-other.b1", "test-other.s1"]


def test_the_committed_copy_is_the_published_set():
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "conformance" / "biasing"
    assert (fixture / "expected.json").exists()
    if SHARED.exists():
        for f in SHARED.iterdir():
            assert (fixture / f.name).read_bytes() == f.read_bytes(), f.name


@pytest.mark.parametrize("system", SYSTEMS)
def test_jstip_score_reproduces_published_wer_u_wer_b_wer(system, tmp_path):
    expected = json.loads((BIASING / "expected.json").read_text())[system]
    split = system.split(".")[0]
    # The published scorer compares the words as written (the corpus is normalised already): --normalizer none.
    result = CliRunner().invoke(cli, ["--ref", str(BIASING / f"{split}.ref.jsonl"),
                                      "--hyp", str(BIASING / f"{system}.hyp.jsonl"),
                                      "--out", str(tmp_path), "--normalizer", "none"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for figure in ("wer", "u_wer", "b_wer"):
        want = expected[figure]
        got = metrics[f"{figure}_counts"]
        assert (got["ref_words"], got["subs"], got["ins"], got["dels"]) == (
            want["ref_words"], want["subs"], want["ins"], want["dels"]), figure
        assert 100 * metrics[figure] == pytest.approx(want["error_rate"], abs=1e-12), figure
    assert metrics["missing_ids"] == [] and metrics["extra_ids"] == []
