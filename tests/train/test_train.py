from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from train_helpers import batches, train_rows
from jstip.train.checkpoint_file import read_checkpoint

CONF_DIR = Path(__file__).resolve().parents[2] / "jstip" / "conf"


def run_cli(args):
    from jstip.cli import main

    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


def test_every_packaged_config_composes_and_its_data_section_is_valid(tmp_path):
    from omegaconf import OmegaConf

    from jstip.conf import compose
    from jstip.model.config import model_config
    from jstip.train.data import data_config
    from jstip.conf import trainable_parts

    names = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))
    assert "tiny" in names and len(names) >= 3
    for name in names:
        cfg = compose(name, [f"exp_dir={tmp_path}", "data.train_cuts=x.jsonl.gz"])
        # `required:` is the one way a packaged config says "must be given": no ??? anywhere
        assert not OmegaConf.missing_keys(cfg), name
        assert "???" not in (CONF_DIR / f"{name}.yaml").read_text(), name
        data_config(cfg.data)  # every data key is a DataConfig field
        model_config(cfg.model)  # every model key is a ModelConfig field
        assert trainable_parts(cfg.train.trainable), name
        assert "stage" not in cfg.train, name
        assert cfg.trainer.max_steps > 0


def test_train_help_has_an_example():
    result = CliRunner().invoke(__import__("jstip.cli", fromlist=["main"]).main, ["train", "--help"])
    assert result.exit_code == 0
    assert "jstip train --config-name tiny" in result.output


def test_missing_required_value_is_named(tmp_path):
    result = run_cli(["--config-name", "tiny", f"exp_dir={tmp_path}"])
    assert result.exit_code == 2
    assert "data.train_cuts" in result.output


@pytest.mark.parametrize("name,keys", [
    ("smollm2_stage2", ["model.init_from"]),
    ("llm7b_stage1", ["model.llm.path", "model.tokenizer.path"]),
    ("llm7b_stage2_lora", ["model.llm.path", "model.tokenizer.path", "model.init_from"]),
])
def test_packaged_configs_name_what_their_user_must_give(tmp_path, name, keys):
    """The `required` list stops the run and names every key; `--check` does the same without training, and passes
    once they are given."""
    args = ["--config-name", name, f"exp_dir={tmp_path}", f"data.train_cuts={tmp_path}/cuts.jsonl.gz"]
    for extra in ([], ["--check"]):
        result = run_cli(args + extra)
        assert result.exit_code == 2, result.output
        for key in keys:
            assert key in result.output
    assert not (tmp_path / "checkpoints").exists()
    given = [f"{key}={tmp_path}" for key in keys]
    result = run_cli(args + ["--check"] + given)
    assert result.exit_code == 0 and "every required value is given" in result.output, result.output
    assert not (tmp_path / "checkpoints").exists()


def test_train_stage_is_refused_with_its_replacement(tmp_path):
    """train.stage was a freezing preset under a misleading name: it names train.trainable's presets now."""
    for stage in ("train.stage=1", "+train.stage=2"):  # an old override; a key added to the config
        result = run_cli(["--config-name", "tiny", f"exp_dir={tmp_path}", "data.train_cuts=x.jsonl.gz", stage])
        assert result.exit_code == 2 and "train.trainable" in result.output and "adapter_only" in result.output, \
            result.output
    result = run_cli(["--config-name", "tiny", f"exp_dir={tmp_path}", "data.train_cuts=x.jsonl.gz",
                      "train.trainable=adapter_plus"])
    assert result.exit_code == 2 and "adapter_only" in result.output, result.output


def _state(ckpt: Path) -> dict:
    return read_checkpoint(ckpt)["state_dict"]


