"""Slow: real `jstip train` processes on the mini corpus: loss falls, SIGKILL + resume, DDP over gloo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train_helpers import batches, read_jsonl, train_rows
from jstip.train.checkpoint_file import read_checkpoint

JSTIP = str(Path(sys.executable).parent / "jstip")


def _env():
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"})
    return env


def _train_ddp(tiny_overrides, tmp_path: Path, steps: int, **extra) -> Path:
    """``python -m jstip.train`` on two CPU processes (DDP over gloo), no dev set; returns the run folder."""
    args = tiny_overrides("ddp", **{"trainer.max_steps": steps, "trainer.devices": 2, "trainer.strategy": "ddp",
                                    "checkpoint.every_n_steps": 100, "trainer.val_check_interval": 100,
                                    "data.dev_cuts": "null", **extra})
    env = _env()
    env["PL_TORCH_DISTRIBUTED_BACKEND"] = "gloo"
    run = subprocess.run([sys.executable, "-m", "jstip.train", "--config-name", "tiny", *args], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return tmp_path / "ddp"


def _export_shar(mini_corpus, out: Path, shard_size: int) -> Path:
    run = subprocess.run([JSTIP, "export-shar", "--in", str(mini_corpus / "train" / "cuts.jsonl.gz"), "--out",
                          str(out), "--shard-size", str(shard_size), "--no-progress"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("source", ["manifest", "shar"])
def test_sigkill_and_resume_continue_at_the_same_step_with_the_same_next_batch(tiny_overrides, tmp_path, source,
                                                                               mini_corpus):
    common = {"trainer.max_steps": 24, "checkpoint.every_n_steps": 4, "trainer.val_check_interval": 12,
              "checkpoint.keep": 10}
    if source == "shar":  # the cuts and their audio streamed from Shar shards (jstip export-shar)
        common["data.train_cuts"] = _export_shar(mini_corpus, tmp_path / "shar", 8)
    ref = subprocess.run([JSTIP, "train", "--config-name", "tiny", *tiny_overrides("ref", **common)], env=_env(),
                         capture_output=True, text=True, timeout=900)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_rows = train_rows(tmp_path / "ref")
    assert [r["step"] for r in ref_rows] == list(range(1, 25))
    # The tiny config learns: the mean loss of the last 6 steps is well below that of the first 6.
    first = sum(r["loss"] for r in ref_rows[:6]) / 6
    last = sum(r["loss"] for r in ref_rows[-6:]) / 6
    assert last < first - 0.5, (first, last)
    assert (tmp_path / "ref" / "checkpoints" / "last.ckpt").is_file()

    args = [JSTIP, "train", "--config-name", "tiny", *tiny_overrides("killed", **common)]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline:
        if metrics.exists() and len(train_rows(tmp_path / "killed")) >= 10:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(train_rows(tmp_path / "killed"))
    assert 10 <= done_before < 24
    ckpt = read_checkpoint(tmp_path / "killed" / "checkpoints" / "last.ckpt")
    resume_step = ckpt["global_step"]
    assert resume_step % 4 == 0 and resume_step >= 8

    again = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = train_rows(tmp_path / "killed")
    after = rows[done_before:]
    assert after[0]["step"] == resume_step + 1  # the same step
    assert [r["step"] for r in after] == list(range(resume_step + 1, 25))
    # The same next batch (and every later one) as the uninterrupted run.
    ref_batches = {b["step"]: b["ids"] for b in batches(tmp_path / "ref")}
    resumed = batches(tmp_path / "killed")[done_before:]
    assert resumed[0]["step"] == resume_step
    for b in resumed:
        assert b["ids"] == ref_batches[b["step"]], b["step"]
    # Model, optimiser, scheduler and RNG restored: the losses follow the uninterrupted run.
    ref_loss = {r["step"]: r["loss"] for r in ref_rows}
    for r in after:
        assert abs(r["loss"] - ref_loss[r["step"]]) < 1e-4, r["step"]
        assert r["lr"] == pytest.approx([x for x in ref_rows if x["step"] == r["step"]][0]["lr"])


@pytest.mark.slow
def test_ddp_two_cpu_processes_see_different_data_and_keep_identical_parameters(tiny_overrides, tmp_path):
    exp = _train_ddp(tiny_overrides, tmp_path, 6)
    b0, b1 = batches(exp, 0), batches(exp, 1)
    assert len(b0) == len(b1) == 6
    for x, y in zip(b0, b1):
        assert x["step"] == y["step"]
        assert not set(x["ids"]) & {i for i in y["ids"] if not i.startswith("text_")}, x["step"]
    # Within each epoch the two ranks train on disjoint cuts (text-only documents are drawn per batch). Exception:
    # when an epoch's batch count is odd, lhotse hands both ranks the same final batch so that they stay in step.
    def cuts(bs, epoch):
        last = max(b["batch"] for b in bs if b["epoch"] == epoch)
        return {i.split("_")[0] for b in bs if b["epoch"] == epoch and (b["batch"] < last or epoch == b0[-1]["epoch"])
                for i in b["ids"] if not i.startswith("text_")}

    for epoch in {b["epoch"] for b in b0}:
        assert cuts(b0, epoch) and cuts(b1, epoch) and not cuts(b0, epoch) & cuts(b1, epoch), epoch
    fp = [[r for r in read_jsonl(exp / f"batches.rank{k}.jsonl") if "final_params_sha256" in r][-1] for k in (0, 1)]
    assert fp[0]["step"] == fp[1]["step"] == 6
    assert fp[0]["final_params_sha256"] == fp[1]["final_params_sha256"]
    assert len(train_rows(exp)) == 6


@pytest.mark.slow
def test_ddp_from_shar_each_rank_reads_its_own_shards_and_no_cut_twice_in_an_epoch(tiny_overrides, tmp_path,
                                                                                      mini_corpus):
    import gzip
    import json

    shar = _export_shar(mini_corpus, tmp_path / "shar", 4)
    shard_of = {}
    for cuts_file in shar.glob("cuts.*.jsonl.gz"):
        with gzip.open(cuts_file, "rt") as f:
            shard_of.update({json.loads(line)["id"]: cuts_file.name for line in f})
    exp = _train_ddp(tiny_overrides, tmp_path, 12, **{"data.train_cuts": shar, "data.max_duration": 8})
    b0, b1 = batches(exp, 0), batches(exp, 1)
    assert len(b0) == len(b1) == 12 and [x["step"] for x in b0] == [y["step"] for y in b1]
    epochs = sorted({b["epoch"] for b in b0})
    assert len(epochs) >= 2, "the run should cover more than one epoch"

    def cuts(bs, epoch):  # cut ids of one rank's batches in one epoch, every occurrence (text documents aside)
        return [i.split("_")[0] for b in bs if b["epoch"] == epoch for i in b["ids"] if not i.startswith("text_")]

    deals = set()
    for epoch in epochs:
        c0, c1 = cuts(b0, epoch), cuts(b1, epoch)
        assert c0 and c1
        assert len(c0) == len(set(c0)) and len(c1) == len(set(c1)), f"a cut twice on one rank in epoch {epoch}"
        assert not set(c0) & set(c1), f"a cut on both ranks in epoch {epoch}"
        s0, s1 = {shard_of[c] for c in c0}, {shard_of[c] for c in c1}
        assert not s0 & s1, f"a shard read by both ranks in epoch {epoch}"
        deals.add(tuple(sorted(s0)))
    fp = [[r for r in read_jsonl(exp / f"batches.rank{k}.jsonl") if "final_params_sha256" in r][-1] for k in (0, 1)]
    assert fp[0]["final_params_sha256"] == fp[1]["final_params_sha256"]


@pytest.mark.slow
def test_resuming_from_the_checkpoint_that_ended_an_epoch_follows_the_uninterrupted_run(tiny_overrides, tmp_path):
    # The run it continues built the next epoch's loader after saving (a draw from the global generator): the saved
    # random state must go back before that draw, or every later random choice shifts.
    import shutil

    common = {"trainer.max_steps": 14, "checkpoint.every_n_steps": 1, "checkpoint.keep": 100,
              "trainer.val_check_interval": 100}
    ref = subprocess.run([JSTIP, "train", "--config-name", "tiny", *tiny_overrides("ref", **common)], env=_env(),
                         capture_output=True, text=True, timeout=900)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_batches = batches(tmp_path / "ref")
    end = min(b["step"] for b in ref_batches if b["epoch"] == 1)  # steps done when epoch 0 ended
    assert 2 <= end < 12
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "ref", resumed)
    for ckpt in (resumed / "checkpoints").glob("*.ckpt"):
        if ckpt.name == "last.ckpt" or int(ckpt.stem.removeprefix("step")) > end:
            ckpt.unlink()
    (resumed / "metrics.jsonl").write_text("")
    again = subprocess.run([JSTIP, "train", "--config-name", "tiny", *tiny_overrides("resumed", **common)],
                           env=_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"step{end:06d}.ckpt" in again.stderr
    ref_loss = {r["step"]: r["loss"] for r in train_rows(tmp_path / "ref")}
    after = train_rows(resumed)
    assert [r["step"] for r in after] == list(range(end + 1, 15))
    for r in after:
        assert abs(r["loss"] - ref_loss[r["step"]]) < 1e-5, r["step"]
