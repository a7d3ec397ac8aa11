"""Plain-file logs and safe checkpoint writes."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to ``NAME.tmp`` and renames it: a run killed while saving never leaves a torn file. Reads
    one (resume) with :func:`jstip.train.checkpoint_file.read_checkpoint`: tensors and plain data only, no code."""

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        from jstip.train.checkpoint_file import read_checkpoint

        return read_checkpoint(path)

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class MetricsJsonl(L.Callback):
    """``exp_dir/metrics.jsonl``: one line per optimiser step (``step``, ``epoch``, ``loss``, ``lr``, ``tokens``,
    ``positions``, ``tokens_per_s``, ``time``) and per validation (``step``, ``dev_loss``); plus, per rank,
    ``exp_dir/batches.rank{R}.jsonl``: the example ids of every batch trained (``step``, ``epoch``, ``batch``, ``ids``),
    which is what resume and DDP checks read."""

    def __init__(self, exp_dir: str | Path) -> None:
        self.exp_dir = Path(exp_dir)
        self._reset()
        self._t0 = None

    def _reset(self) -> None:
        self.losses, self.tokens, self.positions = [], 0, 0

    def _write(self, name: str, row: dict) -> None:
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        with (self.exp_dir / name).open("a") as f:
            f.write(json.dumps(row) + "\n")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()
        self._step_before = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stats = getattr(pl_module, "_last_stats", None)
        pl_module._last_stats = None
        if stats is not None:
            # Not ``outputs["loss"]``: Lightning divides that by accumulate_grad_batches.
            self.losses.append(stats["loss"])
            self.tokens += stats["tokens"]
            self.positions += stats["positions"]
            self._write(f"batches.rank{trainer.global_rank}.jsonl",
                        {"step": self._step_before, "epoch": trainer.current_epoch, "batch": pl_module.batches_done,
                         "ids": stats["ids"]})
        if trainer.global_step == self._step_before:  # accumulating: no optimiser step yet
            return
        now = time.perf_counter()
        elapsed = now - self._t0
        if trainer.is_global_zero and self.losses:
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
            self._write("metrics.jsonl", {
                "step": trainer.global_step, "epoch": trainer.current_epoch,
                "loss": sum(self.losses) / len(self.losses), "lr": lr, "tokens": self.tokens,
                "positions": self.positions, "tokens_per_s": self.positions / elapsed if elapsed > 0 else None,
                "time": time.time()})
        self._reset()
        self._t0 = now

    def on_train_end(self, trainer, pl_module) -> None:
        # Under DDP every rank must hold the same weights: a fingerprint per rank makes that checkable. Parameters only:
        # batch-norm statistics are rank-local between DDP's buffer broadcasts (rank 0's win at every forward).
        digest = hashlib.sha256()
        for name, p in sorted(pl_module.model.named_parameters()):
            digest.update(name.encode())
            digest.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        self._write(f"batches.rank{trainer.global_rank}.jsonl",
                    {"step": trainer.global_step, "final_params_sha256": digest.hexdigest()})

    def on_validation_end(self, trainer, pl_module) -> None:
        dev = trainer.callback_metrics.get("dev/loss")
        if trainer.is_global_zero and dev is not None and not trainer.sanity_checking:
            self._write("metrics.jsonl", {"step": trainer.global_step, "dev_loss": float(dev), "time": time.time()})