def test_stage1_trains_the_adapter_only(tiny_overrides, tmp_path):
    """Encoder and LLM weights (and buffers: batch-norm statistics) are bit-identical after stage-1 training. The
    tiny config's encoder and LLM are random, not read from files, so its checkpoint keeps them (only pretrained parts
    are left out: tests/train/test_pretrained_path.py)."""
    from jstip.conf import compose
    from jstip.train.frozen import META_KEY
    from jstip.train.run import build_model_and_tokenizer, load_checkpoint

    args = tiny_overrides("stage1", **{"train.trainable": "adapter_only", "trainer.max_steps": 3, "checkpoint.every_n_steps": 100,
                                       "trainer.val_check_interval": 100})
    result = run_cli(["--config-name", "tiny", *args])
    assert result.exit_code == 0, result.output
    exp = tmp_path / "stage1"
    ckpt = read_checkpoint(exp / "checkpoints" / "last.ckpt")
    after = ckpt["state_dict"]
    assert META_KEY not in ckpt["jstip"]  # nothing left out
    cfg = compose("tiny", args)
    model, _, _ = build_model_and_tokenizer(cfg, exp)  # same seed, same saved tokenizer: the initial weights
    before = {f"model.{k}": v for k, v in model.state_dict().items()}
    assert set(before) == set(after)
    frozen = [k for k in before if k.startswith(("model.encoder.", "model.llm."))]
    assert any("running_mean" in k for k in frozen)  # batch norm statistics are saved and unchanged
    for k in frozen:
        assert torch.equal(before[k], after[k]), k
    changed = [k for k in after if k.startswith("model.adapter.") and not torch.equal(before[k], after[k])]
    assert len(changed) == 4  # both linear layers' weights and biases
    assert len(train_rows(exp)) == 3
    loaded, _, _ = load_checkpoint(exp / "checkpoints" / "last.ckpt")
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, after[f"model.{k}"]), k


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_overrides, tmp_path, monkeypatch):
    from jstip.model.speechlm import SpeechLM

    forward = SpeechLM.forward
    calls = {"n": 0}

    def poisoned(self, batch, **kw):
        out = forward(self, batch, **kw)
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th training batch: step 3
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(SpeechLM, "forward", poisoned)
    args = tiny_overrides("nan", **{"trainer.max_steps": 10, "checkpoint.every_n_steps": 2,
                                    "trainer.val_check_interval": 100, "data.dev_cuts": "null"})
    result = CliRunner().invoke(__import__("jstip.cli", fromlist=["main"]).main,
                                ["train", "--config-name", "tiny", *args])
    assert result.exit_code == 1
    assert "training loss is nan at step 3" in result.output
    ckpts = tmp_path / "nan" / "checkpoints"
    assert "step000002.ckpt" in result.output
    assert read_checkpoint(ckpts / "last.ckpt")["global_step"] == 2
    assert not (ckpts / "step000004.ckpt").exists()
    assert [r["step"] for r in train_rows(tmp_path / "nan")] == [1, 2, 3]


def test_nan_loss_before_the_first_checkpoint_names_the_cuts_and_how_to_leave_them_out(tiny_overrides, tmp_path,
                                                                                      monkeypatch):
    import re

    from jstip.model.speechlm import SpeechLM
    from jstip.rejects import read_rejected

    forward = SpeechLM.forward
    seen = {}

    def poisoned(self, batch, **kw):
        out = forward(self, batch, **kw)
        if not seen:  # the first training batch
            seen["cuts"] = sorted({c for c in batch.cut_ids if c})
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(SpeechLM, "forward", poisoned)
    args = tiny_overrides("nan0", **{"trainer.max_steps": 2, "checkpoint.every_n_steps": 1,
                                     "trainer.val_check_interval": 100, "data.dev_cuts": "null"})
    main = __import__("jstip.cli", fromlist=["main"]).main
    result = CliRunner().invoke(main, ["train", "--config-name", "tiny", *args])
    assert result.exit_code == 1
    assert "starts again from step 0" in result.output
    named = re.search(r"\+data\.exclude_ids=\[([^\]]*)\]", result.output).group(1).split(",")
    assert named == seen["cuts"] and named
    # the suggested override leaves those cuts out, each recorded with the reason
    monkeypatch.setattr(SpeechLM, "forward", forward)
    result = CliRunner().invoke(main, ["train", "--config-name", "tiny", *args, f"+data.exclude_ids=[{','.join(named)}]"])
    assert result.exit_code == 0, result.output
    excluded = {r["id"] for r in read_rejected(tmp_path / "nan0" / "rejected.jsonl")
                if r["reason"].endswith("excluded by data.exclude_ids")}
    assert excluded == set(named)
    trained = {i for b in batches(tmp_path / "nan0") for i in b["ids"]}
    assert not any(i.startswith(c + "_") for i in trained for c in named)


