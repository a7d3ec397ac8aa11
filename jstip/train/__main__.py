"""Hydra entry point: ``python -m jstip.train --config-name tiny key=value ...`` (same as ``jstip train``).

Options before the overrides: ``--config-name NAME`` (a packaged config in ``jstip/conf``, default ``tiny``),
``--config-dir DIR`` (take the config from DIR; its defaults list may name packaged configs), ``--cfg`` (print the composed config and exit), ``--check`` (check the required values and exit).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from jstip.conf import compose


def _compose_error(err: Exception, name: str, config_dir: str | None) -> str:
    """One line for a config that does not compose: the packaged configs for an unknown name, the nearest keys for an
    override of a key that does not exist."""
    import difflib
    import re

    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf import OmegaConf

    if isinstance(err, MissingConfigException):
        here = Path(config_dir) if config_dir else Path(__file__).resolve().parents[1] / "conf"
        known = sorted(p.stem for p in here.glob("*.yaml"))
        return f"no config {name!r} in {here}: the configs there are {', '.join(known)} (--config-name NAME)"
    text = str(err)
    m = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if isinstance(err, ConfigCompositionException) and m:
        key = m.group(1)
        try:
            base = compose(name, [], config_dir)
            keys = [k for k in _flat_keys(OmegaConf.to_container(base))]
        except Exception:  # noqa: BLE001
            keys = []
        if key == "train.stage":
            return ("train.stage was replaced by train.trainable: adapter_only (the old stage 1: encoder and LLM "
                    "frozen) or all (stage 2), or a list of parts like 'train.trainable=[adapter,llm]'")
        near = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
        hint = f"the nearest keys are {', '.join(near)}" if near else "see the config with --cfg"
        return (f"config {name!r} has no key {key!r}: {hint}; to add a new key on purpose, write +{key}=...")
    return text.strip().splitlines()[0]


def _flat_keys(node, prefix: str = ""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _flat_keys(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1]


def main(argv: list[str] | None = None) -> int:
    from omegaconf import OmegaConf

    args = list(sys.argv[1:] if argv is None else argv)
    name, config_dir, print_only, check_only, overrides = "tiny", None, False, False, []
    while args:
        a = args.pop(0)
        if a in ("--config-name", "-cn"):
            name = args.pop(0)
        elif a.startswith("--config-name="):
            name = a.split("=", 1)[1]
        elif a in ("--config-dir", "-cd"):
            config_dir = args.pop(0)
        elif a == "--cfg":
            print_only = True
        elif a == "--check":
            check_only = True
        elif a in ("-h", "--help"):
            print(__doc__.strip() + "\n\nExample: python -m jstip.train --config-name tiny "
                  "data.train_cuts=mini/train/cuts.jsonl.gz exp_dir=exp/tiny trainer.max_steps=200")
            return 0
        else:
            overrides.append(a)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = compose(name, overrides, config_dir)
    except Exception as e:  # noqa: BLE001 -- Hydra's errors become one line with the fix
        print(f"error: {_compose_error(e, name, config_dir)}", file=sys.stderr)
        return 2
    if print_only:
        print(OmegaConf.to_yaml(cfg))
        return 0
    from jstip.conf import check_required

    try:
        check_required(cfg)
    except ValueError as e:
        print(f"error: config {name!r}: {e}", file=sys.stderr)
        return 2
    if check_only:
        print(f"config {name!r}: every required value is given")
        return 0
    from jstip.train.module import NonFiniteLossError
    from jstip.train.run import train
    from jstip.manifests import ManifestError
    from jstip.train.checkpoint_file import CheckpointFileError

    try:
        exp_dir = train(cfg)
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ManifestError, CheckpointFileError, FileNotFoundError) as e:
        from jstip.errors import show_traceback

        show_traceback(e)
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done: {exp_dir}/metrics.jsonl, {exp_dir}/checkpoints/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
