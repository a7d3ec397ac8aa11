"""recipes/medical: the arms as configs, the grid table over arms x seeds, bad input, and (slow) the whole recipe."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from jstip.train.checkpoint_file import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "medical" / "run.sh"
CONF = ROOT / "recipes" / "medical" / "conf"
JSTIP = Path(sys.executable).with_name("jstip")
ARMS = ["asr_only", "text", "text_il", "tts", "tts_il"]
SPEECH_TASKS = ("asr", "word_il", "segment_il", "mixed_il")


def compose_arm(arm, *extra):
    from jstip.conf import compose

    return compose(f"arms/{arm}", ["medical.mini_out=/mini", "medical.out=/med", "exp_dir=/exp", *extra], str(CONF))


# --- the arms -----------------------------------------------------------------------------------------------------


def test_arm_configs_resolve_to_the_intended_data():
    from omegaconf import OmegaConf

    from jstip.train.data import data_config

    assert sorted(p.stem for p in (CONF / "arms").glob("*.yaml")) == sorted(ARMS)
    resolved = {}
    for arm in ARMS:
        cfg = compose_arm(arm)
        assert not OmegaConf.missing_keys(cfg), arm
        resolved[arm] = OmegaConf.to_container(cfg, resolve=True)
        dc = data_config(cfg.data)
        w = {t: dc.weight(t) for t in (*SPEECH_TASKS, "text", "tts_il")}
        data = resolved[arm]["data"]
        assert dc.weight("tts_il") == 0 and data["tts_cuts"] is None, arm
        real = "/mini/data/aligned/train/cuts.jsonl.gz"
        tts = "/med/data/aligned/tts_domain/cuts.jsonl.gz"
        speech = sum(w[t] for t in SPEECH_TASKS)
        il_share = sum(w[t] for t in SPEECH_TASKS[1:]) / speech
        if arm == "asr_only":
            assert w["asr"] == 1 and data["train_cuts"] == real and data["text_sources"] == []
        if arm in ("text", "text_il"):
            assert data["train_cuts"] == real and data["text_sources"] == ["/med/data/text/domain.txt"]
            assert w["text"] / speech == pytest.approx(0.25)  # a text document per 4 speech documents
        if arm in ("tts", "tts_il"):
            assert data["train_cuts"] == [real, tts] and data["text_sources"] == [] and w["text"] == 0
        assert il_share == (pytest.approx(0.5) if arm.endswith("_il") else 0), arm
    # Only the data differ: the model, its start, the optimiser and the trainer are the same in every arm.
    shared = {arm: {k: v for k, v in r.items() if k != "data"} for arm, r in resolved.items()}
    for arm in ARMS[1:]:
        assert shared[arm] == shared["asr_only"], arm
    base = shared["asr_only"]
    assert base["model"]["init_from"] == "/mini/exp/stage1/checkpoints/last.ckpt"
    # the typed model config that `jstip train` builds from the arm's model section (interpolations resolved)
    from jstip.model.config import model_config

    typed = model_config(compose_arm("text_il").model)
    assert typed.init_from == base["model"]["init_from"] and typed.encoder.cache_dir == "/mini/exp/features"
    # The mini recipe's pretrained parts: Whisper tiny.en (its feature cache reused), SmolLM2-135M with LoRA.
    assert base["model"]["encoder"]["kind"] == "whisper" and base["model"]["encoder"]["path"] == "tiny.en"
    assert base["model"]["encoder"]["cache_dir"] == "/mini/exp/features"
    assert base["model"]["llm"]["kind"] == base["model"]["tokenizer"]["kind"] == "gguf"
    assert base["train"]["lora"]["enabled"] is True and base["train"]["trainable"] == ["adapter", "llm"]
    assert base["logger"]["wandb"] is False and base["trainer"]["max_steps"] == 100
    # the mini recipe's stage-2 regime: peak lr 3e-4, 15 s of speech per batch
    assert base["train"]["optim"]["lr"] == pytest.approx(3e-4)
    assert all(r["data"]["max_duration"] == 15 for r in resolved.values())
    # and the interleaving arms draw the same task shares among speech documents
    il = {arm: data_config(compose_arm(arm).data) for arm in ("text_il", "tts_il")}
    for t in SPEECH_TASKS:
        assert il["text_il"].weight(t) / (1 - il["text_il"].weight("text")) == pytest.approx(il["tts_il"].weight(t))


def test_a_list_of_train_manifests_is_combined_and_duplicate_ids_are_named(tts_cuts_dir, tmp_path):
    from lhotse import CutSet

    from jstip.train.data import load_cuts

    cuts = CutSet.from_file(tts_cuts_dir / "cuts.jsonl.gz").to_eager()
    ids = sorted(cuts.ids)
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    cuts.filter(lambda c: c.id in ids[:2]).to_file(a)
    cuts.filter(lambda c: c.id in ids[2:]).to_file(b)
    combined = load_cuts([str(a), str(b)])
    assert sorted(combined.ids) == ids and len(combined) == len(cuts)
    with pytest.raises(ValueError, match=rf"{ids[0]} is in both .*a.jsonl.gz and .*a.jsonl.gz"):
        load_cuts([a, a])
    with pytest.raises(FileNotFoundError, match="missing.jsonl.gz"):
        load_cuts([a, tmp_path / "missing.jsonl.gz"])


def test_synthesize_voices_of_train_never_uses_a_test_or_dev_voice(tmp_path):
    from jstip.tts.commands import cli
    from jstip.tts.voices import split_of_voice, voices_for_split
    from jstip.tts.base import Voice

    text = tmp_path / "t.txt"
    text.write_text("A line.\n")
    result = CliRunner().invoke(cli, ["--in", str(text), "--out", str(tmp_path / "o"), "--voices-of", "train",
                                      "--list-voices"])
    assert result.exit_code == 0, result.output
    listed = result.output.split()
    assert listed == [v.id for v in voices_for_split("train")] and len(listed) > 20
    assert {split_of_voice(Voice.parse(v)) for v in listed} == {"train"}


# --- the grid table -----------------------------------------------------------------------------------------------

DRUGS = ["atorvastatin", "lisinopril", "metformin", "omeprazole", "amoxicillin", "warfarin"]
CONDITIONS = ["acute appendicitis", "atrial fibrillation", "type 2 diabetes", "chronic bronchitis"]


def make_refs(n=120, seed=0):
    rng = random.Random(seed)
    refs = []
    for k in range(n):
        drug, cond = rng.choice(DRUGS), rng.choice(CONDITIONS)
        text = f"The patient with {cond} was given {drug} today."
        ents = [{"text": cond, "category": "condition", "start": 17, "end": 17 + len(cond)}]
        start = text.index(drug)
        ents.append({"text": drug, "category": "drug", "start": start, "end": start + len(drug)})
        refs.append({"id": f"utt{k:04d}", "text": text, "entities": ents})
    return refs


def hyps_of(refs, miss_rate, seed):
    """Hypotheses that misspell each entity with probability ``miss_rate`` (and drop a word now and then)."""
    rng = random.Random(seed)
    out = []
    for r in refs:
        text = r["text"]
        for e in r["entities"]:
            if rng.random() < miss_rate:
                text = text.replace(e["text"], e["text"][:-2] + "en", 1)
        if rng.random() < 0.1:
            text = text.replace(" today", "")
        out.append({"id": r["id"], "hyp": text})
    return out


# How often each term was heard in training (a counts file of `jstip score --exposure-cuts`): every bucket filled.
EXPOSURE = {"atorvastatin": 0, "lisinopril": 1, "metformin": 4, "omeprazole": 12, "amoxicillin": 0, "warfarin": 2,
            "acute appendicitis": 0, "atrial fibrillation": 3, "type 2 diabetes": 25, "chronic bronchitis": 2}
MCQ_ITEMS = 40


def write_modality_gap(run_dir, text_acc, speech_acc, seed):
    """spoken_tasks/modality_gap.jsonl as `jstip evaluate` writes it, with the given accuracies."""
    rng = random.Random(seed)
    rows = [{"id": f"mcq{i:03d}", "subject": "medical", "answer": "A", "correct_text": rng.random() < text_acc,
             "correct_speech": rng.random() < speech_acc} for i in range(MCQ_ITEMS)]
    (run_dir / "spoken_tasks").mkdir(parents=True, exist_ok=True)
    (run_dir / "spoken_tasks" / "modality_gap.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


@pytest.fixture(scope="module")
def grid_root(tmp_path_factory):
    """ROOT/<arm>/seed<k>/ scored by the real `jstip score` (with exposure counts): a weak baseline, a better arm,
    an equal one; every run with a modality gap (text_il's smaller)."""
    from jstip.scoring.commands import cli as score

    root = tmp_path_factory.mktemp("grid")
    refs = make_refs()
    ref_path = root / "refs.jsonl"
    ref_path.write_text("".join(json.dumps(r) + "\n" for r in refs))
    counts = root / "counts.json"
    counts.write_text(json.dumps({"terms": [{"text": t, "category": "drug" if t in DRUGS else "condition", "count": n}
                                            for t, n in EXPOSURE.items()]}))
    rates = {"asr_only": 0.6, "text_il": 0.2, "tts": 0.6}
    speech_acc = {"asr_only": 0.3, "text_il": 0.7, "tts": 0.3}
    for arm, rate in rates.items():
        for s in (0, 1, 2):
            hyp_path = root / f"{arm}{s}.hyp.jsonl"
            hyp_path.write_text("".join(json.dumps(h) + "\n" for h in hyps_of(refs, rate, seed=100 * s + len(arm))))
            run_dir = root / "eval" / arm / f"seed{s}"
            result = CliRunner().invoke(score, ["--ref", str(ref_path), "--hyp", str(hyp_path), "--out", str(run_dir),
                                                "--exposure-cuts", str(counts)])
            assert result.exit_code == 0, result.output
            write_modality_gap(run_dir, 0.8, speech_acc[arm], seed=10 * s + len(arm))
    return root / "eval"


def test_grid_table_means_over_seeds_with_intervals_and_paired_differences(grid_root, tmp_path):
    from jstip.report.grid import build_grid, find_grid

    runs = find_grid(grid_root)
    assert list(runs) == ["asr_only", "text_il", "tts"] and list(runs["tts"]) == ["seed0", "seed1", "seed2"]
    grid = build_grid(runs, baseline="asr_only", arms=["asr_only", "tts", "text_il"], num_samples=400)
    assert [a.name for a in grid.arms] == ["asr_only", "tts", "text_il"]
    assert grid.utterances == 120 and grid.entities_per_run == 240 and grid.categories == ["condition", "drug"]
    for arm in grid.arms:
        metrics = [json.loads((grid_root / arm.name / s / "metrics.json").read_text()) for s in arm.seeds]
        for fig in ("wer", "eer"):
            f = arm.figures[fig]
            # the seed mean of what `jstip score` wrote, and each seed's own value
            assert f.value == pytest.approx(np.mean([m[fig] for m in metrics]))
            assert list(f.per_seed.values()) == pytest.approx([m[fig] for m in metrics])
            assert f.low <= f.value <= f.high and f.high - f.low < 0.2
        for cat in grid.categories:
            f = arm.figures[f"eer/{cat}"]
            assert f.value == pytest.approx(np.mean([m["eer_per_category"][cat]["eer"] for m in metrics]))
            assert f.low <= f.value <= f.high
    diffs = {(d.arm, d.figure): d for d in grid.differences}
    better = diffs["text_il", "eer"]
    assert better.delta == pytest.approx(grid.arms[2].figures["eer"].value - grid.arms[0].figures["eer"].value)
    assert better.high < 0 and better.significant and better.p_better == 1.0 and better.seeds_better == 3
    same = diffs["tts", "eer"]
    assert same.low < 0 < same.high and not same.significant  # the same miss rate: within noise
    assert diffs["text_il", "eer/drug"].high < 0


def test_grid_gives_eer_per_exposure_bucket_and_the_modality_gap_per_arm(grid_root, tmp_path):
    from jstip.report.grid import build_grid, find_grid
    from jstip.report.grid_report import write_grid

    grid = build_grid(find_grid(grid_root), baseline="asr_only", num_samples=400)
    assert grid.exposure_edges == [0, 1, 3, 10] and grid.buckets == ["0", "1-2", "3-9", ">=10"]
    for arm in grid.arms:
        metrics = [json.loads((grid_root / arm.name / s / "metrics.json").read_text()) for s in arm.seeds]
        for b in grid.buckets:
            f = arm.figures[f"eer@{b}"]
            # the seed mean of each run's own eer_per_exposure, from the counts file
            per_run = [m["eer_per_exposure"]["buckets"][b] for m in metrics]
            assert f.value == pytest.approx(np.mean([r["eer"] for r in per_run]))
            assert f.total == sum(r["entities"] for r in per_run) and f.low <= f.value <= f.high
    # the buckets hold what the counts say: amoxicillin/atorvastatin/appendicitis never heard, etc.
    refs = make_refs()
    expected = sum(EXPOSURE[e["text"]] == 0 for r in refs for e in r["entities"])
    assert grid.arms[0].figures["eer@0"].total == 3 * expected
    diffs = {(d.arm, d.figure): d for d in grid.differences}
    assert diffs["text_il", "eer@>=10"].high < 0 and diffs["text_il", "eer@0"].high < 0
    assert diffs["tts", "eer@0"].low < 0 < diffs["tts", "eer@0"].high

    gaps = {m.arm: m for m in grid.modality_gap}
    assert set(gaps) == {"asr_only", "text_il", "tts"} and gaps["asr_only"].items == MCQ_ITEMS
    for arm, m in gaps.items():
        rows = [[json.loads(x) for x in (grid_root / arm / s / "spoken_tasks" / "modality_gap.jsonl")
                 .read_text().splitlines()] for s in ("seed0", "seed1", "seed2")]
        text = np.mean([[r["correct_text"] for r in run] for run in rows])
        speech = np.mean([[r["correct_speech"] for r in run] for run in rows])
        assert m.text.value == pytest.approx(text) and m.speech.value == pytest.approx(speech)
        assert m.gap.value == pytest.approx(speech - text) and m.gap.low <= m.gap.value <= m.gap.high
    assert gaps["asr_only"].delta is None
    assert gaps["text_il"].delta.low > 0  # a smaller gap than the baseline's, outside noise
    assert gaps["tts"].delta.low < 0 < gaps["tts"].delta.high

    md_path, json_path = write_grid(grid, tmp_path / "grid.md")
    md = md_path.read_text()
    chart = tmp_path / "grid_eer_by_exposure.png"
    assert chart.read_bytes()[:4] == b"\x89PNG" and "![EER by exposure](grid_eer_by_exposure.png)" in md
    assert "| arm | heard 0 (" in md and "| text_il | EER heard >=10 |" in md
    assert "Modality gap" in md and "| text_il |" in md
    data = json.loads(json_path.read_text())
    assert data["buckets"] == grid.buckets and data["modality_gap"][1]["arm"] == "text_il"


def test_grid_without_exposure_or_modality_gap_leaves_those_tables_out(grid_root, tmp_path):
    import shutil

    from jstip.report.grid import build_grid, find_grid
    from jstip.report.grid_report import grid_markdown

    root = tmp_path / "g"
    shutil.copytree(grid_root, root)
    for metrics_path in root.glob("*/seed*/metrics.json"):
        m = json.loads(metrics_path.read_text())
        m.pop("eer_per_exposure")
        metrics_path.write_text(json.dumps(m))
    shutil.rmtree(root / "tts" / "seed1" / "spoken_tasks")  # one run without the modality gap: tts left out
    grid = build_grid(find_grid(root), baseline="asr_only", num_samples=50)
    assert grid.buckets == [] and grid.exposure_edges is None
    assert [m.arm for m in grid.modality_gap] == ["asr_only", "text_il"]
    md = grid_markdown(grid)
    assert "EER by exposure" not in md and "heard" not in md and "| tts |" in md


def test_report_grid_command_writes_markdown_and_json(grid_root, tmp_path):
    from jstip.report.commands import cli

    out = tmp_path / "grid.md"
    result = CliRunner().invoke(cli, ["grid", str(grid_root), "--baseline", "asr_only", "--arm", "asr_only",
                                      "--arm", "text_il", "--only-seeds", "0,1", "--bootstrap", "200",
                                      "--title", "test grid", "--out", str(out)])
    assert result.exit_code == 0, result.output
    md = out.read_text()
    assert md.startswith("### test grid") and "| text_il | 2 |" in md and "| tts |" not in md
    assert "EER per entity category" in md and "| text_il | EER |" in md and "| text_il | EER drug |" in md and " *" in md
    data = json.loads(out.with_suffix(".json").read_text())
    assert [a["name"] for a in data["arms"]] == ["asr_only", "text_il"]
    assert data["arms"][1]["seeds"] == ["seed0", "seed1"] and data["num_samples"] == 200
    assert md in result.output
    # `jstip report RUN_DIR...` still compares runs (the default subcommand)
    html = tmp_path / "r.html"
    result = CliRunner().invoke(cli, [str(grid_root / "asr_only" / "seed0"), str(grid_root / "text_il" / "seed0"),
                                      "--out", str(html), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert html.is_file() and "EER text_il/seed0 - asr_only/seed0" in result.output


def test_report_grid_names_what_is_wrong(grid_root, tmp_path):
    from jstip.report.commands import cli

    def run(*args):
        return CliRunner().invoke(cli, ["grid", str(grid_root), "--out", str(tmp_path / "g.md"), *args])

    r = run("--arm", "asr_only", "--arm", "nope")
    assert r.exit_code == 1 and "nope not found; the grid has: asr_only" in r.output
    r = run("--baseline", "nope")
    assert r.exit_code == 1 and "baseline arm 'nope' not found" in r.output
    r = run("--only-seeds", "0 7")
    assert r.exit_code == 1 and "has no run of seed7" in r.output
    r = CliRunner().invoke(cli, ["grid", str(tmp_path), "--out", str(tmp_path / "g.md")])
    assert r.exit_code == 1 and "no run found" in r.output and "seed<k>/metrics.json" in r.output


# --- the recipe ---------------------------------------------------------------------------------------------------


def recipe(out, *args, **env):
    return subprocess.run(["bash", str(RECIPE), "--out", str(out), *args], capture_output=True, text=True,
                          env=dict(os.environ, JSTIP=str(JSTIP), WANDB_MODE="offline", **env))


def test_recipe_bad_input_is_named_with_the_fix(tmp_path):
    r = recipe(tmp_path / "o", ARMS="asr_only tts_ill")
    assert r.returncode == 1 and "unknown arm 'tts_ill'" in r.stderr and "arms: asr_only text text_il tts tts_il" \
        in r.stderr
    r = recipe(tmp_path / "o", MINI_OUT=str(tmp_path / "nowhere"))
    assert r.returncode == 1 and f"MINI_OUT={tmp_path / 'nowhere'} is not a folder" in r.stderr
    assert "recipes/mini/run.sh --out DIR --stop-stage 5" in r.stderr
    r = recipe(tmp_path / "o", ARMS="text tts")
    assert r.returncode == 1 and "lacks the baseline arm asr_only" in r.stderr
    r = recipe(tmp_path / "o", SEEDS="0 x")
    assert r.returncode == 1 and "'x' is not a non-negative integer" in r.stderr
    r = recipe(tmp_path / "o", PARALLEL="two")
    assert r.returncode == 1 and "PARALLEL='two' is not a positive integer" in r.stderr
    assert not (tmp_path / "o").exists()  # nothing was written
    # an existing folder that lacks stage 5, asked for a later stage only: named, with the command that makes it
    (tmp_path / "half").mkdir()
    r = recipe(tmp_path / "o", "--stage", "2", MINI_OUT=str(tmp_path / "half"))
    assert r.returncode == 1 and "lacks the mini recipe's stage 5" in r.stderr
    r = recipe(tmp_path / "o", "--stages", "2")
    assert r.returncode == 2 and "unknown option --stages" in r.stderr
    help_text = subprocess.run(["bash", str(RECIPE), "--help"], capture_output=True, text=True).stdout
    assert "--stage" in help_text and "ARM_STEPS" in help_text and "set -e" not in help_text


def state_dict(ckpt):
    return read_checkpoint(ckpt)["state_dict"]


def hyps(path):
    return [(r["id"], r["hyp"]) for r in map(json.loads, Path(path).read_text().splitlines())]


@pytest.mark.slow
def test_recipe_runs_the_grid_and_a_killed_stage_reruns_to_the_same_outputs(tmp_path):
    """The whole recipe at tiny sizes: it builds its own mini recipe output, trains 5 arms x 2 seeds, evaluates,
    tabulates; then a training run killed halfway and the recipe run again give the same weights and hypotheses."""
    env = {"NUM_UTTERANCES": "40", "CTC_STEPS": "12", "LM_STEPS": "30", "STAGE1_STEPS": "3", "NJ": "2",
           "SEEDS": "0 1", "ARM_STEPS": "30", "DOMAIN_SENTENCES": "8", "EVAL_UTTERANCES": "3", "BOOTSTRAP": "100",
           "PARALLEL": "2",
           "ARM_OVERRIDES": "checkpoint.every_n_steps=5 trainer.val_check_interval=15"}
    out = tmp_path / "medical"
    r = recipe(out, **env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    done = sorted(p.name for p in (out / ".done").iterdir())
    assert "1-domain-data" in done and len([d for d in done if d.startswith(("2-", "3-"))]) == 20
    assert (out / "mini" / ".done" / "5-train-stage1").is_file()
    assert (out / "exp" / "logs" / "2-train-tts_il-seed1.log").is_file()  # PARALLEL=2: one log per run
    tts = out / "data" / "aligned" / "tts_domain" / "cuts.jsonl.gz"
    from lhotse import CutSet

    from jstip.tts.voices import split_of_voice
    from jstip.tts.base import Voice

    tts_cuts = CutSet.from_file(tts)
    assert 0 < len(tts_cuts) <= 8
    assert {split_of_voice(Voice.parse(c.supervisions[0].custom["voice"])) for c in tts_cuts} == {"train"}
    grid = json.loads((out / "grid.json").read_text())
    assert [a["name"] for a in grid["arms"]] == ARMS and grid["utterances"] == 3
    assert "| tts_il | 2 |" in (out / "grid.md").read_text()
    for s in (0, 1):
        assert (out / "exp" / f"report_seed{s}.html").is_file()
    # every arm trained its steps from the stage-1 checkpoint with its own data
    cfg = (out / "exp" / "train" / "tts" / "seed1" / "config.yaml").read_text()
    assert "tts_domain" in cfg
    run = out / "exp" / "train" / "tts_il" / "seed0"
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 30
    ref_state, ref_hyps = state_dict(run / "checkpoints" / "last.ckpt"), hyps(out / "exp" / "eval" / "tts_il" /
                                                                             "seed0" / "hyps.jsonl")
    # A second run does nothing but the report.
    again = recipe(out, **env)
    assert again.returncode == 0 and again.stdout.count("done already") == 21, again.stdout

    # Kill the training of one arm halfway, then run the recipe again.
    for marker in ("2-train-tts_il-seed0", "3-evaluate-tts_il-seed0"):
        (out / ".done" / marker).unlink()
    import shutil

    shutil.rmtree(run)
    shutil.rmtree(out / "exp" / "eval" / "tts_il" / "seed0")
    proc = subprocess.Popen(["bash", str(RECIPE), "--out", str(out), "--stage", "2", "--stop-stage", "2"],
                            env=dict(os.environ, JSTIP=str(JSTIP), WANDB_MODE="offline", **env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and sum('"loss"' in line for line in metrics.read_text().splitlines()) >= 12:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / ".done" / "2-train-tts_il-seed0").exists()
    r = recipe(out, **env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "stage 2: train tts_il, seed 0" in r.stdout and "stage 3: evaluate tts_il, seed 0" in r.stdout
    assert r.stdout.count("done already") == 1 + 9 + 9, r.stdout
    state = state_dict(run / "checkpoints" / "last.ckpt")
    assert state.keys() == ref_state.keys()
    for name, tensor in ref_state.items():
        torch.testing.assert_close(state[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    assert hyps(out / "exp" / "eval" / "tts_il" / "seed0" / "hyps.jsonl") == ref_hyps
