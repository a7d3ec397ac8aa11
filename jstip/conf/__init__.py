"""jstip's packaged Hydra configs (the YAML files of this folder), the one way to compose a run config, and the one
check of what a config must give. Light: no torch, so `jstip train --check` runs before anything heavy is imported."""

from __future__ import annotations


WHOLE_MAPPINGS = ("data.weights", "data.dev_weights")
"""Settings whose ``key={...}`` override replaces the mapping (a task mix), where Hydra would merge it into the
config's: ``data.weights={asr: 1}`` means ASR alone, not ASR added to the config's interleaved and text shares."""


def compose(config_name: str = "tiny", overrides: list[str] | None = None, config_dir: str | None = None):
    """The run config: a packaged (or ``config_dir``) YAML with Hydra ``key=value`` overrides applied (a
    :data:`WHOLE_MAPPINGS` key given a mapping is replaced, not merged; ``data.weights.text=0`` still sets one
    share)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    overrides = [o for ov in (overrides or []) for o in _replacing(ov)]
    GlobalHydra.instance().clear()
    if config_dir:
        from pathlib import Path

        # The user's folder is the primary search path; the packaged configs stay reachable from its defaults lists.
        overrides.append("hydra.searchpath=[pkg://jstip.conf]")
        init = initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None)
    else:
        init = initialize_config_module(config_module="jstip.conf", version_base=None)
    with init:
        return hydra_compose(config_name=config_name, overrides=overrides)


def _replacing(override: str) -> list[str]:
    key, _, value = override.partition("=")
    if key in WHOLE_MAPPINGS and value.lstrip().startswith("{"):
        return [f"{key}=null", override]  # null first: the mapping then replaces instead of merging
    return [override]


PARTS = ("encoder", "adapter", "llm")
TRAINABLE_PRESETS = {"adapter_only": ("adapter",), "all": PARTS}
"""Named values of ``train.trainable``: ``adapter_only`` (the paper's stage 1: encoder and LLM frozen) and ``all``
(its stage 2; the LLM through LoRA when ``train.lora.enabled``)."""


def trainable_parts(value) -> tuple[str, ...]:
    """The parts ``train.trainable`` names: a preset of :data:`TRAINABLE_PRESETS` or a list of :data:`PARTS`.

    Raises:
        ValueError: an unknown preset or part, or nothing to train.
    """
    if value is None:
        raise ValueError(f"train.trainable is not set: give {' or '.join(TRAINABLE_PRESETS)}, or a list of parts like "
                         "[adapter, llm]")
    if isinstance(value, str):
        if value not in TRAINABLE_PRESETS:
            raise ValueError(f"train.trainable={value!r} is not a preset: use {' or '.join(TRAINABLE_PRESETS)}, or a "
                             f"list of parts like [adapter, llm]")
        return TRAINABLE_PRESETS[value]
    parts = tuple(str(p) for p in (value or ()))
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ValueError(f"train.trainable={list(parts)}: name one or more of {', '.join(PARTS)} (or a preset: "
                         f"{', '.join(TRAINABLE_PRESETS)})")
    return parts


def check_required(cfg) -> None:
    """The one check of what a config must give, run before anything is built (``jstip train --check`` runs it alone).

    - every key listed in ``cfg.required`` is set (not null, not ``???``): packaged configs mark what their user must
      give there, with null as the value (a child config's ``???`` would not override its parent's value);
    - a ``???`` anywhere else (a user's own config) is a missing value too;
    - a Hugging Face LLM or tokenizer (``kind: hf``) needs its ``path``;
    - ``train.trainable`` names a preset or parts (:func:`trainable_parts`); the old
      ``train.stage`` is refused with its replacement.

    Raises:
        ValueError: naming every missing key, with the overrides to give.
    """
    from omegaconf import OmegaConf

    train_cfg = cfg.get("train") or {}
    if "stage" in train_cfg:
        raise ValueError("train.stage was replaced by train.trainable: adapter_only (the old stage 1: encoder and LLM "
                         "frozen) or all (stage 2), or a list of parts like [adapter, llm]")
    missing = []
    for key in list(cfg.get("required") or []) + sorted(OmegaConf.missing_keys(cfg)):
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True)
        except Exception:  # MissingMandatoryValue
            value = None
        if (value is None or value == "???") and key not in missing:
            missing.append(key)
    for part in ("llm", "tokenizer"):
        node = (cfg.get("model") or {}).get(part) or {}
        if node.get("kind") == "hf" and not node.get("path") and f"model.{part}.path" not in missing:
            missing.append(f"model.{part}.path")
    if missing:
        raise ValueError("the config needs " + ", ".join(missing) + ": give them on the command line, e.g. "
                         + " ".join(f"{k}=..." for k in missing))
    trainable_parts(train_cfg.get("trainable"))
