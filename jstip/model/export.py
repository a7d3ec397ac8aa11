"""A trained jstip model as a folder that leaves jstip: no pickle anywhere.

``write_export`` (``jstip export``: :func:`jstip.train.export.export_checkpoint`) writes::

    DIR/config.json          {"format": "jstip-speechlm", "version": 1, "model": ..., "run_config": ..., "step": ...}
    DIR/speech.safetensors   the encoder's and the adapter's weights ("encoder.*", "adapter.*")
    DIR/llm/                 the LLM as a save_pretrained folder (LoRA merged into its weights) with its tokenizer
    DIR/first_pass/          a model with ``model.first_pass``: its adapter-ctc files (``jstip.model.first_pass``)

``DIR/llm`` loads with plain ``transformers.AutoModelForCausalLM.from_pretrained`` and is what ``jstip merge --speech``
reads; :func:`load_exported` (``SpeechLM.from_pretrained``) rebuilds the whole model from ``config.json``: the encoder
and adapter from their configs, then their weights from ``speech.safetensors``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

FORMAT = "jstip-speechlm"
VERSION = 1


def is_export(path: str | Path) -> bool:
    """True for a folder written by :func:`write_export`."""
    cfg = Path(path) / "config.json"
    if not Path(path).is_dir() or not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("format") == FORMAT
    except (ValueError, UnicodeDecodeError):
        return False


def write_export(model, tokenizer, config: dict, out_dir: str | Path, checkpoint: str | Path | None = None,
                 step: int | None = None) -> Path:
    """Write the export of a trained ``SpeechLM`` (with its tokenizer and run ``config``, as
    ``jstip.train.run.load_checkpoint`` returns them) to ``out_dir`` (replaced whole, atomically); ``checkpoint`` and
    ``step`` are recorded in config.json."""
    from safetensors.torch import save_file

    llm = model.llm
    if hasattr(llm, "merge_and_unload"):  # LoRA: fold the adapters into the weights
        llm = llm.merge_and_unload()
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _forget_gguf_origin(llm)
    llm.save_pretrained(str(tmp / "llm"), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp / "llm"))
    state = {f"encoder.{k}": v.detach().contiguous().cpu() for k, v in model.encoder.state_dict().items()}
    state.update({f"adapter.{k}": v.detach().contiguous().cpu() for k, v in model.adapter.state_dict().items()})
    save_file(state, str(tmp / "speech.safetensors"))
    model_cfg = json.loads(json.dumps(config["model"]))
    if model.first_pass is not None:  # its three files, so the export does not depend on the training folder
        fp = tmp / "first_pass"
        fp.mkdir()
        save_file({k: v.contiguous() for k, v in model.first_pass.adapter.state_dict().items()},
                  str(fp / "adapter.safetensors"))
        save_file({k: v.contiguous() for k, v in model.first_pass.head.state_dict().items()},
                  str(fp / "ctc_head.safetensors"))
        # The embedding rows its head scores against, as trained (the exported LLM's may have moved).
        save_file({k: v.contiguous() for k, v in model.first_pass.state_dict().items()},
                  str(fp / "first_pass.safetensors"))
        shutil.copyfile(Path(model.first_pass.path) / "adapter_ctc.json", fp / "adapter_ctc.json")
        model_cfg["first_pass"] = "first_pass"
    model_cfg["init_from"] = None
    model_cfg.setdefault("adapter", {})["init_from"] = None
    model_cfg.setdefault("encoder", {})["cache_dir"] = None
    attn = (model_cfg.get("llm") or {}).get("attn_implementation")
    model_cfg["llm"] = {"kind": "hf", "path": "llm", **({"attn_implementation": attn} if attn else {})}
    model_cfg["tokenizer"] = {"kind": "hf", "path": "llm"}
    run_config = dict(config, model=model_cfg)
    (tmp / "config.json").write_text(json.dumps({"format": FORMAT, "version": VERSION, "model": model_cfg,
                                                 "run_config": run_config,
                                                 "checkpoint": None if checkpoint is None else str(Path(checkpoint)),
                                                 "step": step}, indent=1), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _forget_gguf_origin(llm) -> None:
    """An LLM read from a GGUF file holds plain float weights (transformers dequantises them on load) but keeps a
    GGUF quantizer marker, which makes ``save_pretrained`` refuse it; the export is an ordinary float model."""
    quantizer = getattr(llm, "hf_quantizer", None)
    method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
    if quantizer is None or str(getattr(method, "value", method)) != "gguf":
        return
    if any(p.dtype not in (torch.float32, torch.float16, torch.bfloat16) for p in llm.parameters()):
        raise ValueError("the LLM read from GGUF still holds quantised tensors: export needs float weights")
    llm.hf_quantizer = None
    llm.is_quantized = False
    if hasattr(llm.config, "quantization_config"):
        del llm.config.quantization_config
    if hasattr(llm, "quantization_method"):
        llm.quantization_method = None


def load_exported(path: str | Path):
    """``(model, tokenizer, run config)`` of an exported folder, the model in eval mode on the CPU.

    Raises:
        ValueError: the folder is not a jstip export (named), or its weights do not fit its config.
    """
    from omegaconf import OmegaConf
    from safetensors.torch import load_file

    from jstip.model.build import build_speechlm
    from jstip.model.tokenizer import load_tokenizer

    path = Path(path)
    if not is_export(path):
        raise ValueError(f"{path}: not a jstip export (a folder with config.json of format {FORMAT!r}, written by "
                         "`jstip export`)")
    meta = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if int(meta.get("version", 0)) > VERSION:
        raise ValueError(f"{path}: export format version {meta['version']} is newer than this jstip reads ({VERSION})")
    model_cfg = json.loads(json.dumps(meta["model"]))
    model_cfg["llm"]["path"] = str(path / model_cfg["llm"]["path"])
    model_cfg["tokenizer"]["path"] = str(path / model_cfg["tokenizer"]["path"])
    if model_cfg.get("first_pass"):
        model_cfg["first_pass"] = str(path / model_cfg["first_pass"])
    tokenizer = load_tokenizer(path / "llm")
    model = build_speechlm(OmegaConf.create(model_cfg), tokenizer)
    state = load_file(str(path / "speech.safetensors"))
    if model.first_pass is not None and (path / "first_pass" / "first_pass.safetensors").is_file():
        model.first_pass.load_state_dict(load_file(str(path / "first_pass" / "first_pass.safetensors")))
    for name in ("encoder", "adapter"):
        part = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        missing, unexpected = getattr(model, name).load_state_dict(part, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path / 'speech.safetensors'}: the {name} weights do not fit config.json (missing "
                             f"{missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), tokenizer, meta["run_config"]


__all__ = ["FORMAT", "write_export", "is_export", "load_exported"]
