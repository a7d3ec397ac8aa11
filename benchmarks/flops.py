"""Model FLOPs of training steps, counted as executed (torch's ``FlopCounterMode``), and the utilisation against a
GPU's dense peak: used by ``train_throughput.py --flops`` and ``gpu_check.py``."""

from __future__ import annotations

import torch


PEAK_TFLOPS = {"H200": {"bf16": 989.0, "fp32": 67.0}, "H100": {"bf16": 989.0, "fp32": 67.0},
               "A100": {"bf16": 312.0, "fp32": 19.5}, "L40S": {"bf16": 362.0, "fp32": 91.6},
               "A10": {"bf16": 125.0, "fp32": 31.2}}
"""Dense peak TFLOP/s by GPU family and dtype (vendor data sheets; H100/H200: SXM, without sparsity)."""


def peak_tflops(device, dtype: str) -> tuple[float | None, str]:
    """The device's dense peak at ``dtype`` and what it is, from :data:`PEAK_TFLOPS` (None on a CPU or an unknown
    GPU)."""
    if device.type != "cuda":
        return None, "no peak for a CPU"
    name = torch.cuda.get_device_name(device)
    for family, peaks in PEAK_TFLOPS.items():
        if family in name:
            return peaks[dtype], f"{name}: {family} {dtype} dense peak {peaks[dtype]:g} TFLOP/s (data sheet)"
    return None, f"{name}: not in the table; give --peak-tflops"


def count_flops(step, model, batches, seconds: float, device, dtype: str, peak: float | None) -> dict:
    """FLOPs of one pass of training steps over ``batches`` (forward + backward + optimiser, as executed: matmuls and
    attention, counted by torch's FlopCounterMode), the forward FLOPs of each part of the model (encoder, adapter,
    LLM: backward FLOPs are not attributed to modules reliably), and the model FLOPs utilisation of the measured
    ``seconds`` against the device's peak."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        for b in batches:
            step(b)
    total = sum(counter.get_flop_counts().get("Global", {}).values())
    forward = FlopCounterMode(display=False)
    with forward, torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
        for b in batches:
            model(b)
    parts = {}
    for name, counts in forward.get_flop_counts().items():
        tail = name.split(".")[-1]
        if name.count(".") == 1 and tail in ("encoder", "adapter", "llm", "first_pass"):
            parts[tail] = sum(counts.values())
    achieved = total / seconds / 1e12
    how = f"--peak-tflops {peak:g}" if peak else None
    if peak is None:
        peak, how = peak_tflops(device, dtype)
    return {"train_total": total, "forward_by_part": parts, "achieved_tflops": achieved, "peak_tflops": peak,
            "peak_source": how, "mfu": achieved / peak if peak else None}
