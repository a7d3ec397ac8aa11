"""JSON-lines files: the one reader (bad lines named as ``FILE:LINE`` with the fix) and the one writer.

Every jsonl file jstip reads that a user may have written or edited (references, hypotheses, evaluation items, a
run's ``hyps.jsonl``) goes through :func:`read_jsonl`; lhotse manifests go through :mod:`jstip.manifests`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path


def read_jsonl(path: str | Path, required: tuple[str, ...] = (), skipped: list[dict] | None = None,
               check: Callable[[dict], None] | None = None) -> list[dict]:
    """Read a jsonl file whose lines are objects holding ``required`` keys.

    Args:
        required: keys every line must have.
        skipped: when given, a bad line (not UTF-8, not JSON, not an object, a required key missing, refused by
            ``check``) is appended here as ``{"id": "FILE:LINE", "reason": ...}`` and skipped; otherwise it raises.
        check: called with each row; raises ValueError with the problem (and its fix) for a row it refuses.

    Raises:
        ValueError: naming the file, the line and the fix, on a bad line (without ``skipped``).
    """
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            problem = None
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                line, problem = "", (f"not UTF-8 (byte {raw[err.start]:#04x} at position {err.start}); save the "
                                     "file as UTF-8")
            if problem is None and not line.strip():
                continue
            if problem is None:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    problem = f"not valid JSON ({err}); each line must be one JSON object"
            if problem is None and not isinstance(row, dict):
                problem = f"a line must be a JSON object with keys {list(required)}"
            if problem is None:
                missing = [key for key in required if key not in row]
                if missing:
                    problem = f"missing key(s) {missing}; each line needs {list(required)}"
            if problem is None and check is not None:
                try:
                    check(row)
                except ValueError as err:
                    problem = str(err)
            if problem is not None:
                if skipped is None:
                    raise ValueError(f"{path}:{lineno}: {problem}")
                skipped.append({"id": f"{path}:{lineno}", "reason": problem})
                continue
            rows.append(row)
    return rows


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write records as JSON lines (UTF-8, not ASCII-escaped); returns how many were written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n
