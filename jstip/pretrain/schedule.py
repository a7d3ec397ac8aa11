"""Training under a wall-clock budget: a step/time cosine schedule and a ``metrics.jsonl`` writer."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import lightning as L


class BudgetSchedule(L.Callback):
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr`` over whichever budget runs out first.

    Progress is ``max(step / max_steps, elapsed / max_seconds)``, so a run limited by minutes anneals fully by its
    deadline (a schedule by steps alone would stop a CPU run half-way through its decay). Training stops when the
    progress reaches 1. Elapsed time counts from the first training batch (model building and data setup excluded).

    Args:
        lr: peak learning rate.
        warmup_steps: optimiser steps of linear warm-up.
        max_steps: step budget (None: no limit by steps).
        max_seconds: wall-clock budget (None: no limit by time).
        min_lr_ratio: final learning rate as a fraction of ``lr``.
    """

    def __init__(self, lr: float, warmup_steps: int = 0, max_steps: int | None = None,
                 max_seconds: float | None = None, min_lr_ratio: float = 0.05) -> None:
        if max_steps is None and max_seconds is None:
            raise ValueError("give a budget: max_steps or max_seconds (--max-steps / --max-minutes)")
        self.lr, self.warmup_steps, self.min_lr_ratio = lr, warmup_steps, min_lr_ratio
        self.max_steps, self.max_seconds = max_steps, max_seconds
        self.t0: float | None = None
        self.cpu0: float = 0.0

    def elapsed(self) -> float:
        """Seconds since the first training batch."""
        return 0.0 if self.t0 is None else time.perf_counter() - self.t0

    def cpu_seconds(self) -> float:
        """CPU seconds this process spent since the first training batch (all threads)."""
        return time.process_time() - self.cpu0

    def progress(self, step: int) -> float:
        parts = [0.0]
        if self.max_steps:
            parts.append(step / self.max_steps)
        if self.max_seconds:
            parts.append(self.elapsed() / self.max_seconds)
        return min(1.0, max(parts))

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        p = self.progress(step)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.t0 is None:
            self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        lr = self.lr_at(trainer.global_step)
        for opt in trainer.optimizers:
            for group in opt.param_groups:
                group["lr"] = lr

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.progress(trainer.global_step) >= 1.0:
            trainer.should_stop = True


class StepLog(L.Callback):
    """``out_dir/metrics.jsonl``: one line every ``every`` optimiser steps with ``step``, ``loss`` (mean since the last
    line), ``lr``, ``elapsed`` (wall-clock seconds since the first batch), ``cpu_s`` (this process's CPU seconds) and
    ``items`` (utterances or sentences seen so far). The file is started afresh by each run."""

    def __init__(self, out_dir: str | Path, schedule: BudgetSchedule, every: int = 5, progress_bar=None) -> None:
        self.path = Path(out_dir) / "metrics.jsonl"
        self.schedule, self.every, self.bar = schedule, every, progress_bar
        self.losses: list[float] = []
        self.items = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def write(self, row: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))
        self.items += int(batch[1].shape[0]) if isinstance(batch, (tuple, list)) else 0
        step = trainer.global_step
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{self.losses[-1]:.3f}", min=f"{self.schedule.elapsed() / 60:.1f}")
        if step % self.every == 0 or trainer.should_stop:
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            self.write({"step": step, "loss": sum(self.losses) / len(self.losses), "lr": lr,
                        "elapsed": round(self.schedule.elapsed(), 2), "cpu_s": round(self.schedule.cpu_seconds(), 2),
                        "items": self.items})
            self.losses = []


def start_fresh(out_dir: Path, names=("metrics.jsonl", "rejected.jsonl", "dev_wer.json", "perplexity.json")) -> None:
    """Remove the logs of an earlier (possibly killed) run in ``out_dir``: pretraining does not resume, it starts
    over, so that a re-run writes the same files as an uninterrupted run instead of appending to stale ones."""
    for name in names:
        (Path(out_dir) / name).unlink(missing_ok=True)