def test_stage2_lora_from_stage1_then_decode(tiny_overrides, tmp_path, mini_corpus):
    """Stage 2 starts from the stage-1 weights; with LoRA the LLM's own weights stay put while LoRA weights, encoder
    and adapter train; the checkpoint loads back for decoding (greedy and beam)."""
    from lhotse import CutSet

    from jstip.train.run import load_checkpoint

    quick = {"trainer.max_steps": 2, "checkpoint.every_n_steps": 100, "trainer.val_check_interval": 100,
             "data.dev_cuts": "null"}
    assert run_cli(["--config-name", "tiny", *tiny_overrides("s1", **{"train.trainable": "adapter_only", **quick})]).exit_code == 0
    s1 = tmp_path / "s1" / "checkpoints" / "last.ckpt"
    result = run_cli(["--config-name", "tiny", *tiny_overrides("s2", **{
        "train.trainable": "all", "train.lora.enabled": "true", "model.init_from": str(s1), **quick})])
    assert result.exit_code == 0, result.output
    before, after = _state(s1), _state(tmp_path / "s2" / "checkpoints" / "last.ckpt")
    lora = [k for k in after if "lora_" in k]
    assert lora and any(not torch.equal(after[k], torch.zeros_like(after[k])) for k in lora if "lora_B" in k)
    base = {k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in after.items()
            if k.startswith("model.llm.") and "lora_" not in k}
    assert set(base) == {k for k in before if k.startswith("model.llm.")}
    assert all(torch.equal(before[k], base[k]) for k in base)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("model.encoder.encoder.layers"))
    model, tok, cfg = load_checkpoint(tmp_path / "s2" / "checkpoints" / "last.ckpt")
    assert cfg["train"]["trainable"] == "all"
    cuts = list(CutSet.from_file(mini_corpus / "dev" / "cuts.jsonl.gz"))[:2]
    greedy = model.transcribe(cuts, tok, max_new_tokens=8)
    beam = model.transcribe(cuts, tok, max_new_tokens=8, num_beams=2)
    assert len(greedy) == len(beam) == 2 and all(isinstance(h, str) for h in greedy + beam)


def test_a_user_config_dir_can_build_on_packaged_configs(tmp_path):
    from jstip.conf import compose

    (tmp_path / "mine.yaml").write_text("defaults:\n  - tiny\n  - _self_\ntrain:\n  trainable: adapter_only\n")
    cfg = compose("mine", ["exp_dir=x", "data.train_cuts=y"], config_dir=str(tmp_path))
    assert cfg.train.trainable == "adapter_only" and cfg.model.llm.kind == "tiny"


def test_a_task_mix_override_replaces_the_configs_mix():
    """``data.weights={asr: 1}`` is ASR alone: Hydra would merge it into the config's interleaved and text shares."""
    from jstip.conf import compose

    base = ["exp_dir=/tmp/unused", "data.train_cuts=unused"]
    assert dict(compose("tiny", base + ["data.weights={asr: 1}"]).data.weights) == {"asr": 1}
    assert dict(compose("tiny", base + ["data.dev_weights={word_il: 1}"]).data.dev_weights) == {"word_il": 1}
    one = dict(compose("tiny", base + ["data.weights.text=0"]).data.weights)  # one share: the rest stay
    assert one == {"asr": 0.4, "word_il": 0.15, "segment_il": 0.15, "mixed_il": 0.1, "text": 0}
    shares = dict(compose("whisper_smollm2", base).data.weights)  # says ASR alone in its YAML: is ASR alone
    assert {k: v for k, v in shares.items() if v} == {"asr": 1.0}


