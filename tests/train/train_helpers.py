"""Readers of a run's plain logs."""

from __future__ import annotations

import json
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def train_rows(exp_dir: Path) -> list[dict]:
    return [r for r in read_jsonl(Path(exp_dir) / "metrics.jsonl") if "loss" in r]


def batches(exp_dir: Path, rank: int = 0) -> list[dict]:
    return [r for r in read_jsonl(Path(exp_dir) / f"batches.rank{rank}.jsonl") if "ids" in r]
