"""jstip as a wheel: built from the source tree, installed into a fresh virtualenv, used outside the repository.

The default test gives the fresh virtualenv jstip from the wheel alone and its dependencies from the test's own
environment through a path file: it checks what a wheel can lose (the package data: templates, term lists,
evaluation items, configs; any path into the checkout) in seconds. The slow test installs the wheel with all its
dependencies into an empty virtualenv with constraints.txt, as a user would (minutes, and the package index):
`pytest -m slow tests/test_wheel.py`.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _build_wheel(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist)], check=True, capture_output=True, cwd=tmp_path)
    [wheel] = dist.glob("jstip-*.whl")
    return wheel


def _purelib(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["WANDB_MODE"] = "offline"
    return env


def _use_outside_the_repo(venv: Path, work: Path, env: dict) -> None:
    """`jstip prepare mini --num-utterances 40`, `jstip score` and the shipped evaluation items, from ``work``."""
    python = venv / "bin" / "python"
    work.mkdir()

    def run(*args):
        r = subprocess.run([str(venv / "bin" / "jstip"), *map(str, args)], capture_output=True, text=True, cwd=work,
                           env=env)
        assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-2000:]
        return r

    where = subprocess.run([str(python), "-c", "import jstip; print(jstip.__file__)"], capture_output=True, text=True,
                           cwd=work, env=env, check=True).stdout.strip()
    assert where.startswith(str(_purelib(python))) and not where.startswith(str(REPO))
    run("prepare", "mini", "--num-utterances", 40, "--out", "mini", "-j", 2)
    terms = json.loads((work / "mini" / "terms.json").read_text())
    assert terms["terms"] and (work / "mini" / "test" / "cuts.jsonl.gz").is_file()
    refs = work / "ref.jsonl"
    refs.write_text(json.dumps({"id": "a", "text": "Give 5 mg of metformin.",
                                "entities": [{"text": "metformin", "category": "drug", "start": 13, "end": 22}]})
                    + "\n")
    hyps = work / "hyp.jsonl"
    hyps.write_text(json.dumps({"id": "a", "hyp": "give 5 mg of metformin"}) + "\n")
    run("score", "--ref", refs, "--hyp", hyps, "--out", "scored")
    metrics = json.loads((work / "scored" / "metrics.json").read_text())
    assert metrics["wer"] == 0.0 and metrics["eer"] == 0.0
    # the shipped evaluation items are in the wheel
    items = subprocess.run([str(python), "-c", "from jstip.evaluate.modality_gap import load_mcq; print(len(load_mcq()))"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout.strip()
    assert items == "40"


def test_wheel_installs_and_runs_prepare_mini_and_score_outside_the_repo(tmp_path):
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # the dependencies: this environment's site-packages, after the fresh one (whose only package is the wheel)
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (_purelib(venv / "bin" / "python") / "_deps_from_test_env.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    env = _clean_env()
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, env=env)
    _use_outside_the_repo(venv, tmp_path / "elsewhere", env)


@pytest.mark.slow
def test_wheel_with_its_dependencies_into_an_empty_virtualenv(tmp_path):
    """What a user does: `pip install -c constraints.txt dist/jstip-*.whl` into a new virtualenv (the package
    index for the dependencies; torch pinned to the CPU wheel by the constraints)."""
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = _clean_env()
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"),
                        str(wheel)], capture_output=True, text=True, env=env, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    _use_outside_the_repo(venv, tmp_path / "elsewhere", env)
