"""benchmarks/gpu_check.sh, the script for a lent GPU machine, run as a dry run on the CPU: every check at toy sizes,
so that a broken step is found here and not in the GPU time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_runs_every_check_and_prints_one_summary(mini_corpus, tmp_path):
    out = tmp_path / "check"
    out.mkdir()
    shutil.copytree(mini_corpus, out / "mini")  # the script's corpus, made once per test session
    env = dict(os.environ, DRY_RUN="1", OUT=str(out), PYTHON=sys.executable)
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                         env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "DRY RUN on CPU" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    checks = summary["checks"]
    t = checks["throughput"]
    assert t["status"] == "ok" and t["asr_tokens_per_s"] > 0 and t["interleaved_tokens_per_s"] > 0
    assert set(t["forward_gflops_by_part"]) >= {"encoder", "adapter", "llm"} and t["mfu"] is None
    p = checks["packing"]
    assert p["status"] == "ok" and p["documents"] >= 2 and p["max_abs_diff"] < 1e-4
    assert checks["ddp"]["status"] == "ok" and checks["ddp"]["steps"] == 2 and checks["ddp"]["checkpoint"]
    assert checks["fsdp"]["status"] == "not run"
    assert t["salm"]["salm"] > 0 and set(t["padding"]) == {"llm_asr", "encoder_asr", "llm_interleaved",
                                                            "encoder_interleaved"}
    for line in ("throughput", "packing", "ddp", "fsdp", "salm"):
        assert any(x.startswith(line) for x in run.stdout.splitlines()), line
