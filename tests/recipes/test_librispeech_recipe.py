"""recipes/librispeech/run.sh on a tiny LibriSpeech-shaped tree (espeak-ng audio): every stage, resume, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lhotse import CutSet

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "librispeech" / "run.sh"
JSTIP = Path(sys.executable).with_name("jstip")

PARTS = {
    "train-clean-100": {
        "19-198-0000": "THE MAN WALKED DOWN THE ROAD TO THE OLD HOUSE",
        "19-198-0001": "SHE OPENED THE DOOR AND LOOKED OUT AT THE GARDEN",
        "19-198-0002": "WE SHALL GO TO THE TOWN IN THE MORNING",
        "19-198-0003": "HE SAID THAT THE WATER WAS VERY COLD",
        "26-495-0000": "THE CHILDREN PLAYED IN THE FIELD ALL DAY LONG",
        "26-495-0001": "I HAVE NEVER SEEN SUCH A BEAUTIFUL NIGHT",
        "26-495-0002": "THEY CAME BACK HOME WHEN THE SUN WENT DOWN",
        "26-495-0003": "MY FATHER TOLD ME A STORY ABOUT THE SEA",
    },
    "train-clean-360": {
        "40-222-0000": "THE BIRDS FLEW OVER THE TREES AT THE END OF THE DAY",
        "40-222-0001": "SHE WROTE A LONG LETTER TO HER BROTHER",
    },
    "dev-clean": {
        "84-121123-0000": "THE OLD WOMAN SAT BY THE FIRE",
        "84-121123-0001": "HE TOOK HIS HAT AND WENT OUT INTO THE STREET",
    },
    "test-clean": {
        "1089-134686-0000": "HE HOPED THERE WOULD BE STEW FOR DINNER",
        "1089-134686-0001": "THE YOUNG MAN SAT DOWN BY THE WINDOW",
    },
}
TINY = {"TRAIN_PARTS": "train-clean-100 train-clean-360", "DEV_PARTS": "dev-clean", "TEST_PARTS": "test-clean",
        "NJ": "2", "CONFIG_STAGE1": "tiny", "CONFIG_STAGE2": "tiny", "CTC_STEPS": "12", "CTC_MINUTES": "5",
        "STAGE1_STEPS": "3", "STAGE2_STEPS": "4", "SPOKEN_ITEMS": "0", "TRAIN_ARGS": "logger.wandb=false"}
STAGES = ["0-prepare", "1-align", "2-interleave-stats", "3-pretrain-ctc", "4-train-stage1", "5-train-stage2",
          "6-evaluate", "7-report"]


def run_recipe(out, *args, check=True, **env):
    proc = subprocess.run(["bash", str(RECIPE), "--out", str(out), *args],
                          env=dict(os.environ, JSTIP=str(JSTIP), WANDB_MODE="offline", **{**TINY, **env}),
                          capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def ids(path):
    return {c.id for c in CutSet.from_file(path)}


def rejected(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def corpus(make_librispeech_tree):
    return make_librispeech_tree(PARTS)


@pytest.fixture(scope="module")
def first_stages(corpus, tmp_path_factory):
    """Stages 0-2 once, with the alignment check of pocketsphinx against itself on dev-clean."""
    out = tmp_path_factory.mktemp("ls_recipe")
    text = out.parent / f"{out.name}_domain.txt"
    text.write_text("THE DOCTOR SAW THE SICK CHILD IN THE MORNING\nTHE NURSE GAVE HIM WATER\n")
    run_recipe(out, "--stop-stage", "2", CORPUS_DIR=str(corpus), CHECK_ALIGNER="pocketsphinx")
    return out, text


def test_stages_0_to_2_account_for_every_utterance_and_resume(first_stages):
    out, _ = first_stages
    data = out / "data"
    assert sorted(p.name for p in (out / ".done").iterdir()) == STAGES[:3]
    for part, utts in PARTS.items():  # prepare keeps LibriSpeech's text as it is, and every utterance
        cuts = CutSet.from_file(data / "prepared" / part / "cuts.jsonl.gz")
        assert {c.id: c.supervisions[0].text for c in cuts} == utts
    assert ids(data / "dev" / "cuts.jsonl.gz") == set(PARTS["dev-clean"])
    # Alignment, per train part: aligned + rejected (with a reason) = prepared; most of the clear TTS speech aligns.
    aligned_ids = set()
    for part in ("train-clean-100", "train-clean-360"):
        aligned_dir = data / "aligned" / part
        aligned = CutSet.from_file(aligned_dir / "cuts.jsonl.gz")
        refused = rejected(aligned_dir / "rejected.jsonl")
        assert {c.id for c in aligned} | {r["id"] for r in refused} == set(PARTS[part])
        assert len(aligned) + len(refused) == len(PARTS[part])
        assert all(r["reason"] and r["stage"] for r in refused), refused
        for cut in aligned:
            words = cut.supervisions[0].alignment["word"]
            assert [w.symbol for w in words] == cut.supervisions[0].text.split()
            assert all(0 <= w.start < w.start + w.duration <= cut.duration + 1e-3 for w in words)
        aligned_ids |= {c.id for c in aligned}
    assert len(aligned_ids) >= 7, aligned_ids
    # Both parts in the one training manifest (gzip members concatenate; lhotse reads every cut).
    assert ids(data / "aligned" / "train" / "cuts.jsonl.gz") == aligned_ids
    compare = json.loads((out / "exp" / "align_check" / "compare.json").read_text())
    assert compare["overall"]["n_words"] > 0  # the same aligner twice: the same boundaries
    assert compare["overall"]["mean_abs_ms"] < 1, compare["overall"]
    assert "speech share" in (out / "exp" / "interleave_stats.txt").read_text().lower()
    # A second run skips every finished stage and needs no corpus any more.
    again = run_recipe(out, "--stop-stage", "2", CORPUS_DIR="")
    assert again.stdout.count("done already") == 3, again.stdout


@pytest.mark.slow
def test_every_stage_trains_evaluates_reports_and_resumes(first_stages):
    out, text = first_stages
    run_recipe(out, "--stage", "3", TEXT=str(text))
    exp = out / "exp"
    assert sorted(p.name for p in (out / ".done").iterdir()) == STAGES
    assert (exp / "ctc" / "ctc.nemo").is_file()
    for stage in ("stage1", "stage2"):
        assert (exp / stage / "checkpoints" / "last.ckpt").is_file()
        steps = [json.loads(line)["step"] for line in (exp / stage / "metrics.jsonl").read_text().splitlines()]
        assert steps and max(steps) >= 2, steps
    config2 = (exp / "stage2" / "config.yaml").read_text()
    assert str(text) in config2 and "ctc.nemo" in config2 and "stage1/checkpoints/last.ckpt" in config2
    assert "word_il: 0" in (exp / "stage1" / "config.yaml").read_text()  # stage 1 is ASR only
    for stage in ("stage1", "stage2"):
        ev = exp / "eval" / "test-clean" / stage
        metrics = json.loads((ev / "metrics.json").read_text())
        assert metrics["wer"] >= 0
        with (ev / "hyps.jsonl").open() as f:
            assert {json.loads(line)["id"] for line in f} == set(PARTS["test-clean"])  # no test utterance lost
    html = (exp / "report" / "test-clean.html").read_text()
    assert "stage1" in html and "stage2" in html
    assert (exp / "report" / "test-clean.md").is_file()
    again = run_recipe(out, TEXT=str(text))
    assert again.stdout.count("done already") == len(STAGES), again.stdout


def test_missing_corpus_dir_names_the_variable_and_the_fix(tmp_path):
    proc = run_recipe(tmp_path / "o", check=False, CORPUS_DIR="")
    assert proc.returncode != 0
    assert "CORPUS_DIR is not set" in proc.stderr and "CORPUS_DIR=/data/LibriSpeech" in proc.stderr
    proc = run_recipe(tmp_path / "o", check=False, CORPUS_DIR=str(tmp_path / "nowhere"))
    assert proc.returncode != 0 and f"CORPUS_DIR={tmp_path / 'nowhere'}: no such folder" in proc.stderr


def test_missing_part_names_the_part_and_where_to_get_it(corpus, tmp_path):
    proc = run_recipe(tmp_path / "o", check=False, CORPUS_DIR=str(corpus), TEST_PARTS="test-clean test-other")
    assert proc.returncode != 0
    assert "part 'test-other' not found" in proc.stderr
    assert "openslr.org/resources/12/test-other.tar.gz" in proc.stderr
    assert "(present: dev-clean test-clean train-clean-100 train-clean-360)" in proc.stderr
    assert not (tmp_path / "o" / ".done" / "0-prepare").exists()


def test_bad_settings_fail_before_any_work(tmp_path):
    proc = run_recipe(tmp_path / "o", check=False, CORPUS_DIR=str(tmp_path), ALIGNER="hmm")
    assert proc.returncode != 0 and "ALIGNER=hmm: use pocketsphinx, ctc or mfa" in proc.stderr
    proc = run_recipe(tmp_path / "o", check=False, CORPUS_DIR=str(tmp_path), TEXT=str(tmp_path / "domain.txt"))
    assert proc.returncode != 0 and f"TEXT file not found: {tmp_path / 'domain.txt'}" in proc.stderr
    proc = run_recipe(tmp_path / "o", "--stage", "1", check=False, ALIGNER="ctc")
    assert proc.returncode != 0 and "ALIGNER=ctc (or CHECK_ALIGNER=ctc) needs a NeMo CTC model" in proc.stderr
    # A 7B config without its LLM stops at the start of training with the variable to set, and leaves no marker.
    out = tmp_path / "o7b"
    (out / "data" / "aligned" / "train").mkdir(parents=True)
    (out / "data" / "aligned" / "train" / "cuts.jsonl.gz").write_bytes(b"")
    nemo = tmp_path / "encoder.nemo"
    nemo.write_bytes(b"")
    proc = run_recipe(out, "--stage", "4", "--stop-stage", "4", check=False, CONFIG_STAGE1="llm7b_stage1",
                      ENCODER_NEMO=str(nemo))
    assert proc.returncode != 0
    assert "config 'llm7b_stage1': the config needs model.llm.path, model.tokenizer.path" in proc.stderr, proc.stderr
    assert "LLM_PATH=" in proc.stderr
    assert not (out / ".done" / "4-train-stage1").exists()



def test_the_slurm_script_checks_and_composes_its_training_command(tmp_path):
    """recipes/librispeech/slurm.sbatch with a stand-in srun: its --check passes with the given paths, and its
    training command composes (printed with --cfg instead of trained)."""
    import stat

    script = ROOT / "recipes" / "librispeech" / "slurm.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text("#!/usr/bin/env bash\nwhile [[ $1 == --* ]]; do shift; done\n"
                    "if [[ \" $* \" == *' --check '* ]]; then exec \"$@\"; fi\nexec \"$@\" --cfg\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    venv = tmp_path / "work" / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "activate").write_text(f"export PATH={Path(sys.executable).parent}:$PATH\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS_PER_NODE": "8", "OUT": str(tmp_path / "out")}
    proc = subprocess.run(["bash", str(script)], cwd=tmp_path / "work", env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "every required value is given" in proc.stdout
    assert "num_nodes: 2" in proc.stdout and "devices: 8" in proc.stdout and "/models/llm7b" in proc.stdout
