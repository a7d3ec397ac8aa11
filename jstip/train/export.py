"""``jstip export``: a ``jstip train`` checkpoint written as the export folder of :mod:`jstip.model.export`."""

from __future__ import annotations

from pathlib import Path


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Load ``checkpoint`` and write its export to ``out_dir`` (replaced whole, atomically)."""
    from jstip.model.export import write_export
    from jstip.train.checkpoint_file import read_checkpoint
    from jstip.train.run import load_checkpoint

    model, tokenizer, config = load_checkpoint(checkpoint)
    step = read_checkpoint(checkpoint, mmap=True).get("global_step")
    return write_export(model, tokenizer, config, out_dir, checkpoint=checkpoint, step=step)
