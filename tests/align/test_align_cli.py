"""The ``jstip align`` command and its subcommands, called as a user types them."""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from lhotse import CutSet

from jstip.cli import main
from jstip.rejects import read_rejected


def _run(args):
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


@pytest.mark.parametrize("sub", [[], ["compare"], ["import-textgrid"], ["import-ctm"], ["export"]])
def test_help(sub):
    result = CliRunner().invoke(main, ["align", *sub, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def test_shards_parallel_and_restart(tts_cuts, tmp_path):
    path, cuts = tts_cuts
    outs = [tmp_path / f"shard{i}" / "cuts.jsonl.gz" for i in range(2)]
    for i, out in enumerate(outs):
        s = _run(["align", "--aligner", "pocketsphinx", "--in", str(path), "--out", str(out), "-j", "2",
                  "--shard", f"{i}/2", "--quiet"])
        assert s["total"] == s["aligned"] + s["rejected"]
    ids = [c.id for out in outs for c in CutSet.from_file(out)]
    assert sorted(ids) == sorted(c.id for c in cuts)
    # Restart: everything is skipped, nothing is written twice.
    s = _run(["align", "--in", str(path), "--out", str(outs[0]), "--shard", "0/2", "--quiet"])
    assert s["skipped"] == s["total"] > 0
    assert len(list(CutSet.from_file(outs[0]))) == s["aligned"]


def test_compare_writes_per_utterance_json(tts_cuts, tmp_path):
    path, cuts = tts_cuts
    out = tmp_path / "ps" / "cuts.jsonl.gz"
    _run(["align", "--in", str(path), "--out", str(out), "--quiet"])
    report_path = tmp_path / "cmp.json"
    overall = _run(["align", "compare", "--ref", str(path), "--hyp", str(out), "--out", str(report_path)])["overall"]
    report = json.loads(report_path.read_text())
    assert set(report["utterances"]) == {c.id for c in cuts}
    assert 0 < overall["mean_abs_ms"] < 50 and 0 <= overall["within_20ms"] <= overall["within_50ms"] <= 1
    # Against itself: no error at all.
    same = _run(["align", "compare", "--ref", str(path), "--hyp", str(path)])["overall"]
    assert same["mean_abs_ms"] == 0 and same["within_20ms"] == 1


def _hand_aligned(folder, cut_maker):
    import numpy as np

    text = "Take 20 mg -- then rest."
    times = [("Take", 0.10, 0.40), ("20", 0.45, 0.80), ("mg", 0.80, 1.30), ("--", 1.30, 1.30), ("then", 1.60, 1.90),
             ("rest.", 1.90, 2.40)]
    words = [SimpleNamespace(word=w, start=s, end=e) for w, s, e in times]
    audio = np.zeros(int(2.6 * 16000), np.float32)
    cut = cut_maker(folder, "hand", audio, text, words)
    path = folder / "hand.jsonl.gz"
    CutSet.from_cuts([cut]).to_file(path)
    return path, times


@pytest.mark.parametrize("fmt", ["textgrid", "ctm"])
def test_export_import_round_trip(tmp_path, cut_maker, fmt):
    path, times = _hand_aligned(tmp_path, cut_maker)
    _run(["align", "export", "--in", str(path), "--format", fmt, "--out", str(tmp_path / "exp")])
    out = tmp_path / "imp" / "cuts.jsonl.gz"
    if fmt == "textgrid":
        assert (tmp_path / "exp" / "hand.TextGrid").exists()
        s = _run(["align", "import-textgrid", "--cuts", str(path), "--textgrids", str(tmp_path / "exp"), "--out",
                  str(out)])
    else:
        s = _run(["align", "import-ctm", "--cuts", str(path), "--ctm", str(tmp_path / "exp" / "words.ctm"), "--out",
                  str(out)])
    assert s == {"imported": 1, "rejected": 0, "out": str(out)}
    items = CutSet.from_file(out)[0].supervisions[0].alignment["word"]
    assert [(a.symbol, a.start, round(a.start + a.duration, 4)) for a in items] == \
        [(w, pytest.approx(st, abs=1e-3), pytest.approx(e, abs=1e-3)) for w, st, e in times]


def test_import_textgrid_written_by_praatio_with_tokens(tmp_path, cut_maker):
    """A TextGrid labelled with the aligner's tokens (as MFA writes them) maps back to the transcript's words."""
    from praatio import textgrid

    path, _ = _hand_aligned(tmp_path, cut_maker)
    tg = textgrid.Textgrid()
    entries = [(0.1, 0.4, "take"), (0.45, 0.8, "twenty"), (0.8, 1.3, "mg"), (1.3, 1.6, "sil"), (1.6, 1.9, "then"),
               (1.9, 2.4, "rest")]
    tg.addTier(textgrid.IntervalTier("words", entries, 0, 2.6))
    (tmp_path / "tg").mkdir()
    tg.save(str(tmp_path / "tg" / "hand.TextGrid"), format="short_textgrid", includeBlankSpaces=True)
    out = tmp_path / "imp" / "cuts.jsonl.gz"
    _run(["align", "import-textgrid", "--cuts", str(path), "--textgrids", str(tmp_path / "tg"), "--out", str(out)])
    items = CutSet.from_file(out)[0].supervisions[0].alignment["word"]
    assert [a.symbol for a in items] == ["Take", "20", "mg", "--", "then", "rest."]
    assert items[1].start == pytest.approx(0.45) and items[3].duration == 0


FAKE_MFA = """\
#!{python}
# A stand-in for `mfa align CORPUS DICT MODEL OUT ...`: writes one TextGrid per .lab, words spread evenly over the
# audio, except for utterances whose .lab contains "zebra" (as if MFA failed to align them).
import sys
from pathlib import Path

import soundfile as sf
from praatio import textgrid

args = sys.argv[1:]
assert args[0] == "align", args
corpus, out = Path(args[1]), Path(args[4])
Path(out).mkdir(parents=True, exist_ok=True)
(Path(out) / "argv.txt").write_text(" ".join(args))
for lab in corpus.rglob("*.lab"):
    words = lab.read_text().split()
    if "zebra" in words:
        continue
    duration = sf.info(str(lab.with_suffix(".wav"))).duration
    step = duration / len(words)
    entries = [(round(i * step, 3), round((i + 1) * step, 3), w) for i, w in enumerate(words)]
    tg = textgrid.Textgrid()
    tg.addTier(textgrid.IntervalTier("words", entries, 0, duration))
    dest = out / lab.parent.name / (lab.stem + ".TextGrid")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tg.save(str(dest), format="long_textgrid", includeBlankSpaces=True)
"""


def test_mfa_backend_with_fake_mfa(tts_cuts, tmp_path, monkeypatch):
    path, cuts = tts_cuts
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mfa = bin_dir / "mfa"
    mfa.write_text(FAKE_MFA.format(python=sys.executable))
    mfa.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # One utterance MFA "fails" on.
    bad = cuts[0].supervisions[0]
    broken = cuts[0].with_id("zebra-cut")
    from lhotse.utils import fastcopy

    broken = fastcopy(broken, supervisions=[fastcopy(bad, id="zebra-cut", text="A zebra walked home.")])
    in_path = tmp_path / "in.jsonl.gz"
    CutSet.from_cuts(list(cuts) + [broken]).to_file(in_path)
    out = tmp_path / "mfa" / "cuts.jsonl.gz"
    s = _run(["align", "--aligner", "mfa", "--in", str(in_path), "--out", str(out), "--quiet"])
    assert s["aligned"] == len(cuts) and s["rejected"] == 1
    rejected = read_rejected(out.parent / "rejected.jsonl")
    assert rejected[0]["id"] == "zebra-cut" and "MFA wrote no TextGrid" in rejected[0]["reason"]
    aligned = {c.id: c for c in CutSet.from_file(out)}
    items = aligned[cuts[0].id].supervisions[0].alignment["word"]
    assert [a.symbol for a in items] == cuts[0].supervisions[0].text.split()
    assert all(b.start >= a.start + a.duration - 1e-6 for a, b in zip(items, items[1:]))


def test_mfa_missing_says_how_to_install(tts_cuts, tmp_path, monkeypatch):
    path, _ = tts_cuts
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(main, ["align", "--aligner", "mfa", "--in", str(path), "--out",
                                       str(tmp_path / "o.jsonl.gz")])
    assert result.exit_code != 0 and "alignment/mfa/README.md" in result.output


def test_tts_native_keeps_engine_times_and_rejects_broken(tts_cuts, tmp_path):
    from lhotse.supervision import AlignmentItem
    from lhotse.utils import fastcopy

    path, cuts = tts_cuts
    sup = cuts[1].supervisions[0]
    items = list(sup.alignment["word"])
    items[1], items[2] = items[2], items[1]  # out of order
    broken = fastcopy(cuts[1].with_id("broken"), supervisions=[fastcopy(sup, alignment={"word": items})])
    no_times = fastcopy(cuts[2].with_id("no-times"), supervisions=[fastcopy(cuts[2].supervisions[0], alignment=None)])
    in_path = tmp_path / "in.jsonl.gz"
    CutSet.from_cuts(list(cuts) + [broken, no_times]).to_file(in_path)
    out = tmp_path / "tts" / "cuts.jsonl.gz"
    s = _run(["align", "--aligner", "tts", "--in", str(in_path), "--out", str(out), "--quiet"])
    assert (s["aligned"], s["rejected"]) == (len(cuts), 2)
    kept = {c.id: c for c in CutSet.from_file(out)}
    assert kept[cuts[0].id].supervisions[0].alignment["word"] == list(cuts[0].supervisions[0].alignment["word"])
    assert isinstance(kept[cuts[0].id].supervisions[0].alignment["word"][0], AlignmentItem)
    reasons = {r["id"]: r["reason"] for r in read_rejected(out.parent / "rejected.jsonl")}
    assert "not monotonic" in reasons["broken"] or "where the transcript has" in reasons["broken"]
    assert "no engine word times" in reasons["no-times"]


def test_restart_after_a_kill_that_cut_the_output_short(tts_cuts, tmp_path):
    """A job killed mid-write leaves a gzip stream without its end: the restart keeps the complete cuts, aligns the
    rest again, and every input cut ends up exactly once in the output."""
    path, cuts = tts_cuts
    out = tmp_path / "tts" / "cuts.jsonl.gz"
    _run(["align", "--aligner", "tts", "--in", str(path), "--out", str(out), "--quiet"])
    full = out.read_bytes()
    out.write_bytes(full[: len(full) * 6 // 10])  # what a SIGKILL during writing leaves
    with pytest.raises(Exception):
        list(CutSet.from_file(out))
    s = _run(["align", "--aligner", "tts", "--in", str(path), "--out", str(out), "--quiet"])
    assert s["total"] == s["aligned"] + s["rejected"] == len(cuts)
    assert 0 < s["skipped"] < len(cuts)
    ids = [c.id for c in CutSet.from_file(out)]
    assert sorted(ids) == sorted(c.id for c in cuts)


@pytest.mark.parametrize("jobs", [1, 2])
def test_align_killed_at_random_points_resumes_to_the_same_bytes(mini_corpus, tmp_path, jobs):
    """SIGKILL at random moments, then a re-run: the cuts finished before each kill are kept (not aligned again),
    and the final manifest is byte-identical to an uninterrupted run's, with one worker or two."""
    import random
    import signal
    import subprocess
    import sys
    import time

    from jstip.align.base import _complete_lines

    cuts = mini_corpus / "train" / "cuts.jsonl.gz"

    def command(out):
        return [sys.executable, "-m", "jstip.cli", "align", "--aligner", "pocketsphinx", "--in", str(cuts),
                "--out", str(out), "--quiet", "-j", str(jobs)]

    whole = tmp_path / "whole" / "cuts.jsonl.gz"
    subprocess.run(command(whole), check=True, capture_output=True)
    out = tmp_path / "killed" / "cuts.jsonl.gz"
    partial = out.with_name(out.name + ".partial.jsonl")
    total = len(CutSet.from_file(cuts))
    rng = random.Random(jobs)
    kept_before = []
    for target in sorted(rng.sample(range(1, total - 2), 3)):  # kill once the job has passed `target` cuts
        proc = subprocess.Popen(command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while proc.poll() is None and not (partial.exists() and len(_complete_lines(partial)[0]) >= target):
            time.sleep(rng.uniform(0.0, 0.05))  # a random moment: mid-line or between lines
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert partial.exists() and not out.exists()  # killed mid-job
        kept_before.append(len(_complete_lines(partial)[0]))
    assert kept_before[-1] < total
    result = subprocess.run(command(out), check=True, capture_output=True, text=True)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["skipped"] == kept_before[-1] and summary["aligned"] == total  # finished work is not redone
    assert out.read_bytes() == whole.read_bytes()
    assert not partial.exists()
