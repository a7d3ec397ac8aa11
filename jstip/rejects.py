"""The rejected-items contract: every stage that drops an item writes ``{"id", "stage", "reason"}`` to
``rejected.jsonl`` beside its output, so that items in = items out + items rejected."""

from __future__ import annotations

import json
from pathlib import Path


class RejectLog:
    """Appends rejected items to ``rejected.jsonl`` (one JSON object per line) and counts them.

    Args:
        path: the file to append to; its folder is created.
        stage: the stage name written with every record (``synthesize``, ``align``, ...).
    """

    def __init__(self, path: str | Path, stage: str) -> None:
        self.path = Path(path)
        self.stage = stage
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def reject(self, item_id: str, reason: str, **extra) -> None:
        """Record one rejected item with a human-readable reason (what is wrong and, where possible, the fix)."""
        record = {"id": item_id, "stage": self.stage, "reason": reason, **extra}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1


def read_rejected(path: str | Path) -> list[dict]:
    """All records of a ``rejected.jsonl`` (empty list if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def rejected_ids(path: str | Path, stage: str | None = None) -> set[str]:
    """Ids already rejected (optionally by one stage): lets a restarted job skip them."""
    return {r["id"] for r in read_rejected(path) if stage is None or r.get("stage") == stage}
