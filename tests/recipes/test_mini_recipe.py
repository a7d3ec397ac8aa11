"""recipes/mini/run.sh and `jstip demo`: stages, .done markers, resume after a kill with the same outputs."""

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
from jstip.train.checkpoint_file import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "mini" / "run.sh"
JSTIP = Path(sys.executable).with_name("jstip")

TINY = {"NUM_UTTERANCES": "40", "CTC_STEPS": "12", "LM_STEPS": "30", "STAGE1_STEPS": "3", "STAGE2_STEPS": "4",
        "ADAPTER_EPOCHS": "1", "SPOKEN_ITEMS": "1", "EVAL_UTTERANCES": "3", "NJ": "2"}


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
    """Stages 0-4 of the recipe with the from-scratch priors, run once: corpus, alignment check, interleave
    statistics, the Whisper baseline on 3 test utterances, CTC encoder + text LLM."""
    out = tmp_path_factory.mktemp("mini_recipe")
    log = run_recipe(out, "--stop-stage", "4", PRIORS="scratch")
    return out, log


def test_stages_write_their_outputs_and_done_markers(first_stages):
    out, log = first_stages
    assert sorted(p.name for p in (out / ".done").iterdir()) == [
        "0-prepare", "1-check-alignments", "2-interleave-stats", "3-baseline", "4-priors"]
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
    assert (out / "exp" / "ctc" / "ctc.nemo").is_file() and (out / "exp" / "lm" / "config.json").is_file()
    assert len(losses(out / "exp" / "ctc" / "metrics.jsonl")) >= 2
    baseline = json.loads((out / "exp" / "eval_whisper" / "metrics.json").read_text())
    assert baseline["evaluate"]["system"] == "whisper-tiny.en" and baseline["num_utterances"] == 3
    # A second run skips every finished stage.
    again = run_recipe(out, "--stop-stage", "4", PRIORS="scratch")
    assert again.count("done already") == 5, again


def test_a_stage_killed_halfway_reruns_to_the_same_outputs(first_stages):
    out, _ = first_stages
    ctc = out / "exp" / "ctc"
    ref_weights, ref_losses = nemo_weights(ctc / "ctc.nemo"), losses(ctc / "metrics.jsonl")
    (out / ".done" / "4-priors").unlink()
    (ctc / "ctc.nemo").unlink()
    proc = subprocess.Popen(["bash", str(RECIPE), "--out", str(out), "--stage", "4", "--stop-stage", "4"],
                            env=recipe_env(CTC_STEPS="200", PRIORS="scratch"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (ctc / "metrics.jsonl").exists() and len((ctc / "metrics.jsonl").read_text().splitlines()) >= 2:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the stage finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / ".done" / "4-priors").exists() and not (ctc / "ctc.nemo").exists()

    log = run_recipe(out, "--stage", "4", "--stop-stage", "4", PRIORS="scratch")
    assert "stage 4: priors" in log
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
    assert "--stage" in help_text and "the adapter's CTC warm start" in help_text and "PRIORS" in help_text
    proc = subprocess.run(["bash", str(RECIPE), "--out", str(tmp_path)], capture_output=True, text=True,
                          env=recipe_env(PRIORS="toy"))
    assert proc.returncode == 1 and "PRIORS=toy" in proc.stderr


@pytest.mark.slow
def test_demo_runs_every_stage_and_prints_the_headline(tmp_path):
    proc = subprocess.run([str(JSTIP), "demo", "--out", str(tmp_path / "demo")], env=recipe_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "demo"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["wer"] and "eer" in metrics
    html = (out / "report.html").read_text()
    assert "tiny.en zero-shot" in html and "after stage 2 (JSTIP)" in html and "<img" in html
    for label in ("Whisper zero-shot (baseline)", "CTC on the encoder", "after stage 2", "does it listen"):
        assert label in proc.stdout
    assert metrics["listening"]["rise"] is not None and metrics["eer_per_exposure"]["buckets"]
    assert "Entity error rate by exposure" in html
    assert f"report:  {out / 'report.html'}" in proc.stdout
    assert len(list((out / ".done").iterdir())) == 9


ABLATION = ROOT / "recipes" / "mini" / "ablation.sh"


def test_ablation_names_what_is_wrong(tmp_path):
    help_text = subprocess.run(["bash", str(ABLATION), "--help"], capture_output=True, text=True).stdout
    assert all(row in help_text for row in ("no_first_pass", "frozen_llm", "adapter256", "frame80", "whisper_base", "scratch"))
    proc = subprocess.run(["bash", str(ABLATION), "frozen_llm"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--out OUT" in proc.stderr
    proc = subprocess.run(["bash", str(ABLATION), "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1 and "not a finished mini run" in proc.stderr and "jstip demo --out" in proc.stderr
    (tmp_path / ".done").mkdir()
    (tmp_path / ".done" / "7-evaluate").touch()
    (tmp_path / "exp" / "eval").mkdir(parents=True)
    (tmp_path / "exp" / "eval" / "metrics.json").write_text("{}")
    proc = subprocess.run(["bash", str(ABLATION), "--out", str(tmp_path), "frozen_llm"], capture_output=True, text=True)
    assert proc.returncode == 1 and "not run on the pretrained parts" in proc.stderr
    (tmp_path / "exp" / "adapter_ctc").mkdir()
    (tmp_path / "exp" / "adapter_ctc" / "adapter.safetensors").touch()
    proc = subprocess.run(["bash", str(ABLATION), "--out", str(tmp_path), "bigger_llm"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown row bigger_llm" in proc.stderr
    proc = subprocess.run(["bash", str(ABLATION), "--out"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--out needs a folder" in proc.stderr
    proc = subprocess.run(["bash", str(RECIPE), "--out", str(tmp_path / "x")], capture_output=True, text=True,
                          env=recipe_env(LLM_TRAINING="full"))
    assert proc.returncode == 1 and "LLM_TRAINING=full" in proc.stderr


@pytest.mark.slow
def test_pretrained_recipe_and_an_ablation_row_run_end_to_end(tmp_path):
    """A tiny mini run on the pretrained parts (stages 0-7), then the frozen_llm row on its data and adapter."""
    out = tmp_path / "mini"
    run_recipe(out, "--stop-stage", "7")
    assert json.loads((out / "exp" / "eval" / "metrics.json").read_text())["num_utterances"] == 3
    proc = subprocess.run(["bash", str(ABLATION), "--out", str(out), "frozen_llm"], env=recipe_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = out / "ablation" / "frozen_llm"
    ckpt = read_checkpoint(row / "exp" / "stage2" / "checkpoints" / "last.ckpt")
    assert not ckpt["jstip"]["lora"] and not any(".lora_" in k for k in ckpt["state_dict"])
    assert (row / "exp" / "adapter_ctc").resolve() == (out / "exp" / "adapter_ctc").resolve()  # shared, not re-run
    md = (out / "ablation" / "report.md").read_text()
    assert "frozen_llm" in md and "base run" in md