def test_lr_schedule_warms_up_then_decays_linearly():
    from jstip.train.module import lr_lambda

    f = lr_lambda(warmup_steps=4, max_steps=14, min_ratio=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0 and f(9) == pytest.approx(0.55) and f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)


def test_gradient_accumulation_logs_one_row_per_optimiser_step_with_the_unscaled_loss(tiny_overrides, tmp_path):
    import math

    from jstip.model.tokenizer import load_tokenizer

    args = tiny_overrides("acc", **{"trainer.max_steps": 2, "trainer.accumulate_grad_batches": 2,
                                    "checkpoint.every_n_steps": 100, "trainer.val_check_interval": 100,
                                    "data.dev_cuts": "null"})
    assert run_cli(["--config-name", "tiny", *args]).exit_code == 0
    rows = train_rows(tmp_path / "acc")
    assert [r["step"] for r in rows] == [1, 2]
    assert [b["step"] for b in batches(tmp_path / "acc")] == [0, 0, 1, 1]
    # A random model's loss is about ln(vocabulary size); Lightning's own output is divided by the accumulation.
    vocab = len(load_tokenizer(tmp_path / "acc" / "tokenizer"))
    assert abs(rows[0]["loss"] - math.log(vocab)) < 0.15 * math.log(vocab)


def test_a_frozen_weight_that_the_source_checkpoint_saved_is_saved_again():
    """With model.init_from, only weights the source checkpoint also left out may be left out: a weight it saved was
    trained there and cannot be rebuilt from the pretrained files (names compared without LoRA's wrapping)."""
    from jstip.train.frozen import keys_to_leave_out, plain_key

    frozen = ["model.llm.base_model.model.model.layers.0.mlp.up_proj.base_layer.weight",
              "model.llm.base_model.model.model.embed_tokens.weight", "model.encoder.encoder.conv1.weight"]
    assert plain_key(frozen[0]) == "model.llm.model.layers.0.mlp.up_proj.weight"
    assert keys_to_leave_out(frozen, None) == frozen  # no source: every frozen pretrained weight
    trained_there = {"model.llm.model.layers.0.mlp.up_proj.weight", "model.adapter.proj.0.weight"}
    assert keys_to_leave_out(frozen, trained_there) == frozen[1:]


def test_a_pretrained_llm_gets_its_own_tokenizer_and_a_frozen_random_encoder_is_named(tmp_path, capsys):
    from omegaconf import OmegaConf

    from jstip.conf import compose
    from jstip.train.run import _use_the_llms_tokenizer, _warn_frozen_random_encoder

    cfg = compose("tiny", [f"exp_dir={tmp_path}", "data.train_cuts=x.jsonl.gz", "model.llm.kind=hf",
                           "model.llm.path=/models/llm"])
    assert cfg.model.tokenizer.kind == "train"
    _use_the_llms_tokenizer(cfg)
    assert OmegaConf.to_container(cfg.model.tokenizer) == {"kind": "hf", "path": "/models/llm"}
    explicit = compose("tiny", [f"exp_dir={tmp_path}", "data.train_cuts=x.jsonl.gz", "model.llm.kind=hf",
                                "model.llm.path=/models/llm", "model.tokenizer.kind=hf",
                                "model.tokenizer.path=/models/tok"])
    _use_the_llms_tokenizer(explicit)
    assert explicit.model.tokenizer.path == "/models/tok"  # a tokenizer given on purpose is kept

    frozen = compose("tiny", [f"exp_dir={tmp_path}", "data.train_cuts=x.jsonl.gz", "train.trainable=adapter_only"])
    _warn_frozen_random_encoder(frozen)
    assert "the encoder is frozen" in capsys.readouterr().err
    trained = compose("tiny", [f"exp_dir={tmp_path}", "data.train_cuts=x.jsonl.gz", "train.trainable=all"])
    _warn_frozen_random_encoder(trained)
    assert "the encoder is frozen" not in capsys.readouterr().err


def test_spoken_tasks_are_opt_in():
    from jstip.evaluate.commands import _spoken_selection

    assert _spoken_selection(None, (), None) is False
    assert _spoken_selection(True, (), None) is True
    assert _spoken_selection(None, (), 5) is True
    assert _spoken_selection(None, ("modality_gap",), None) == ["modality_gap"]
    assert _spoken_selection(False, ("modality_gap",), 5) is False


