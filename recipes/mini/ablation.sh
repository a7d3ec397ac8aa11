#!/usr/bin/env bash
# Ablations of the mini recipe: each row re-runs the training stages of a finished mini run (same corpus, same test
# set, same baseline) with one thing changed, then one report compares every row with the mini run's final model.
#
#   bash recipes/mini/ablation.sh --out OUT                      # every row, in the order below
#   bash recipes/mini/ablation.sh --out OUT frozen_llm frame80   # some rows
#
# OUT is a finished `jstip demo` / recipes/mini output folder (PRIORS=pretrained, stages 0-7 done). Rows:
#   no_first_pass the LLM reads the audio alone (FIRST_PASS=0): no CTC transcript in the ASR prompt
#   frozen_llm    no LoRA: stages 1-2 train the adapter only; SmolLM2-135M stays as it ships
#   adapter256    the adapter's MLP 256 wide instead of 1024 (and no context layers: a plain frame-stacking MLP)
#   frame80       one LLM speech position per 80 ms instead of 160 ms (4 Whisper frames stacked, not 8)
#   whisper_base  Whisper base (encoder 19.8M) instead of tiny.en (7.6M) as the encoder (BASE_BASELINE=1 also scores
#                 Whisper base zero-shot: about twice the tiny.en baseline's time)
#   scratch       the from-scratch priors (PRIORS=scratch): a CTC encoder and a 0.1M tiny LLM trained on the corpus
# Each row runs in OUT/ablation/ROW (the mini recipe's layout; data/ and, where the encoder is the same, the feature
# cache and the baseline are shared with OUT) and logs to OUT/ablation/ROW.log; the comparison is
# OUT/ablation/report.{html,md}. Rows are scored on the final model alone (no spoken tasks); the recipe's other
# environment variables (NJ, SEED, ...) apply to every row.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
base=
rows=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "[ablation] error: --out needs a folder" >&2; exit 2; }; base=$2; shift 2 ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) rows+=("$1"); shift ;;
  esac
done
all=(no_first_pass frozen_llm adapter256 frame80 whisper_base scratch)
[ ${#rows[@]} -gt 0 ] || rows=("${all[@]}")
[ -n "$base" ] || { echo "[ablation] error: --out OUT (a finished mini run) is required" >&2; exit 2; }
base=$(cd "$base" && pwd)
for f in "$base/.done/7-evaluate" "$base/exp/eval/metrics.json"; do
  [ -e "$f" ] || { echo "[ablation] error: $base is not a finished mini run ($f missing): run \`jstip demo --out $base\` first" >&2; exit 1; }
done
[ -f "$base/exp/adapter_ctc/adapter.safetensors" ] || { echo "[ablation] error: $base was not run on the pretrained parts (no exp/adapter_ctc): the rows compare against a PRIORS=pretrained run" >&2; exit 1; }
JSTIP=${JSTIP:-jstip}
log() { echo "[$(date +%H:%M:%S)] [ablation] $*"; }

setup_row() {  # setup_row ROW SHARE_BASELINE SHARE_ENCODER SHARE_PRIORS: the row's folder, sharing what it can
  local dir=$base/ablation/$1
  mkdir -p "$dir/.done" "$dir/exp"
  ln -sfn "$base/data" "$dir/data"
  for s in 0-prepare 1-check-alignments 2-interleave-stats; do touch "$dir/.done/$s"; done
  if [ "$2" = 1 ] && [ -d "$base/exp/eval_whisper" ]; then
    ln -sfn "$base/exp/eval_whisper" "$dir/exp/eval_whisper"; touch "$dir/.done/3-baseline"
  fi
  if [ "$3" = 1 ] && [ -d "$base/exp/features" ]; then ln -sfn "$base/exp/features" "$dir/exp/features"; fi
  if [ "$4" = 1 ]; then ln -sfn "$base/exp/adapter_ctc" "$dir/exp/adapter_ctc"; touch "$dir/.done/4-priors"; fi
}

names=() runs=()
for row in "${rows[@]}"; do
  env_row=()
  case "$row" in
    no_first_pass) setup_row "$row" 1 1 1; env_row=(FIRST_PASS=0) ;;
    frozen_llm) setup_row "$row" 1 1 1; env_row=(LLM_TRAINING=frozen) ;;
    adapter256) setup_row "$row" 1 1 0; env_row=("MODEL_OVERRIDES=model.adapter.hidden=256 model.adapter.layers=0") ;;
    frame80) setup_row "$row" 1 1 0; env_row=("MODEL_OVERRIDES=model.frame_shift=0.08") ;;
    whisper_base) setup_row "$row" 0 0 0; env_row=(WHISPER=base BASELINE="${BASE_BASELINE:-0}") ;;
    scratch) setup_row "$row" 1 0 0; env_row=(PRIORS=scratch) ;;
    *) echo "[ablation] error: unknown row $row (rows: ${all[*]})" >&2; exit 2 ;;
  esac
  dir=$base/ablation/$row
  if [ -f "$dir/.done/7-evaluate" ]; then
    log "$row: done already"
  else
    log "$row: ${env_row[*]} -> $dir (log: $dir.log)"
    start=$SECONDS
    # Rows are compared on the final model's test figures: no stage-1 evaluation, no spoken tasks.
    env EVAL_STAGE1=0 SPOKEN_ITEMS=0 "${env_row[@]}" JSTIP="$JSTIP" bash "$here/run.sh" --out "$dir" --stop-stage 7 \
      > "$dir.log" 2>&1 \
      || { echo "[ablation] error: row $row failed, see $dir.log" >&2; exit 1; }
    log "$row: finished in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
  fi
  names+=(--name "$row"); runs+=("$dir/exp/eval")
  if [ "$row" = whisper_base ] && [ -f "$dir/exp/eval_whisper/metrics.json" ]; then
    names+=(--name "whisper_base zero-shot"); runs+=("$dir/exp/eval_whisper")
  fi
done

$JSTIP report "$base/exp/eval" "${runs[@]}" --name "base run" "${names[@]}" \
  --out "$base/ablation/report.html" --title "jstip mini recipe: ablations"
log "report: $base/ablation/report.html"
