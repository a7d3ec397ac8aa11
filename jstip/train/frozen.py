"""Checkpoints without the frozen pretrained weights.

A speech-LLM run on pretrained parts trains a few million weights (adapter, LoRA) on top of a frozen encoder and LLM
of 150M: saving those frozen weights in every checkpoint writes 600 MB for 15 MB of news. A jstip checkpoint therefore
leaves out every frozen parameter of the encoder and the LLM and records their names and one fingerprint of their
values. Loading rebuilds the model from the checkpoint's config (which reads the same pretrained files) and checks the
fingerprint before filling the frozen weights back in: a checkpoint can never silently run on different pretrained
weights than it was trained on. The adapter and every trained weight are always saved.
"""

from __future__ import annotations

import torch

META_KEY = "frozen_pretrained"


def pretrained_parts(model_cfg) -> tuple[str, ...]:
    """The parts of a speech-LLM whose weights are read from files by its config (``encoder`` of kind whisper or
    nemo, ``llm`` of kind hf or gguf), and so can be rebuilt; randomly initialised parts are always saved."""
    from jstip.model.config import model_config

    cfg = model_config(model_cfg)
    parts = []
    if cfg.encoder.resolved_kind() in ("whisper", "nemo"):
        parts.append("encoder")
    if cfg.llm.kind in ("hf", "gguf"):
        parts.append("llm")
    return tuple(parts)


def frozen_pretrained_keys(module: torch.nn.Module, parts=("encoder", "llm"), prefix: str = "model.") -> list[str]:
    """State-dict keys (with ``prefix``) of the frozen parameters of ``module.<part>`` for ``parts`` (tied weights
    under each of their names)."""
    keys = []
    for part in parts:
        sub = getattr(module, part, None)
        if sub is None:
            continue
        for name, p in sub.named_parameters(remove_duplicate=False):
            if not p.requires_grad:
                keys.append(f"{prefix}{part}.{name}")
    return sorted(keys)


def plain_key(key: str) -> str:
    """A state-dict key without peft's LoRA wrapping (``base_model.model.``, ``.base_layer``), so that a weight has one
    name whether LoRA is applied or not."""
    return key.replace("base_model.model.", "").replace(".base_layer", "")


def keys_to_leave_out(frozen: list[str], inherited: set[str] | None) -> list[str]:
    """The frozen keys a checkpoint may leave out: with ``inherited`` (the keys of the ``model.init_from`` checkpoint,
    None without one), only those the source left out too; a weight the source saved was trained (or deliberately
    kept) and cannot be rebuilt from the pretrained files."""
    if inherited is None:
        return list(frozen)
    saved = {plain_key(k) for k in inherited}
    return [k for k in frozen if plain_key(k) not in saved]


def fingerprint(state: dict, keys: list[str]) -> str:
    """One hash over the names, shapes and values of ``state[k]`` for ``keys``."""
    from jstip.model.feature_cache import tensors_fingerprint

    return tensors_fingerprint({k: state[k] for k in keys})


def strip_frozen(state_dict: dict, keys: list[str], fp: str) -> tuple[dict, dict]:
    """``(state_dict without keys)``, and the record to store beside it: ``{"keys", "fingerprint"}``."""
    left_out = set(keys)
    kept = {k: v for k, v in state_dict.items() if k not in left_out}
    return kept, {"keys": list(keys), "fingerprint": fp}


def restore_frozen(state_dict: dict, record: dict | None, current: dict, source: str = "checkpoint") -> dict:
    """``state_dict`` with the frozen weights of ``record`` filled in from ``current`` (the rebuilt model's state).

    Raises:
        ValueError: the rebuilt model's frozen weights differ from the ones the checkpoint was trained with, or a
            recorded key is missing from the rebuilt model (the message says what to check).
    """
    if not record:
        return state_dict
    keys = list(record["keys"])
    missing = [k for k in keys if k not in current]
    if missing:
        raise ValueError(f"{source}: the rebuilt model has no frozen weight {missing[0]} (and {len(missing) - 1} more): "
                         "its config does not build the model the checkpoint was trained with")
    got = fingerprint(current, keys)
    if got != record["fingerprint"]:
        raise ValueError(f"{source}: stores only its trained weights, and the frozen pretrained weights rebuilt from "
                         f"its config (model.encoder / model.llm paths) differ from the ones it was trained on "
                         f"(fingerprint {got} != {record['fingerprint']}). Point the config at the same pretrained "
                         "files (same package versions) the run used.")
    out = dict(state_dict)
    for k in keys:
        out[k] = current[k]
    return out