def test_the_data_placeholders_follow_model_frame_shift():
    """One setting for the seconds per speech position: data.render.frame_shift follows model.frame_shift (a 160 ms
    model fed 80 ms placeholders would get zeros at half of its speech positions)."""
    from omegaconf import OmegaConf

    from jstip.train.run import sync_frame_shift

    cfg = OmegaConf.create({"model": {"frame_shift": 0.16}, "data": {}})
    sync_frame_shift(cfg)
    assert cfg.data.render.frame_shift == 0.16
    clash = OmegaConf.create({"model": {"frame_shift": 0.16}, "data": {"render": {"frame_shift": 0.08}}})
    with pytest.raises(ValueError, match="set model.frame_shift only"):
        sync_frame_shift(clash)


def test_a_cut_the_model_pads_past_the_encoders_limit_is_too_long():
    """At 160 ms a cut of exactly 30 s is padded to 188 frames = 30.08 s, over Whisper's 30 s: rejected before it
    reaches the encoder (at 80 ms it is 375 frames, exactly 30 s)."""
    from types import SimpleNamespace

    from jstip.cuts import too_long_for_encoder

    whisper = SimpleNamespace(max_input_seconds=30.0)
    cut = SimpleNamespace(duration=30.0)
    assert too_long_for_encoder(cut, whisper) is None
    assert too_long_for_encoder(cut, whisper, frame_shift=0.08) is None  # 30.0 s exactly
    assert "longer than the 30 s" in too_long_for_encoder(cut, whisper, frame_shift=0.16)


def test_a_checkpoint_and_a_config_that_disagree_on_the_first_pass_is_a_clear_error():
    from torch import nn

    from jstip.train.run import load_model_weights

    class M(nn.Module):
        def __init__(self, first_pass: bool):
            super().__init__()
            self.adapter = nn.Linear(2, 2)
            self.first_pass = nn.Linear(2, 2) if first_pass else None

    with_fp, without = M(True), M(False)
    ckpt = {"state_dict": {f"model.{k}": v for k, v in without.state_dict().items()}}
    with pytest.raises(ValueError, match="trained without model.first_pass and this config has one"):
        load_model_weights(with_fp, ckpt, "stage1.ckpt")
    ckpt = {"state_dict": {f"model.{k}": v for k, v in with_fp.state_dict().items()}}
    with pytest.raises(ValueError, match="trained with model.first_pass and this config has none"):
        load_model_weights(without, ckpt, "stage1.ckpt")
    load_model_weights(M(True), ckpt, "stage1.ckpt")  # the same on both sides: loads


def test_multirun_sweeps_seeds_into_separate_folders(tiny_overrides, tmp_path):
    """`python -m jstip.train -m seed=0,1 ...`: one run per seed, each in EXP_DIR/<job> with its composed config;
    a sweep without -m is refused with the fix."""
    from omegaconf import OmegaConf

    from jstip.train.__main__ import main

    quick = {"trainer.max_steps": 2, "checkpoint.every_n_steps": 100, "trainer.val_check_interval": 100,
             "data.dev_cuts": "null"}
    args = ["--config-name", "tiny", *tiny_overrides("sweep", **quick)]
    assert main([*args, "seed=0,1"]) == 2 and not (tmp_path / "sweep").exists()
    assert main(["-m", *args, "seed=0,1"]) == 0
    jobs = OmegaConf.load(tmp_path / "sweep" / "multirun.yaml").jobs
    assert [j.overrides[-1] for j in jobs] == ["seed=0", "seed=1"]
    for k in (0, 1):
        run = tmp_path / "sweep" / str(k)
        assert OmegaConf.load(run / "config.yaml").seed == k
        assert (run / "checkpoints" / "last.ckpt").exists() and train_rows(run)
    a, b = (_state(tmp_path / "sweep" / str(k) / "checkpoints" / "last.ckpt") for k in (0, 1))
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)  # two seeds, two models
