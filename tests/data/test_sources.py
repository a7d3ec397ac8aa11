"""Training cuts read lazily from manifests and Shar directories: screened once, dealt to ranks, mixed by weight."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from lhotse import CutSet

from jstip.cuts import screen_cuts
from jstip.data.dataset import DataConfig, build_sampler
from jstip.data.sources import TrainCuts
from jstip.rejects import RejectLog, read_rejected
from jstip.train.data import load_cuts

JSTIP = str(Path(sys.executable).parent / "jstip")


@pytest.fixture(scope="module")
def shar_dir(mini_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shar") / "train"
    run = subprocess.run([JSTIP, "export-shar", "--in", str(mini_corpus / "train" / "cuts.jsonl.gz"), "--out",
                          str(out), "--shard-size", "7", "--no-progress"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return out


def _lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def _write(path: Path, rows: list) -> Path:
    with gzip.open(path, "wt") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def test_a_lazy_manifest_gives_the_eager_runs_batches(mini_corpus, tmp_path):
    # The demo's runs read their manifest lazily now: the same cuts, the same order, the same batches.
    path = mini_corpus / "train" / "cuts.jsonl.gz"
    cfg = DataConfig(max_duration=20, bucketing=True, shuffle=True)
    eager_rejects = RejectLog(tmp_path / "a.jsonl", "train")
    eager = screen_cuts(load_cuts(path, eager_rejects), eager_rejects, cfg.max_duration, "train")
    lazy = TrainCuts.open(path, RejectLog(tmp_path / "b.jsonl", "train"), cfg.max_duration)
    epoch = lazy.epoch(0, seed=0)
    assert epoch.is_lazy and len(epoch) == len(eager) == len(lazy)
    for e in (0, 1):
        a = [[c.id for c in b] for b in build_sampler(eager, cfg, 0, e)]
        b = [[c.id for c in b] for b in build_sampler(lazy.epoch(e, 0), cfg, 0, e)]
        assert a == b and a


def test_screening_rejects_each_bad_cut_once_and_the_epochs_skip_them(mini_corpus, tmp_path):
    rows = _lines(mini_corpus / "train" / "cuts.jsonl.gz")[:6]
    empty = json.loads(json.dumps(rows[1]))
    empty["supervisions"][0]["text"] = ""
    missing = json.loads(json.dumps(rows[2]))
    missing["recording"]["sources"][0]["source"] = "/nonexistent/audio.flac"
    manifest = _write(tmp_path / "cuts.jsonl.gz", [rows[0], empty, missing, "{not json", rows[3], rows[0], rows[4]])
    rejects = RejectLog(tmp_path / "rejected.jsonl", "train")
    cuts = TrainCuts.open(manifest, rejects)
    assert [c.id for c in cuts.epoch(0, 0)] == [rows[0]["id"], rows[3]["id"], rows[4]["id"]]
    reasons = {r["id"]: r["reason"] for r in read_rejected(rejects.path)}
    assert "empty transcript" in reasons[rows[1]["id"]]
    assert "/nonexistent/audio.flac" in reasons[rows[2]["id"]]
    assert "not valid JSON" in reasons[f"{manifest}:4"]
    assert "duplicate cut id" in reasons[rows[0]["id"]]  # the first keeps the id, the repeat is rejected
    assert len(read_rejected(rejects.path)) == 4
    # Reading it again (a second epoch, a resumed run) writes nothing twice.
    TrainCuts.open(manifest, rejects)
    list(cuts.epoch(1, 0))
    assert len(read_rejected(rejects.path)) == 4
    # A later check (the encoder's limit, known once the model is built) skips more positions.
    assert cuts.screen(lambda c: "too long" if c.id == rows[3]["id"] else None) == 1
    assert [c.id for c in cuts.epoch(0, 0)] == [rows[0]["id"], rows[4]["id"]]


def test_no_usable_cut_is_a_clear_error(mini_corpus, tmp_path):
    rows = _lines(mini_corpus / "train" / "cuts.jsonl.gz")[:2]
    for r in rows:
        r["supervisions"][0]["text"] = "..."
    manifest = _write(tmp_path / "cuts.jsonl.gz", rows)
    with pytest.raises(ValueError, match="no usable training cut"):
        TrainCuts.open(manifest, RejectLog(tmp_path / "rejected.jsonl", "train"))
    with pytest.raises(FileNotFoundError, match="not found"):
        TrainCuts.open(tmp_path / "missing.jsonl.gz")
    with pytest.raises(FileNotFoundError, match="without Shar cut files"):
        TrainCuts.open(tmp_path)


def test_shar_ranks_read_different_shards_and_every_cut_once_per_epoch(shar_dir, mini_corpus):
    cuts = TrainCuts.open(shar_dir)
    n = len(list(load_cuts(mini_corpus / "train" / "cuts.jsonl.gz")))
    assert len(cuts) == n and len(cuts.sources[0].files) == -(-n // 7)
    deals = []
    for epoch in (0, 1, 2):
        per_rank = [list(cuts.epoch(epoch, seed=0, world_size=2, rank=r)) for r in (0, 1)]
        ids = [[c.id for c in p] for p in per_rank]
        assert not set(ids[0]) & set(ids[1])
        assert sorted(ids[0] + ids[1]) == sorted(c.id for c in load_cuts(mini_corpus / "train" / "cuts.jsonl.gz"))
        shards = [{c.shard_origin for c in p} for p in per_rank]
        assert not shards[0] & shards[1]
        deals.append(tuple(sorted(map(str, shards[0]))))
        assert per_rank[0][0].load_audio().shape[1] > 0  # the audio comes from the shard's tar
    assert len(set(deals)) > 1  # a fresh deal of the shards every epoch
    moved = shar_dir.parent / "moved_elsewhere"  # the same deal wherever the data lives (was seeded by the path)
    moved.symlink_to(shar_dir, target_is_directory=True)
    again = TrainCuts.open(moved)
    for epoch in (0, 1, 2):
        got = {Path(str(x)).name for x in {c.shard_origin for c in again.epoch(epoch, seed=0, world_size=2, rank=0)}}
        assert got == {Path(str(x)).name for x in deals[epoch]}
    with pytest.raises(ValueError, match="smaller --shard-size"):
        cuts.epoch(0, 0, world_size=len(cuts.sources[0].files) + 1, rank=0)


def test_a_manifest_is_dealt_by_position_under_ddp(mini_corpus):
    cuts = TrainCuts.open(mini_corpus / "train" / "cuts.jsonl.gz")
    parts = [[c.id for c in cuts.epoch(0, 0, world_size=3, rank=r)] for r in range(3)]
    assert [len(p) for p in parts] == [len(cuts.epoch(0, 0, 3, r)) for r in range(3)]
    assert sorted(sum(parts, [])) == sorted(c.id for c in cuts) and len(set(sum(parts, []))) == len(cuts)


def test_a_damaged_shard_is_left_out_whole_and_accounted_for(shar_dir, tmp_path):
    import shutil

    broken = tmp_path / "shar"
    shutil.copytree(shar_dir, broken)
    first, second = sorted(broken.glob("cuts.*.jsonl.gz"))[1:3]
    rows, lost = _lines(first), _lines(second)
    _write(first, [rows[0], "{broken", *rows[1:]])
    _write(second, ["{broken from the first line", *lost])
    rejects = RejectLog(tmp_path / "rejected.jsonl", "train")
    cuts = TrainCuts.open(broken, rejects)
    kept = {c.id for c in cuts.epoch(0, 0)}
    assert not kept & {r["id"] for r in rows + lost}
    assert len(kept) == len(TrainCuts.open(shar_dir)) - len(rows) - len(lost)
    recorded = {r["id"] for r in read_rejected(rejects.path)}
    assert {r["id"] for r in rows} <= recorded and str(first) in recorded and str(second) in recorded
    assert cuts.screen(lambda c: None) == 0  # later passes leave the dropped shards alone


def test_weighted_sources_are_multiplexed(shar_dir, mini_corpus, tmp_path):
    def dev_positions(dev_weight: float) -> list[int]:
        spec = [{"path": str(shar_dir), "weight": 1.0},
                {"path": str(mini_corpus / "dev" / "cuts.jsonl.gz"), "weight": dev_weight}]
        cuts = TrainCuts.open(spec)
        ids = [c.id for c in cuts.epoch(0, seed=0)]
        assert len(ids) == len(set(ids)) == len(cuts)
        return [k for k, i in enumerate(ids) if "-dev-" in i]

    # Drawn by weight while both last: the few dev cuts come early when weighted up, spread out when weighted down.
    heavy, light = dev_positions(8.0), dev_positions(0.125)
    assert len(heavy) == len(light) > 0
    assert sum(heavy) / len(heavy) < 8 < sum(light) / len(light)
    with pytest.raises(ValueError, match="with and without weights"):
        TrainCuts.open([{"path": str(shar_dir), "weight": 1.0}, str(mini_corpus / "dev" / "cuts.jsonl.gz")])
    with pytest.raises(ValueError, match="positive"):
        TrainCuts.open([{"path": str(shar_dir), "weight": 0}])


def test_export_shar_rejects_what_it_cannot_read(mini_corpus, tmp_path):
    rows = _lines(mini_corpus / "dev" / "cuts.jsonl.gz")[:3]
    rows[1]["recording"]["sources"][0]["source"] = "/nonexistent/x.flac"
    rows[2]["recording"]["sources"] = [{"type": "command", "channels": [0], "source": "touch /tmp/jstip-pwned"}]
    manifest = _write(tmp_path / "cuts.jsonl.gz", rows)
    out = tmp_path / "shar"
    run = subprocess.run([JSTIP, "export-shar", "--in", str(manifest), "--out", str(out), "--no-progress"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "1 cuts in 1 shards" in run.stdout and "2 rejected" in run.stdout
    assert not Path("/tmp/jstip-pwned").exists()
    recorded = {r["id"]: r["reason"] for r in read_rejected(tmp_path / "shar.rejected.jsonl")}
    assert set(recorded) == {rows[1]["id"], rows[2]["id"]} and "command" in recorded[rows[2]["id"]]
    assert sorted(p.name for p in out.iterdir()) == ["cuts.000000.jsonl.gz", "recording.000000.tar"]
    assert [c.id for c in CutSet.from_shar(in_dir=out)] == [rows[0]["id"]]  # lhotse reads it as it is


def test_evaluation_reads_a_shar_directory_as_a_test_set(shar_dir, mini_corpus, tmp_path):
    from jstip.evaluate.decode import load_cuts as load_test_cuts

    manifest = [c.id for c in load_cuts(mini_corpus / "train" / "cuts.jsonl.gz")]
    cuts = load_test_cuts(shar_dir, rejects=RejectLog(tmp_path / "rejected.jsonl", "evaluate"))
    assert [c.id for c in cuts] == manifest  # the shards in order, each in its cuts file's order
    assert cuts[0].load_audio().shape[1] > 0
    assert len(load_test_cuts(shar_dir, max_utterances=3)) == 3
