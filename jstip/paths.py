"""Where jstip's shipped files live: ``jstip/resources/`` inside the package, so that an installed wheel has them.

- ``resources/templates/`` and ``resources/terms/``: the mini corpus's sentence templates and real term lists.
- ``resources/eval/``: the items of the spoken tasks (multiple choice, instructions, spoken QA).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """The path of a shipped file or folder, e.g. ``resource_path("eval", "mcq.jsonl")``."""
    return Path(str(files("jstip").joinpath("resources", *parts)))


__all__ = ["resource_path"]
