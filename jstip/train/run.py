"""``train(cfg)``: one training run from a resolved Hydra config; ``load_checkpoint`` for decoding."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import torch

from jstip.train.checkpoint_file import read_checkpoint

log = logging.getLogger(__name__)


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX), where bf16 autocast is about twice as fast."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """``auto``: bf16 mixed precision on a bf16 GPU, or on a CPU run where the CPU has native bf16; else fp32."""
    if precision != "auto":
        return precision
    on_gpu = torch.cuda.is_available() and accelerator not in ("cpu",)
    if on_gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if cpu_supports_bf16() else "32-true"


def autocast(device: str = "cpu", precision: str = "auto"):
    """The autocast context of inference and small trainings: ``bf16`` (bfloat16 autocast), ``fp32`` (none) or
    ``auto`` (bf16 where :func:`resolve_precision` would train in bf16 on this device)."""
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    if precision == "auto":
        precision = "bf16" if resolve_precision("auto", device_type).startswith("bf16") else "fp32"
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=precision == "bf16")


def find_resume_checkpoint(ckpt_dir: Path) -> Path | None:
    """``last.ckpt``, else the newest ``step*.ckpt`` (a ``.tmp`` left by a kill is ignored)."""
    last = ckpt_dir / "last.ckpt"
    if last.is_file():
        return last
    found = sorted(ckpt_dir.glob("step*.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _loggers(cfg, exp_dir: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(str(exp_dir), name="csv", version="")]
    if cfg.logger.get("wandb", False):
        os.environ.setdefault("WANDB_MODE", "offline")
        try:
            from lightning.pytorch.loggers import WandbLogger

            loggers.append(WandbLogger(project=cfg.logger.get("project", "jstip"), save_dir=str(exp_dir),
                                       name=cfg.logger.get("name") or exp_dir.name,
                                       offline=os.environ["WANDB_MODE"] == "offline"))
        except ImportError:
            log.warning("wandb is not installed: logging to metrics.jsonl and CSV only (logger.wandb=false hides this)")
    return loggers


def build_model_and_tokenizer(cfg, exp_dir: Path, train_cuts=None):
    """The tokenizer (saved to ``exp_dir/tokenizer``) and the ``SpeechLM`` of a run config, with ``model.init_from``
    weights loaded (stage 2 from a stage-1 checkpoint) and LoRA applied when asked."""
    from omegaconf import OmegaConf

    from jstip.data.render import RenderConfig, add_special_tokens
    from jstip.model.build import build_llm_tokenizer, build_speechlm
    from jstip.train.data import training_texts
    from jstip.train.module import apply_lora

    tok_dir = exp_dir / "tokenizer"
    init_from = cfg.model.get("init_from")
    if init_from and not (tok_dir / "tokenizer.json").exists():
        src = Path(init_from).resolve().parent.parent / "tokenizer"
        if src.is_dir():
            shutil.copytree(src, tok_dir, dirs_exist_ok=True)
    texts = None
    if not (tok_dir / "tokenizer.json").exists() and cfg.model.tokenizer.get("kind", "train") == "train":
        texts = training_texts(train_cuts, cfg.data.get("text_sources"))
    tokenizer = build_llm_tokenizer(cfg.model.tokenizer, texts, tok_dir)
    render = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RenderConfig), cfg.data.get("render", {}) or {}))
    add_special_tokens(tokenizer, render)
    tokenizer.save_pretrained(str(tok_dir))
    torch.manual_seed(int(cfg.seed))
    model = build_speechlm(cfg.model, tokenizer)
    lora = bool(cfg.train.get("lora", {}).get("enabled", False))
    if init_from:
        ckpt = read_checkpoint(init_from)
        src_lora = bool((ckpt.get("jstip") or {}).get("lora"))
        if src_lora:
            # A LoRA checkpoint (stage 1) continues as LoRA: the adapters are applied before its weights load.
            if not lora:
                raise ValueError(f"model.init_from={init_from} was trained with LoRA: set train.lora.enabled=true "
                                 "(with the same train.lora settings) to continue from it")
            apply_lora(model, cfg.train.lora)
        load_model_weights(model, ckpt, init_from)
        log.info("initialised from %s", init_from)
        if lora and not src_lora:
            apply_lora(model, cfg.train.lora)
    elif lora:
        apply_lora(model, cfg.train.lora)
    return model, tokenizer, lora


def inherited_state_keys(init_from) -> set[str] | None:
    """The state-dict keys of a ``model.init_from`` checkpoint (None without one): what it saved, not what it left
    out (``jstip.train.frozen``)."""
    if not init_from:
        return None
    ckpt = read_checkpoint(init_from, mmap=True)
    return set(ckpt["state_dict"])


def load_model_weights(model, ckpt: dict, source) -> None:
    """Load a jstip checkpoint's model weights into ``model`` (built from the same config): the frozen pretrained
    weights the checkpoint left out are checked against the rebuilt ones (``jstip.train.frozen``)."""
    from jstip.train.frozen import META_KEY, restore_frozen

    current = {f"model.{k}": v for k, v in model.state_dict().items()}
    has = any(k.startswith("model.first_pass.") for k in ckpt["state_dict"])
    wants = any(k.startswith("model.first_pass.") for k in current)
    if has != wants:
        raise ValueError(f"{source} was trained {'with' if has else 'without'} model.first_pass and this config has "
                         f"{'none' if has else 'one'}: use the same model.first_pass as the run that wrote it")
    state = restore_frozen(ckpt["state_dict"], (ckpt.get("jstip") or {}).get(META_KEY), current, str(source))
    state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    model.load_state_dict(state, strict=True)


def _use_the_llms_tokenizer(cfg) -> None:
    """A pretrained LLM (``model.llm.kind`` hf or gguf) with the default tokenizer (``train``, no path) gets its own
    tokenizer: a newly trained one would index the wrong embeddings."""
    from omegaconf import open_dict

    llm = cfg.model.get("llm") or {}
    tok = cfg.model.get("tokenizer") or {}
    if llm.get("kind") in ("hf", "gguf") and tok.get("kind", "train") == "train" and not tok.get("path"):
        with open_dict(cfg):
            cfg.model.tokenizer = {"kind": llm.get("kind"), "path": llm.get("path")}
        log.info("model.tokenizer: the LLM's own (%s %s)", llm.get("kind"), llm.get("path") or "packaged")


def _warn_frozen_random_encoder(cfg) -> None:
    """Say so before training when the encoder stays frozen but is not pretrained (random features)."""
    from jstip.model.config import model_config
    from jstip.conf import trainable_parts

    enc = model_config(cfg.model).encoder
    trainable = trainable_parts(cfg.train.get("trainable"))
    if "encoder" not in trainable and enc.resolved_kind() == "conformer":
        msg = ("the encoder is frozen (train.trainable has no 'encoder') but randomly initialised (model.encoder has "
               "no nemo_path or Whisper path): the adapter learns from random features. Give a pretrained encoder "
               "(model.encoder.kind=whisper, or nemo_path=...), or train it (train.trainable=[encoder,adapter,...])")
        log.warning(msg)
        print(f"warning: {msg}", file=sys.stderr)


def sync_frame_shift(cfg) -> None:
    """``model.frame_shift`` is the one setting of the seconds per speech position: the data's placeholders
    (``data.render.frame_shift``) follow it, so that every speech position gets an adapter frame.

    Raises:
        ValueError: ``data.render.frame_shift`` was set to something else (set ``model.frame_shift`` instead).
    """
    from omegaconf import OmegaConf

    want = float(cfg.model.get("frame_shift") or 0.08)
    have = (cfg.data.get("render") or {}).get("frame_shift")
    if have is not None and abs(float(have) - want) > 1e-9:
        raise ValueError(f"data.render.frame_shift={have} disagrees with model.frame_shift={want}: the adapter gives "
                         "one frame per model.frame_shift; set model.frame_shift only")
    OmegaConf.update(cfg, "data.render.frame_shift", want, force_add=True)


def train(cfg) -> Path:
    """Train (or resume) the run of ``cfg``; returns ``exp_dir``. See ``jstip/conf/tiny.yaml`` for the keys."""
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from omegaconf import OmegaConf

    from jstip.train.callbacks import AtomicCheckpointIO, MetricsJsonl
    from jstip.train.data import SpeechDataModule
    from jstip.train.module import SpeechLMModule

    from jstip.conf import check_required

    check_required(cfg)
    sync_frame_shift(cfg)
    _use_the_llms_tokenizer(cfg)
    _warn_frozen_random_encoder(cfg)
    exp_dir = Path(cfg.exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = exp_dir / "checkpoints"
    OmegaConf.save(cfg, exp_dir / "config.yaml")
    torch.set_num_threads(int(cfg.get("num_threads") or torch.get_num_threads()))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    # Every cut is accounted for: what a run cannot use is written to exp_dir/rejected.jsonl with its reason (before
    # training: stage "train"; audio found bad while loading a batch: stage "data").
    from jstip.data.sources import TrainCuts
    from jstip.rejects import RejectLog
    from jstip.train.data import data_config

    rejects = RejectLog(exp_dir / "rejected.jsonl", "train")
    max_duration = data_config(cfg.data).max_duration
    exclude = frozenset(str(i) for i in (cfg.data.get("exclude_ids") or []))
    # Read lazily (manifests, Shar directories): one pass over the metadata screens every cut now.
    train_cuts = TrainCuts.open(cfg.data.train_cuts, rejects, max_duration, exclude)
    if rejects.count:
        log.warning("%d training cut(s) rejected: reasons in %s", rejects.count, rejects.path)
    model, tokenizer, lora = build_model_and_tokenizer(cfg, exp_dir, train_cuts)
    from jstip.cuts import drop_too_long, too_long_for_encoder

    train_cuts.screen(lambda cut: too_long_for_encoder(cut, model.encoder, model.frame_shift))  # Whisper's 30 s
    module = SpeechLMModule(model, trainable=cfg.train.trainable, optim=OmegaConf.to_container(cfg.train.optim),
                            lora=lora,
                            config=OmegaConf.to_container(cfg, resolve=True),
                            save_frozen=bool(cfg.checkpoint.get("save_frozen", False)),
                            inherited_keys=inherited_state_keys(cfg.model.get("init_from")))
    if model.first_pass is not None and "encoder" in module.trainable:
        raise ValueError("model.first_pass reads the encoder's frames with a frozen adapter trained on the frozen "
                         "encoder: train.trainable cannot include encoder with a first pass")
    data = SpeechDataModule(cfg.data, tokenizer, seed=int(cfg.seed), train_cuts=train_cuts, rejects=rejects)
    for part in ("dev_cuts", "tts_cuts"):  # what the encoder cannot take at once never reaches a batch
        if getattr(data, part) is not None:
            setattr(data, part, drop_too_long(getattr(data, part), model.encoder, rejects, part.split("_")[0],
                                              frame_shift=model.frame_shift))
    if model.first_pass is not None:
        from jstip.model.first_pass import hypotheses_of_cuts

        # The first-pass transcripts of the training (and TTS) cuts, decoded once with the first pass's masks on
        # (see jstip.model.first_pass); dev's in eval mode, as test will be.
        hypotheses = hypotheses_of_cuts(model, train_cuts, noisy=True, desc="first pass (train)")
        if data.tts_cuts is not None:
            hypotheses.update(hypotheses_of_cuts(model, data.tts_cuts, noisy=True, desc="first pass (tts)"))
        if data.dev_cuts is not None:
            hypotheses.update(hypotheses_of_cuts(model, data.dev_cuts, desc="first pass (dev)"))
        data.hypotheses = hypotheses

    tcfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    strategy = tcfg.pop("strategy", "auto")
    if isinstance(strategy, dict):
        from hydra.utils import instantiate

        strategy = instantiate(strategy)
    tcfg["precision"] = resolve_precision(str(tcfg.get("precision", "auto")), str(tcfg.get("accelerator", "auto")))
    checkpoint = ModelCheckpoint(dirpath=str(ckpt_dir), filename="step{step:06d}", auto_insert_metric_name=False,
                                 every_n_train_steps=int(cfg.checkpoint.every_n_steps), monitor="step", mode="max",
                                 save_top_k=int(cfg.checkpoint.keep), save_last="link")
    callbacks = [checkpoint, MetricsJsonl(exp_dir), LearningRateMonitor(logging_interval="step")]
    trainer = L.Trainer(default_root_dir=str(exp_dir), strategy=strategy, callbacks=callbacks,
                        logger=_loggers(cfg, exp_dir), plugins=[AtomicCheckpointIO()], use_distributed_sampler=False,
                        reload_dataloaders_every_n_epochs=1, **tcfg)

    ckpt_path = None
    resume = cfg.get("resume", "auto")
    if resume == "auto":
        ckpt_path = find_resume_checkpoint(ckpt_dir)
    elif resume not in (None, "none", False):
        ckpt_path = Path(resume)
    if ckpt_path is not None:
        log.info("resuming from %s", ckpt_path)
    trainer.fit(module, datamodule=data, ckpt_path=str(ckpt_path) if ckpt_path else None)
    trainer.save_checkpoint(str(ckpt_dir / "last.ckpt"))
    return exp_dir


def load_checkpoint(ckpt_path: str | Path):
    """A trained ``SpeechLM`` (eval mode, on the CPU) and its tokenizer from a checkpoint written by ``jstip train``,
    read without running code from the file (:func:`jstip.train.checkpoint_file.read_checkpoint`), or from a folder
    written by ``jstip export`` (:func:`jstip.model.export.load_exported`).

    Returns:
        (model, tokenizer, config dict)
    """
    from omegaconf import OmegaConf

    from jstip.model.build import build_speechlm
    from jstip.model.export import is_export, load_exported
    from jstip.model.tokenizer import load_tokenizer
    from jstip.train.module import apply_lora

    ckpt_path = Path(ckpt_path)
    if is_export(ckpt_path):  # a folder written by `jstip export`
        return load_exported(ckpt_path)
    ckpt = read_checkpoint(ckpt_path)
    meta = ckpt.get("jstip")
    if meta is None:
        raise ValueError(f"{ckpt_path}: not a jstip training checkpoint (no 'jstip' entry)")
    cfg = OmegaConf.create(meta["config"])
    render_fs = ((cfg.get("data") or {}).get("render") or {}).get("frame_shift") or 0.08
    model_fs = cfg.model.get("frame_shift") or 0.08
    if abs(float(render_fs) - float(model_fs)) > 1e-9:
        log.warning("%s was trained on %g s placeholders with a model of one frame per %g s (before "
                    "data.render.frame_shift followed model.frame_shift): half of its speech positions were "
                    "padding; its figures are not comparable", ckpt_path, float(render_fs), float(model_fs))
    tokenizer = load_tokenizer(ckpt_path.resolve().parent.parent / "tokenizer")
    model_cfg = OmegaConf.merge(cfg.model, {"init_from": None, "adapter": {"init_from": None}})
    model = build_speechlm(model_cfg, tokenizer)
    if meta.get("lora"):
        apply_lora(model, cfg.train.lora)
    load_model_weights(model, ckpt, ckpt_path)
    return model.eval(), tokenizer, meta["config"]
