#!/usr/bin/env bash
# The checks for a lent GPU machine in one go (benchmarks/gpu_check.py): throughput and MFU of SmolLM2-135M +
# Whisper-base at 2k-token rows in bf16, packed-vs-alone logits on the GPU attention path, one-GPU DDP and FSDP steps.
# Prints one summary and writes $OUT/summary.json; stops after $TIMEOUT seconds (480: the 8 minutes it must fit in).
#
#   bash benchmarks/gpu_check.sh                   # on the GPU machine, after the README's install (tools/install.sh)
#   DRY_RUN=1 bash benchmarks/gpu_check.sh         # on a CPU: every step at toy sizes (the default tests run this)
#
# Environment: OUT (/tmp/jstip-gpu-check), DRY_RUN (0), TIMEOUT (480), PYTHON (.venv/bin/python; the README's
# install makes it when it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/jstip-gpu-check}
PYTHON=${PYTHON:-.venv/bin/python}
if [ ! -x "$PYTHON" ]; then
  echo "[gpu_check] $PYTHON not found: running the README's install (tools/install.sh)"
  bash tools/install.sh
fi
args=(--out "$OUT")
if [ "${DRY_RUN:-0}" = 1 ]; then args+=(--dry-run); fi
export WANDB_MODE=offline PYTHONUNBUFFERED=1
exec timeout "${TIMEOUT:-480}" "$PYTHON" benchmarks/gpu_check.py "${args[@]}"
