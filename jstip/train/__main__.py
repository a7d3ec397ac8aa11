"""Hydra entry point: ``python -m jstip.train --config-name tiny key=value ...`` (same as ``jstip train``).

Options before the overrides: ``--config-name NAME`` (a packaged config in ``jstip/conf``, default ``tiny``),
``--config-dir DIR`` (take the config from DIR; its defaults list may name packaged configs), ``--cfg`` (print the
composed config and exit), ``--check`` (check the required values and exit), ``-m``/``--multirun`` (a sweep:
``-m seed=0,1,2`` runs one job per value, in ``EXP_DIR/0``, ``EXP_DIR/1``... with ``EXP_DIR/multirun.yaml`` listing
them; Hydra's override grammar: ``a,b``, ``range(...)``, ``choice(...)``).

Every run writes its composed config to ``EXP_DIR/config.yaml``.
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


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs of a multirun, as Hydra's basic sweeper makes them: the cartesian product of the sweep overrides
    (``seed=0,1``, ``train.optim.lr=choice(1e-3,3e-4)``, ``seed=range(3)``), the other overrides in every job."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    lists = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if o.is_sweep_override():
            lists.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            lists.append([o.input_line])
    return [list(job) for job in itertools.product(*lists)]


def _run_one(name: str, overrides: list[str], config_dir: str | None, print_only: bool, check_only: bool) -> int:
    from omegaconf import OmegaConf

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
    from jstip.manifests import ManifestError
    from jstip.train.checkpoint_file import CheckpointFileError
    from jstip.train.module import NonFiniteLossError
    from jstip.train.run import train

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


def _end_wandb_run() -> None:
    """Close the W&B run a job opened, so that the next job of a sweep logs to its own run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _quoted(path: Path) -> str:
    """A path as a Hydra override value: quoted, so that ``,``, ``=``, brackets and quotes stay part of it."""
    return "'" + str(path).replace("'", "\\'") + "'"


def _multirun(name: str, overrides: list[str], config_dir: str | None, print_only: bool, check_only: bool) -> int:
    """Every job of the sweep, one after another, each in ``EXP_DIR/<job number>`` (Hydra's sweep layout);
    ``EXP_DIR/multirun.yaml`` lists the jobs and their overrides. Returns the worst exit status."""
    from omegaconf import OmegaConf

    try:
        jobs = sweep_jobs(overrides)
        root = OmegaConf.select(compose(name, jobs[0], config_dir), "exp_dir")
    except Exception as e:  # noqa: BLE001 -- a bad override or config: one line
        print(f"error: {_compose_error(e, name, config_dir)}", file=sys.stderr)
        return 2
    if not root:
        print(f"error: config {name!r}: a sweep needs exp_dir=...: its jobs run in EXP_DIR/0, EXP_DIR/1, ...",
              file=sys.stderr)
        return 2
    root = Path(root)
    if not (print_only or check_only):
        root.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create({"config_name": name, "config_dir": config_dir,
                                         "jobs": [{"num": k, "exp_dir": str(root / str(k)), "overrides": job}
                                                  for k, job in enumerate(jobs)]}), root / "multirun.yaml")
    worst = 0
    for k, job in enumerate(jobs):
        print(f"[multirun] job {k}: {' '.join(job)}", file=sys.stderr)
        worst = max(worst, _run_one(name, [*job, f"exp_dir={_quoted(root / str(k))}"], config_dir, print_only,
                                    check_only))
        _end_wandb_run()
    return worst


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name, config_dir, print_only, check_only, multirun, overrides = "tiny", None, False, False, False, []
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
        elif a in ("-m", "--multirun"):
            multirun = True
        elif a in ("-h", "--help"):
            print(__doc__.strip() + "\n\nExample: python -m jstip.train --config-name tiny "
                  "data.train_cuts=mini/train/cuts.jsonl.gz exp_dir=exp/tiny trainer.max_steps=200")
            return 0
        else:
            overrides.append(a)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if multirun:
        return _multirun(name, overrides, config_dir, print_only, check_only)
    try:
        sweeps = len(sweep_jobs(overrides)) > 1
    except Exception:  # noqa: BLE001 -- reported by compose, with the fix
        sweeps = False
    if sweeps:
        print("error: a sweep override (key=a,b or range/choice) needs -m (--multirun): each job then runs in "
              "EXP_DIR/<job number>", file=sys.stderr)
        return 2
    return _run_one(name, overrides, config_dir, print_only, check_only)


if __name__ == "__main__":
    sys.exit(main())
