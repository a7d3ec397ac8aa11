"""jstip pretrain: CTC encoder and text LM priors on the 40-utterance mini corpus, through the real CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from jstip.cli import main as jstip_cli


def run(args):
    result = CliRunner().invoke(jstip_cli, args, catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def ctc_dir(mini_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("ctc")
    result = run(["pretrain", "ctc", "--train-cuts", str(mini_corpus / "train" / "cuts.jsonl.gz"),
                  "--dev-cuts", str(mini_corpus / "dev" / "cuts.jsonl.gz"), "--out", str(out), "--max-steps", "4",
                  "--max-duration", "20", "--num-threads", "1"])
    assert result.exit_code == 0, result.output
    assert "4 steps" in result.output
    return out


@pytest.fixture(scope="module")
def lm_dir(mini_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    result = run(["pretrain", "text-lm", "--text", str(mini_corpus / "text" / "domain.txt"),
                  "--transcripts", str(mini_corpus / "train" / "cuts.jsonl.gz"), "--out", str(out), "--max-steps", "40",
                  "--vocab-size", "300", "--held-out-fraction", "0.1", "--num-threads", "1"])
    assert result.exit_code == 0, result.output
    return out


def test_ctc_writes_a_nemo_model_that_nemo_and_the_speechlm_load(ctc_dir, mini_corpus):
    from lhotse import CutSet
    from nemo.collections.asr.models import ASRModel, EncDecCTCModel

    from jstip.scoring.normalize import normalize_text
    from jstip.model.encoder import nemo_encoder
    from jstip.pretrain.ctc import encoder_sizes

    model = ASRModel.restore_from(str(ctc_dir / "ctc.nemo"), map_location="cpu")
    assert isinstance(model, EncDecCTCModel)
    train_chars = {ch for c in CutSet.from_file(mini_corpus / "train" / "cuts.jsonl.gz")
                   for s in c.supervisions for ch in normalize_text(s.text)}
    assert set(model.cfg.labels) == train_chars
    assert model.decoder.num_classes_with_blank == len(train_chars) + 1

    enc = nemo_encoder(ctc_dir / "ctc.nemo")
    sizes = encoder_sizes("tiny")
    assert enc.dim == sizes["d_model"]
    assert enc.frame_shift == pytest.approx(0.01 * sizes["subsampling_factor"])
    assert len(enc.encoder.layers) == sizes["n_layers"]
    frames, lens = enc(torch.randn(2, 16000), torch.tensor([16000, 8000]))
    assert frames.shape[0] == 2 and frames.shape[2] == sizes["d_model"]
    assert lens.tolist() == [25, 13]  # 100 mel frames / 4 (+ the striding conv's rounding)

    # the weights are the trained ones, not a fresh initialisation
    fresh = EncDecCTCModel(cfg=model.cfg)
    trained = dict(model.encoder.named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in fresh.encoder.named_parameters())


def test_ctc_logs_steps_and_dev_wer(ctc_dir, mini_corpus):
    rows = [json.loads(line) for line in (ctc_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4]  # logged every 5 steps and at the last one
    assert all(math.isfinite(r["loss"]) and r["elapsed"] > 0 for r in rows)
    dev = json.loads((ctc_dir / "dev_wer.json").read_text())
    from lhotse import CutSet

    assert dev["steps"] == 4 and dev["wer"] >= 0
    assert dev["num_utterances"] == len(CutSet.from_file(mini_corpus / "dev" / "cuts.jsonl.gz"))
    hyps = [json.loads(line) for line in (ctc_dir / "dev" / "hyps.jsonl").read_text().splitlines()]
    assert len(hyps) == dev["num_utterances"] and all("hyp" in h and h["ref"] for h in hyps)


def test_greedy_decode_collapses_repeats_and_drops_blanks():
    from jstip.pretrain.ctc import greedy_decode

    vocab = [" ", "a", "b"]
    blank = len(vocab)
    path = [1, 1, blank, 1, 2, 2, 0, 0, blank, 2, blank]
    log_probs = torch.full((1, len(path), len(vocab) + 1), -10.0)
    log_probs[0, torch.arange(len(path)), torch.tensor(path)] = 0.0
    assert greedy_decode(log_probs, torch.tensor([len(path)]), vocab) == ["aab b"]
    assert greedy_decode(log_probs, torch.tensor([3]), vocab) == ["a"]


def test_text_lm_reloads_and_beats_the_untrained_model(lm_dir, mini_corpus):
    from jstip.model.llm import load_llm
    from jstip.model.tokenizer import load_tokenizer
    from jstip.pretrain.text_lm import encode_sentences, perplexity, read_texts, split_held_out

    stats = json.loads((lm_dir / "perplexity.json").read_text())
    assert stats["steps"] == 40
    assert stats["held_out_ppl"] < 0.5 * stats["untrained_ppl"]
    llm, tok = load_llm(lm_dir), load_tokenizer(lm_dir)
    assert len(tok) == stats["vocab_size"] == llm.get_input_embeddings().weight.shape[0]
    assert tok.bos_token == "<s>" and tok.eos_token == "</s>"
    # the reloaded weights give the held-out perplexity that was measured before saving
    lines = read_texts([mini_corpus / "text" / "domain.txt", mini_corpus / "train" / "cuts.jsonl.gz"])
    _, held = split_held_out(lines, 0.1, seed=0)
    assert len(held) == stats["held_out_sentences"]
    assert perplexity(llm, encode_sentences(tok, held), tok.pad_token_id) == pytest.approx(stats["held_out_ppl"],
                                                                                           rel=1e-4)
    rows = [json.loads(line) for line in (lm_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_speechlm_starts_from_both_priors(ctc_dir, lm_dir):
    from jstip.model.build import build_llm_tokenizer, build_speechlm
    from jstip.model.llm import load_llm

    tok = build_llm_tokenizer({"kind": "hf", "path": str(lm_dir)})
    model = build_speechlm({"encoder": {"nemo_path": str(ctc_dir / "ctc.nemo")},
                            "llm": {"kind": "hf", "path": str(lm_dir)}, "adapter": {"hidden": 32}}, tok)
    assert model.adapter.stack == 2  # 40 ms encoder frames -> 80 ms LLM positions
    prior = load_llm(lm_dir)
    emb = model.llm.get_input_embeddings().weight
    assert torch.equal(emb[: prior.get_input_embeddings().weight.shape[0]], prior.get_input_embeddings().weight)


def test_missing_cuts_file_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(jstip_cli, ["pretrain", "ctc", "--train-cuts", str(tmp_path / "nope.jsonl.gz"),
                                            "--out", str(tmp_path / "o"), "--max-steps", "1"])
    assert result.exit_code != 0
    assert "cuts manifest not found" in result.output and "nope.jsonl.gz" in result.output


def test_empty_text_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    result = CliRunner().invoke(jstip_cli, ["pretrain", "text-lm", "--text", str(empty), "--out",
                                            str(tmp_path / "o"), "--max-steps", "1"])
    assert result.exit_code != 0
    assert "empty.txt: no text" in result.output


def test_a_budget_is_required(tmp_path):
    result = CliRunner().invoke(jstip_cli, ["pretrain", "text-lm", "--text", str(tmp_path / "x.txt"), "--out",
                                            str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "--max-minutes" in result.output


def test_help_has_examples():
    for args in (["pretrain", "--help"], ["pretrain", "ctc", "--help"], ["pretrain", "text-lm", "--help"]):
        result = CliRunner().invoke(jstip_cli, args)
        assert result.exit_code == 0 and "jstip pretrain" in result.output


def test_another_subsampling_still_gives_80_ms_positions(mini_corpus, tmp_path):
    from jstip.model.build import build_speechlm
    from jstip.model.encoder import nemo_encoder
    from jstip.model.tokenizer import build_tokenizer

    result = run(["pretrain", "ctc", "--train-cuts", str(mini_corpus / "train" / "cuts.jsonl.gz"), "--out",
                  str(tmp_path), "--max-steps", "1", "--subsampling-factor", "2", "--num-threads", "1"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "dev_wer.json").exists()  # no --dev-cuts
    assert nemo_encoder(tmp_path / "ctc.nemo").frame_shift == pytest.approx(0.02)
    tok = build_tokenizer(["a tiny text", "another tiny text"], vocab_size=280)
    model = build_speechlm({"encoder": {"nemo_path": str(tmp_path / "ctc.nemo")}, "adapter": {"hidden": 16}}, tok)
    assert model.adapter.stack == 4


def test_held_out_sentences_never_occur_in_training():
    from jstip.pretrain.text_lm import split_held_out

    lines = [f"sentence {i % 7}" for i in range(70)]  # 7 distinct sentences, 10 copies each
    train, held = split_held_out(lines, 0.3, seed=1)
    assert len(held) == 2 and len(set(held)) == 2
    assert not set(held) & set(train)
    assert len(train) == 50  # every copy of a held-out sentence left the training side
