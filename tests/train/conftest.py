"""The mini corpus on disk (the session fixture ``mini_corpus`` of tests/conftest.py) and run configs over it."""

from __future__ import annotations

import pytest


@pytest.fixture()
def tiny_overrides(mini_corpus, tmp_path):
    """Hydra overrides of a fast tiny run on the mini corpus (no W&B, no progress bar)."""

    def make(exp_name: str = "exp", **extra):
        base = {
            "data.train_cuts": str(mini_corpus / "train" / "cuts.jsonl.gz"),
            "data.dev_cuts": str(mini_corpus / "dev" / "cuts.jsonl.gz"),
            "data.text_sources": f"[{mini_corpus / 'text' / 'domain.txt'}]",
            "exp_dir": str(tmp_path / exp_name),
            "logger.wandb": "false",
            "trainer.enable_progress_bar": "false",
            "num_threads": "1",
        }
        base.update({k: str(v) for k, v in extra.items()})
        return [f"{k}={v}" for k, v in base.items()]

    return make
