"""recipes/mini/run.sh and `jstip demo`: stages, .done markers, resume after a kill with the same outputs."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "mini" / "run.sh"
JSTIP = Path(sys.executable).with_name("jstip")

TINY = {"NUM_UTTERANCES": "40", "CTC_STEPS": "12", "LM_STEPS": "30", "STAGE1_STEPS": "3", "STAGE2_STEPS": "4",
        "SPOKEN_ITEMS": "1", "EVAL_UTTERANCES": "3", "NJ": "2"}


def recipe_env(**extra):
    env = dict(os.environ, JSTIP=str(JSTIP), WANDB_MODE="offline", **TINY)
    env.update(extra)
    return env


def run_recipe(out, *args, **extra):
    proc = subprocess.run(["bash", str(RECIPE), "--out", str(out), *args], env=recipe_env(**extra),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def nemo_weights(path):
    """The state dict inside a .nemo archive (the tar itself carries timestamps)."""
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("model_weights.ckpt"))
        return torch.load(tar.extractfile(member), map_location="cpu", weights_only=True)


def losses(metrics_jsonl):
    return [(r["step"], round(r["loss"], 5)) for r in map(json.loads, Path(metrics_jsonl).read_text().splitlines())]


@pytest.fixture(scope="module")
def first_stages(tmp_path_factory):
    """Stages 0-3 of the recipe, run once: corpus, alignment check, interleave statistics, CTC prior."""
    out = tmp_path_factory.mktemp("mini_recipe")
    log = run_recipe(out, "--stop-stage", "3")
    return out, log


def test_stages_write_their_outputs_and_done_markers(first_stages):
    out, log = first_stages
    assert sorted(p.name for p in (out / ".done").iterdir()) == [
        "0-prepare", "1-check-alignments", "2-interleave-stats", "3-pretrain-ctc"]
    summary = json.loads((out / "data" / "summary.json").read_text())
    assert sum(s["planned"] for s in summary["splits"].values()) == 40
    for split, s in summary["splits"].items():  # every planned item is kept or rejected with a reason
        rejected = (out / "data" / split / "rejected.jsonl")
        n_rejected = len(rejected.read_text().splitlines()) if rejected.exists() else 0
        assert s["utterances"] + n_rejected == s["planned"], split
    for split in ("train", "dev", "test"):
        assert (out / "data" / "aligned" / split / "cuts.jsonl.gz").is_file()
    compare = json.loads((out / "exp" / "align_check" / "compare.json").read_text())
    # pocketsphinx lands near the engine's own word times on the unseen dev voices
    assert compare["overall"]["n_words"] > 0 and compare["overall"]["mean_abs_ms"] < 60, compare["overall"]
    assert "speech share" in (out / "exp" / "interleave_stats.txt").read_text().lower()
    assert (out / "exp" / "ctc" / "ctc.nemo").is_file()
    assert len(losses(out / "exp" / "ctc" / "metrics.jsonl")) >= 2
    # A second run skips every finished stage.
    again = run_recipe(out, "--stop-stage", "3")
    assert again.count("done already") == 4, again


def test_a_stage_killed_halfway_reruns_to_the_same_outputs(first_stages):
    out, _ = first_stages
    ctc = out / "exp" / "ctc"
    ref_weights, ref_losses = nemo_weights(ctc / "ctc.nemo"), losses(ctc / "metrics.jsonl")
    (out / ".done" / "3-pretrain-ctc").unlink()
    (ctc / "ctc.nemo").unlink()
    proc = subprocess.Popen(["bash", str(RECIPE), "--out", str(out), "--stage", "3", "--stop-stage", "3"],
                            env=recipe_env(CTC_STEPS="200"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (ctc / "metrics.jsonl").exists() and len((ctc / "metrics.jsonl").read_text().splitlines()) >= 2:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the stage finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / ".done" / "3-pretrain-ctc").exists() and not (ctc / "ctc.nemo").exists()

    log = run_recipe(out, "--stage", "3", "--stop-stage", "3")
    assert "stage 3: pretrain-ctc" in log
    assert losses(ctc / "metrics.jsonl") == ref_losses
    weights = nemo_weights(ctc / "ctc.nemo")
    assert weights.keys() == ref_weights.keys()
    for name, tensor in ref_weights.items():
        assert torch.equal(weights[name], tensor), name


def test_recipe_rejects_unknown_options(tmp_path):
    proc = subprocess.run(["bash", str(RECIPE), "--out", str(tmp_path), "--stages", "3"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "unknown option --stages" in proc.stderr
    help_text = subprocess.run(["bash", str(RECIPE), "--help"], capture_output=True, text=True).stdout
    assert "--stage" in help_text and "pretrain the encoder with CTC" in help_text


@pytest.mark.slow
def test_demo_runs_every_stage_and_prints_the_headline(tmp_path):
    proc = subprocess.run([str(JSTIP), "demo", "--out", str(tmp_path / "demo")], env=recipe_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "demo"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["wer"] and "eer" in metrics
    html = (out / "report.html").read_text()
    assert "eval_untrained" in html and "<img" in html
    for label in ("untrained (priors only)", "after stage 1", "after stage 2"):
        assert label in proc.stdout
    assert f"report:  {out / 'report.html'}" in proc.stdout
    assert len(list((out / ".done").iterdir())) == 9
