"""Where jstip's shipped files live (``jstip/resources/`` inside the package, so that an installed wheel has them),
and the one way a small output file is written atomically (:func:`write_atomic`).

- ``resources/templates/`` and ``resources/terms/``: the mini corpus's sentence templates and real term lists.
- ``resources/eval/``: the items of the spoken tasks (multiple choice, instructions, spoken QA).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """The path of a shipped file or folder, e.g. ``resource_path("eval", "mcq.jsonl")``."""
    return Path(str(files("jstip").joinpath("resources", *parts)))


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it (a killed writer leaves the old file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["resource_path", "write_atomic"]
