"""``jstip evaluate`` on a tiny model trained for three steps on the mini corpus, and ``jstip report`` of its runs."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from jstip.cli import main
from jstip.rejects import read_rejected


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tiny_run(mini_corpus, tmp_path_factory) -> Path:
    """A tiny speech-LLM trained 3 steps, a checkpoint after every step: EXP/checkpoints/step00000{1,2,3}.ckpt."""
    exp = tmp_path_factory.mktemp("evaluate") / "exp"
    result = invoke(
        "train", "--config-name", "tiny",
        f"data.train_cuts={mini_corpus / 'train' / 'cuts.jsonl.gz'}",
        f"data.dev_cuts={mini_corpus / 'dev' / 'cuts.jsonl.gz'}",
        f"data.text_sources=[{mini_corpus / 'text' / 'domain.txt'}]",
        f"exp_dir={exp}", "logger.wandb=false", "trainer.enable_progress_bar=false", "num_threads=1",
        "trainer.max_steps=3", "checkpoint.every_n_steps=1", "checkpoint.keep=5", "trainer.val_check_interval=2")
    assert result.exit_code == 0, result.output
    for step in (1, 2, 3):
        assert (exp / "checkpoints" / f"step{step:06d}.ckpt").is_file()
    return exp


def ckpt(exp: Path, step: int) -> Path:
    return exp / "checkpoints" / f"step{step:06d}.ckpt"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_evaluate_help_has_an_example():
    result = invoke("evaluate", "--help")
    assert result.exit_code == 0
    assert "jstip evaluate --checkpoint" in result.output and "--spoken-tasks" in result.output


def test_evaluate_writes_the_contract_files_and_spoken_tasks(tiny_run, mini_corpus, tmp_path):
    from lhotse import CutSet

    test_cuts = mini_corpus / "test" / "cuts.jsonl.gz"
    out = tmp_path / "eval"
    result = invoke("evaluate", "--checkpoint", ckpt(tiny_run, 3), "--cuts", test_cuts, "--out", out,
                    "--beam", 2, "--spoken-items", 2, "--shots", 1, "--response-tokens", 8, "--threads", 1,
                    "--no-progress")
    assert result.exit_code == 0, result.output
    cuts = CutSet.from_file(test_cuts)
    assert re.search(rf"^{len(cuts)} utterances: WER \d+\.\d\d%.*EER \d+\.\d\d%.*MCQ text", result.output, re.M)

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("wer", "cer", "ter", "eer", "wer_counts", "ter_counts", "eer_counts", "eer_per_category",
                "entity_misses", "missing_ids", "extra_ids"):
        assert key in metrics, key
    assert metrics["num_utterances"] == len(cuts) and metrics["missing_ids"] == [] and metrics["extra_ids"] == []
    assert metrics["eer_counts"]["entities"] > 0  # the mini corpus's entities reached the scorer
    assert metrics["evaluate"]["step"] == 3 and metrics["evaluate"]["num_beams"] == 2
    assert metrics["evaluate"]["checkpoint"] == str(ckpt(tiny_run, 3).resolve())

    rows = read_jsonl(out / "hyps.jsonl")
    texts = {c.id: " ".join(s.text for s in c.supervisions) for c in cuts}
    assert {r["id"] for r in rows} == set(texts)
    for r in rows:
        assert r["ref"] == texts[r["id"]] and isinstance(r["hyp"], str)
    # The figures are those of `jstip score` on the same references and the written hypotheses.
    hyp_file = tmp_path / "hyp.jsonl"
    hyp_file.write_text("".join(json.dumps({"id": r["id"], "hyp": r["hyp"]}) + "\n" for r in rows))
    rescored = tmp_path / "rescored"
    assert invoke("score", "--ref", test_cuts, "--hyp", hyp_file, "--out", rescored).exit_code == 0
    again = json.loads((rescored / "metrics.json").read_text())
    for key in ("wer", "cer", "ter", "eer", "wer_counts", "eer_counts"):
        assert again[key] == metrics[key], key

    # Training log up to the checkpoint's step, where the report looks for it.
    log_rows = read_jsonl(out / "train" / "metrics.jsonl")
    assert [r["step"] for r in log_rows if "loss" in r] == [1, 2, 3]
    assert any("dev_loss" in r for r in log_rows)

    # Spoken tasks: two items each, spoken by the voice, figures are fractions, per-item rows beside.
    for name, figure in (("modality_gap", "accuracy_speech"), ("instruction_following", "prompt_level"),
                         ("spoken_qa", "exact_match")):
        section = metrics[name]
        assert "error" not in section, section
        assert section["num_items"] == 2 and section["voice"] == "espeak:en-us+f3@160" and section["skipped"] == []
        assert 0.0 <= section[figure] <= 1.0
        assert "items" not in section
        assert len(read_jsonl(out / "spoken_tasks" / f"{name}.jsonl")) == 2
    for row in read_jsonl(out / "spoken_tasks" / "modality_gap.jsonl"):
        for cond in ("logprobs_text", "logprobs_speech"):
            assert sorted(row[cond]) == ["A", "B", "C", "D"]
            assert abs(sum(2.718281828 ** v for v in row[cond].values()) - 1) < 1e-6
        # The spoken condition really differs from the written one (audio frames, not the text, are in the prompt).
        assert row["logprobs_text"] != row["logprobs_speech"]


def test_greedy_hypotheses_are_the_models_own_transcripts(tiny_run, mini_corpus, tmp_path):
    """Batched, duration-sorted decoding gives what SpeechLM.transcribe gives one cut at a time (loops left as they
    are: their re-decoding is tested below)."""
    from lhotse import CutSet

    from jstip.evaluate.decode import token_budget
    from jstip.train.run import load_checkpoint

    test_cuts = mini_corpus / "test" / "cuts.jsonl.gz"
    out = tmp_path / "eval"
    result = invoke("evaluate", "--checkpoint", ckpt(tiny_run, 2), "--cuts", test_cuts, "--out", out,
                    "--max-utterances", 3, "--batch-size", 1, "--spoken-task", "modality_gap", "--spoken-items", 2,
                    "--shots", 0, "--threads", 1, "--no-progress", "--loop-threshold", 0)
    assert result.exit_code == 0, result.output
    # --spoken-task runs only the named spoken task
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["modality_gap"]["num_items"] == 2 and metrics["evaluate"]["spoken_tasks"]["tasks"] == ["modality_gap"]
    assert "instruction_following" not in metrics and "spoken_qa" not in metrics
    assert sorted(p.name for p in (out / "spoken_tasks").iterdir()) == ["modality_gap.jsonl"]
    hyps = {r["id"]: r["hyp"] for r in read_jsonl(out / "hyps.jsonl")}
    model, tokenizer, _ = load_checkpoint(ckpt(tiny_run, 2))
    cuts = list(CutSet.from_file(test_cuts).subset(first=3))
    assert set(hyps) == {c.id for c in cuts}
    for cut in cuts:
        [expected] = model.transcribe([cut], tokenizer, max_new_tokens=token_budget(cut.duration, 256), batch_size=1)
        assert hyps[cut.id] == expected


def test_unreadable_audio_is_rejected_and_scored_as_missing(tiny_run, mini_corpus, tmp_path):
    from lhotse import CutSet

    cuts = list(CutSet.from_file(mini_corpus / "test" / "cuts.jsonl.gz").subset(first=2))
    bad = cuts[0]
    broken = tmp_path / "broken.jsonl.gz"
    with gzip.open(broken, "wt") as f:
        for cut in cuts:
            d = cut.to_dict()
            if cut.id == bad.id:
                d["recording"]["sources"][0]["source"] = str(tmp_path / "gone.wav")
            f.write(json.dumps(d) + "\n")
    out = tmp_path / "eval"
    result = invoke("evaluate", "--checkpoint", ckpt(tiny_run, 1), "--cuts", broken, "--out", out,
                    "--no-spoken-tasks", "--threads", 1, "--no-progress")
    assert result.exit_code == 0, result.output
    assert bad.id in result.output  # the warning names the cut
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["missing_ids"] == [bad.id] and metrics["num_utterances"] == 2
    [rejected] = read_jsonl(out / "rejected.jsonl")
    assert rejected["id"] == bad.id and rejected["stage"] == "evaluate" and "audio" in rejected["reason"]


def test_report_of_two_evaluate_runs_shows_the_difference_with_an_interval(tiny_run, mini_corpus, tmp_path):
    test_cuts = mini_corpus / "test" / "cuts.jsonl.gz"
    runs = []
    for step in (1, 3):
        out = tmp_path / f"step{step}"
        result = invoke("evaluate", "--checkpoint", ckpt(tiny_run, step), "--cuts", test_cuts, "--out", out,
                        "--no-spoken-tasks", "--threads", 1, "--no-progress")
        assert result.exit_code == 0, result.output
        runs.append(json.loads((out / "metrics.json").read_text()))
    report = tmp_path / "report.html"
    result = invoke("report", tmp_path / "step1", tmp_path / "step3", "--out", report, "--bootstrap", 200)
    assert result.exit_code == 0, result.output
    match = re.search(r"WER step3 - step1: ([+-]\d+\.\d\d) points \[([+-]\d+\.\d\d), ([+-]\d+\.\d\d)\]", result.output)
    assert match, result.output
    delta, low, high = map(float, match.groups())
    assert delta == pytest.approx(100 * (runs[1]["wer"] - runs[0]["wer"]), abs=0.006)
    assert low <= delta <= high
    assert "EER step3 - step1" in result.output
    html = report.read_text()
    markdown = report.with_suffix(".md").read_text()
    assert "step1" in html and "step3" in html and "Learning curves" in html
    assert (tmp_path / "report_files" / "learning_curves.png").is_file()
    assert f"{100 * runs[1]['wer']:.2f}" in markdown and f"{100 * runs[0]['wer']:.2f}" in markdown


def test_an_item_the_voice_cannot_speak_is_skipped_and_the_tasks_go_on(tiny_run):
    """Fault injection around the real espeak voice: one question fails to synthesise."""
    from jstip.evaluate.decode import bos_ids
    from jstip.evaluate.spoken_eval import Speaker, run_spoken_tasks
    from jstip.evaluate.spoken_qa import load_qa
    from jstip.train.run import load_checkpoint
    from jstip.tts import SynthesisError, synthesize

    bad_question = load_qa()[1]["question"]

    def flaky(text, voice):
        if text == bad_question:
            raise SynthesisError(f"cannot speak {text!r}")
        return synthesize(text, voice)

    model, tokenizer, config = load_checkpoint(ckpt(tiny_run, 1))
    summary, per_item = run_spoken_tasks(model, tokenizer, bos_ids(tokenizer, config), limit=3, shots=0,
                                         max_new_tokens=4, progress=False,
                                         speaker=Speaker("espeak:en-us+f3@160", synthesize=flaky))
    qa = summary["spoken_qa"]
    assert qa["num_items"] == 2 and [s["id"] for s in qa["skipped"]] == [load_qa()[1]["id"]]
    assert "cannot speak" in qa["skipped"][0]["reason"]
    assert [r["id"] for r in per_item["spoken_qa"]] == [load_qa()[0]["id"], load_qa()[2]["id"]]
    assert summary["modality_gap"]["num_items"] == 3 and summary["instruction_following"]["num_items"] == 3


def test_a_checkpoint_not_written_by_jstip_train_is_named(mini_corpus, tmp_path):
    import torch

    foreign = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, foreign)
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(foreign), "--cuts",
                                       str(mini_corpus / "test" / "cuts.jsonl.gz"), "--out", str(tmp_path / "e")])
    assert result.exit_code == 1
    assert "other.ckpt" in result.output and "not a jstip training checkpoint" in result.output


def test_an_empty_response_follows_no_instruction_strictly_or_loosely():
    """A model that stops at once (EOS first) must not score on "no commas" and the like (IFEval's rule)."""
    from jstip.evaluate.instructions import check_instruction, score_responses

    no_commas = {"type": "no_commas"}
    assert check_instruction("fine by me", no_commas) and check_instruction("fine by me", no_commas, loose=True)
    assert not check_instruction("", no_commas) and not check_instruction(" \n", no_commas, loose=True)
    result = score_responses([{"id": "x", "prompt": "p", "instructions": [no_commas]}], {"x": ""})
    assert result["prompt_strict"] == 0 and result["prompt_loose"] == 0

# --- jstip transcribe: a folder of WAVs (real LibriVox speech among them), a wav.scp and a cut manifest -----------

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@pytest.mark.skipif(not LIBRIVOX.is_dir(), reason="Debian pocketsphinx-testdata is not installed")
def test_transcribe_a_folder_of_wavs_and_a_wav_scp(tiny_run, tmp_path):
    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    clips = sorted(LIBRIVOX.glob("*.wav"))[:3]
    for clip in clips[:2]:
        shutil.copy(clip, folder / clip.name)
    shutil.copy(clips[2], folder / "sub" / clips[2].name)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEnot really")
    out = tmp_path / "hyps" / "folder.jsonl"
    result = CliRunner().invoke(main, ["transcribe", "--model", str(ckpt(tiny_run, 2)), "--in", str(folder),
                                       "--out", str(out), "--threads", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [r["id"] for r in rows]
    assert ids == sorted([c.stem for c in clips[:2]]) + [f"sub_{clips[2].stem}"]
    assert all(isinstance(r["hyp"], str) for r in rows)
    [bad] = read_rejected(out.parent / "rejected.jsonl")
    assert bad["id"] == "broken" and "not readable audio" in bad["reason"]
    # the same files through a wav.scp, plus a missing one and a piped command
    scp = tmp_path / "wav.scp"
    scp.write_text(f"a {folder / clips[0].name}\nb {tmp_path / 'gone.wav'}\nc sox x.wav -t wav - |\n")
    out2 = tmp_path / "scp" / "hyps.jsonl"
    result = CliRunner().invoke(main, ["transcribe", "--model", str(ckpt(tiny_run, 2)), "--in", str(scp),
                                       "--out", str(out2), "--threads", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    rows2 = [json.loads(line) for line in out2.read_text().splitlines()]
    assert [r["id"] for r in rows2] == ["a"] and rows2[0]["hyp"] == rows[ids.index(clips[0].stem)]["hyp"]
    assert {r["id"] for r in read_rejected(out2.parent / "rejected.jsonl")} == {"b", "c"}


def test_transcribe_a_cut_manifest_gives_the_evaluate_transcripts(tiny_run, mini_corpus, tmp_path):
    cuts = mini_corpus / "test" / "cuts.jsonl.gz"
    out = tmp_path / "t" / "hyps.jsonl"
    result = CliRunner().invoke(main, ["transcribe", "--model", str(ckpt(tiny_run, 2)), "--in", str(cuts), "--out",
                                       str(out), "--threads", "1", "--no-progress", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    hyps = {json.loads(line)["id"]: json.loads(line)["hyp"] for line in out.read_text().splitlines()}
    ev = tmp_path / "ev"
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(ckpt(tiny_run, 2)), "--cuts", str(cuts), "--out",
                                       str(ev), "--no-spoken-tasks", "--listen-utterances", "0", "--threads", "1",
                                       "--no-progress", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    scored = {json.loads(line)["id"]: json.loads(line)["hyp"] for line in (ev / "hyps.jsonl").read_text().splitlines()}
    assert hyps == scored and len(hyps) > 0


# --- jstip export: a folder that leaves jstip ------------------------------------------------------------------------


def test_export_round_trip_gives_the_checkpoints_transcripts(tiny_run, mini_corpus, tmp_path):
    """Export, load with SpeechLM.from_pretrained: the same greedy transcripts on the mini dev set; the LLM folder
    loads with plain transformers, evaluate takes the folder, merge --speech takes it, and no file is a pickle."""
    from lhotse import CutSet
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jstip.evaluate.decode import asr_prompt_ids, decode_cuts
    from jstip.model.speechlm import SpeechLM
    from jstip.train.run import load_checkpoint

    out = tmp_path / "exported"
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(ckpt(tiny_run, 2)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").is_file() and (out / "speech.safetensors").is_file()
    for f in out.rglob("*"):  # no pickle: every file is JSON, text or safetensors
        assert f.is_dir() or f.suffix in (".json", ".safetensors", ".txt", ".jinja", ".model"), f

    dev = list(CutSet.from_file(mini_corpus / "dev" / "cuts.jsonl.gz"))
    model, tokenizer, config = load_checkpoint(ckpt(tiny_run, 2))
    # Loops left as they are (the 2-step model's near-uniform logits make the re-decoding of a loop a coin toss).
    want = decode_cuts(model, tokenizer, dev, asr_prompt_ids(tokenizer, config), progress=False, loop_threshold=0)
    exported = SpeechLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(str(out / "llm"))
    got = decode_cuts(exported, tok, dev, asr_prompt_ids(tok, config), progress=False, loop_threshold=0)
    assert got == want and len(got) == len(dev)

    llm = AutoModelForCausalLM.from_pretrained(str(out / "llm"))
    assert llm.get_input_embeddings().weight.shape[0] == len(tok)

    ev = tmp_path / "ev"
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(out), "--cuts",
                                       str(mini_corpus / "dev" / "cuts.jsonl.gz"), "--out", str(ev),
                                       "--no-spoken-tasks", "--listen-utterances", "0", "--threads", "1",
                                       "--no-progress", "--loop-threshold", "0"])
    assert result.exit_code == 0, result.output
    scored = {json.loads(line)["id"]: json.loads(line)["hyp"] for line in (ev / "hyps.jsonl").read_text().splitlines()}
    assert scored == want

    # merge --speech takes the export (its LLM): base = instruct = the exported LLM gives it back unchanged
    base = tmp_path / "base"
    llm.save_pretrained(str(base))
    tok.save_pretrained(str(base))
    merged = tmp_path / "merged"
    result = CliRunner().invoke(main, ["merge", "--base", str(base), "--instruct", str(base), "--speech", str(out),
                                       "--scale", "1.0", "--out", str(merged)])
    assert result.exit_code == 0, result.output
    assert (merged / "config.json").is_file()


def test_a_repetition_loop_is_decoded_again_without_repeated_trigrams(tiny_run, mini_corpus):
    # A 3-step model loops (it repeats a few tokens to the budget): those hypotheses, and only those, are decoded
    # again with every repeated 3-gram of tokens forbidden, as Whisper re-decodes a transcript that compresses too well.
    from lhotse import CutSet

    from jstip.evaluate.decode import LOOP_THRESHOLD, asr_prompt_ids, decode_cuts
    from jstip.model.whisper_decode import compression_ratio
    from jstip.train.run import load_checkpoint

    model, tokenizer, config = load_checkpoint(ckpt(tiny_run, 3))
    dev = CutSet.from_file(mini_corpus / "dev" / "cuts.jsonl.gz").to_eager()
    prompt = asr_prompt_ids(tokenizer, config)
    plain = decode_cuts(model, tokenizer, dev, prompt, progress=False, loop_threshold=0)
    loops: list[str] = []
    fixed = decode_cuts(model, tokenizer, dev, prompt, progress=False, loops=loops)
    looping = {k for k, v in plain.items() if compression_ratio(v) > LOOP_THRESHOLD}
    assert looping and set(loops) == looping
    for k in plain:
        if k not in looping:
            assert fixed[k] == plain[k]
            continue
        ids = tokenizer(fixed[k], add_special_tokens=False)["input_ids"]
        grams = [tuple(ids[i:i + 3]) for i in range(len(ids) - 2)]
        assert len(grams) == len(set(grams)) or compression_ratio(fixed[k]) < compression_ratio(plain[k]), k
