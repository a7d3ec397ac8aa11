#!/usr/bin/env bash
# The medical domain grid (METHOD.md, JSTIP): what domain text, interleaving and TTS pairs of that text do for the
# recognition of medical entities, measured on the mini corpus on two CPU cores.
#
#   bash recipes/medical/run.sh [--stage N] [--stop-stage N] [--out DIR]   (default OUT: recipes/medical/exp)
#   MINI_OUT=jstip-demo bash recipes/medical/run.sh --out exp/medical      # a finished mini recipe as the input
#   SEEDS="0 1" ARMS="asr_only text_il" ARM_STEPS=300 bash recipes/medical/run.sh --out exp/medical-small
#
# Every arm starts from the mini recipe's priors and stage-1 checkpoint and is one stage-2 run of ARM_STEPS steps
# with the same learning rate and batch size; only the data differ (recipes/medical/conf/arms/<arm>.yaml):
#   asr_only  real speech as ASR pairs (the baseline)    text  + domain text    text_il  + domain text + interleaving
#   tts       + TTS pairs of the domain text (train voices only)                tts_il   + TTS pairs + interleaving
#
# Stages (OUT/.done/<marker>; stages 2-3 one marker per arm and seed, so a killed run resumes where it stopped):
#   0 check MINI_OUT (build it with recipes/mini/run.sh --stop-stage 5 when it lacks stage 5)
#   1 domain text, and its TTS pairs spoken by train voices     3 evaluate every arm x seed on test
#   2 train every arm x seed                                     4 report: the grid table and per-seed reports
#                                                                  (always rebuilt from the evaluations)
#
# Environment: MINI_OUT (default OUT/mini), ARMS (default: all five), SEEDS ("0 1 2"), ARM_STEPS (100),
# DOMAIN_SENTENCES (first N lines of the domain text; empty = all), EVAL_UTTERANCES (empty = all of test),
# BOOTSTRAP (1000), NJ (2), JSTIP (jstip), WHISPER (the mini run's, tiny.en), ARM_OVERRIDES (extra Hydra overrides for every arm, e.g. train.optim.lr=1e-3),
# PARALLEL (runs trained/evaluated at once in stages 2-3, each on one thread, logs in OUT/exp/logs; default 1).
set -euo pipefail

recipe=medical
out=recipes/medical/exp
help_lines=2,23
source "$(dirname "${BASH_SOURCE[0]}")/../lib/stages.sh"

here=$(cd "$(dirname "$0")" && pwd)
JSTIP=${JSTIP:-jstip}
NJ=${NJ:-2}
ARMS=${ARMS:-asr_only text text_il tts tts_il}
SEEDS=${SEEDS:-0 1 2}
ARM_STEPS=${ARM_STEPS:-100}
DOMAIN_SENTENCES=${DOMAIN_SENTENCES:-}   # empty = the whole domain text of the mini corpus
EVAL_UTTERANCES=${EVAL_UTTERANCES:-}     # empty = the whole test set
BOOTSTRAP=${BOOTSTRAP:-1000}
ARM_OVERRIDES=${ARM_OVERRIDES:-}
WHISPER=${WHISPER:-tiny.en}              # the Whisper of the mini run (its WHISPER)
PARALLEL=${PARALLEL:-1}                  # runs at once in stages 2-3
baseline=asr_only

# selected N: stage N is within --stage/--stop-stage.
selected() { [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ]; }
# todo MARKER LABEL: true when the step MARKER has not finished yet (and says so when it has).
todo() {
  if [ -f "$out/.done/$1" ]; then log "$2: done already"; return 1; fi
  log "$2"
  return 0
}
done_step() { touch "$out/.done/$1"; }

mini_default=$out/mini
MINI_OUT=${MINI_OUT:-$mini_default}

# Bad settings fail before anything runs, naming the item and the fix.
for arm in $ARMS; do
  if [ ! -f "$here/conf/arms/$arm.yaml" ]; then
    known=$(cd "$here/conf/arms" && ls -- *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')
    die "unknown arm '$arm' in ARMS: there is no $here/conf/arms/$arm.yaml (arms: ${known% }); add the YAML or fix ARMS"
  fi
done
if [ "$stop_stage" -ge 4 ]; then
  case " $ARMS " in *" $baseline "*) ;; *) die "ARMS='$ARMS' lacks the baseline arm $baseline: the report compares every arm with it (or stop before it: --stop-stage 3)" ;; esac
fi
case "$PARALLEL" in ''|*[!0-9]*|0) die "PARALLEL='$PARALLEL' is not a positive integer" ;; esac
for s in $SEEDS; do
  case "$s" in ''|*[!0-9]*) die "SEEDS='$SEEDS': '$s' is not a non-negative integer (e.g. SEEDS=\"0 1 2\")" ;; esac
done
[ -n "${SEEDS// /}" ] || die "SEEDS is empty: give at least one seed (e.g. SEEDS=\"0 1 2\")"
if [ "$MINI_OUT" != "$mini_default" ] && [ ! -d "$MINI_OUT" ]; then
  die "MINI_OUT=$MINI_OUT is not a folder: point it at a recipes/mini output (bash recipes/mini/run.sh --out DIR --stop-stage 5), or leave MINI_OUT unset to build one in $mini_default"
fi
mkdir -p "$out/.done"
out=$(cd "$out" && pwd)
data=$out/data
exp=$out/exp
if [ "$MINI_OUT" = "$mini_default" ]; then MINI_OUT=$out/mini; fi
MINI_OUT=$(mkdir -p "$MINI_OUT" && cd "$MINI_OUT" && pwd)

# What the arms take from the mini recipe (PRIORS=pretrained): manifests, domain text, the adapter's warm start and the
# stage-1 checkpoint (the encoder feature cache is reused when it is there).
mini_needs=(data/aligned/train/cuts.jsonl.gz data/aligned/dev/cuts.jsonl.gz data/aligned/test/cuts.jsonl.gz
            data/text/domain.txt exp/adapter_ctc/adapter.safetensors exp/stage1/checkpoints/last.ckpt)
mini_ready() {
  compgen -G "$MINI_OUT/.done/5-*" >/dev/null || return 1
  local f
  for f in "${mini_needs[@]}"; do [ -e "$MINI_OUT/$f" ] || return 1; done
}

if selected 0; then
  if mini_ready; then
    log "stage 0: MINI_OUT=$MINI_OUT has stages 0-5"
  else
    log "stage 0: MINI_OUT=$MINI_OUT lacks stage 5: running recipes/mini/run.sh --stop-stage 5 there"
    bash "$here/../mini/run.sh" --out "$MINI_OUT" --stop-stage 5
    if ! mini_ready; then
      for f in "${mini_needs[@]}"; do [ -e "$MINI_OUT/$f" ] || die "$MINI_OUT/$f is missing after the mini recipe's stage 5"; done
      die "$MINI_OUT/.done/5-* is missing after the mini recipe's stage 5"
    fi
  fi
fi
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 1 ] && ! mini_ready; then
  die "MINI_OUT=$MINI_OUT lacks the mini recipe's stage 5 (run stage 0 of this recipe, or bash recipes/mini/run.sh --out $MINI_OUT --stop-stage 5)"
fi

if selected 1 && todo 1-domain-data "stage 1: domain text and its TTS pairs"; then
  # The domain text of the grid (arms text, text_il) and the same sentences spoken by train voices (tts, tts_il):
  # test and dev accents stay unheard, as in the mini corpus itself.
  mkdir -p "$data/text"
  if [ -n "$DOMAIN_SENTENCES" ]; then
    head -n "$DOMAIN_SENTENCES" "$MINI_OUT/data/text/domain.txt" > "$data/text/domain.txt.tmp"
  else
    cp "$MINI_OUT/data/text/domain.txt" "$data/text/domain.txt.tmp"
  fi
  mv "$data/text/domain.txt.tmp" "$data/text/domain.txt"
  $JSTIP synthesize --in "$data/text/domain.txt" --out "$data/tts_domain" --voices-of train -j "$NJ"
  $JSTIP align --aligner tts --in "$data/tts_domain/cuts.jsonl.gz" --out "$data/aligned/tts_domain/cuts.jsonl.gz" \
    -j "$NJ"
  done_step 1-domain-data
fi

overrides() {  # overrides ARM SEED: the Hydra overrides of one run
  local -a extra=()
  read -r -a extra <<< "$ARM_OVERRIDES"
  if [ "$PARALLEL" -gt 1 ]; then extra=(num_threads=1 "${extra[@]}"); fi
  printf '%s\n' medical.mini_out="$MINI_OUT" medical.out="$out" medical.whisper="$WHISPER" \
    exp_dir="$exp/train/$1/seed$2" seed="$2" \
    trainer.max_steps="$ARM_STEPS" "${extra[@]}"
}

train_run() {  # train_run ARM SEED
  local -a args
  mapfile -t args < <(overrides "$1" "$2")
  # A killed run resumes from its newest checkpoint (resume=auto) and reaches the same weights.
  $JSTIP train --config-dir "$here/conf" --config-name "arms/$1" "${args[@]}"
  done_step "2-train-$1-seed$2"
}

eval_run() {  # eval_run ARM SEED
  [ -f "$out/.done/2-train-$1-seed$2" ] || die "$1 seed $2 is not trained yet: run stage 2 first (--stage 2)"
  # EER per exposure bucket counts the terms in the real train speech (the run's data.train_cuts), the same for every
  # arm; the modality gap (MCQ with text vs speech input) is the one spoken task of the grid.
  local -a args=(--cuts "$MINI_OUT/data/aligned/test/cuts.jsonl.gz" --spoken-task modality_gap
                 --listen-utterances 0 --no-progress)
  if [ -n "$EVAL_UTTERANCES" ]; then args+=(--max-utterances "$EVAL_UTTERANCES"); fi
  if [ "$PARALLEL" -gt 1 ]; then args+=(--threads 1); fi
  $JSTIP evaluate --checkpoint "$exp/train/$1/seed$2/checkpoints/last.ckpt" --out "$exp/eval/$1/seed$2" "${args[@]}"
  done_step "3-evaluate-$1-seed$2"
}

# for_runs STAGE NAME FUNCTION: FUNCTION ARM SEED for every run not done yet, seed by seed (a grid stopped early
# holds whole seeds), PARALLEL at once; with PARALLEL > 1 each run logs to OUT/exp/logs/STAGE-ARM-seedK.log.
for_runs() {
  local n=$1 name=$2 fn=$3 arm s running=0 failed=0 logf
  local -A what=()
  for s in $SEEDS; do
    for arm in $ARMS; do
      todo "$n-$name-$arm-seed$s" "stage $n: $name $arm, seed $s" || continue
      if [ "$PARALLEL" -le 1 ]; then "$fn" "$arm" "$s"; continue; fi
      mkdir -p "$exp/logs"
      logf=$exp/logs/$n-$name-$arm-seed$s.log
      ( "$fn" "$arm" "$s" ) > "$logf" 2>&1 &
      what[$!]=$logf
      running=$((running + 1))
      if [ "$running" -ge "$PARALLEL" ]; then
        wait_one || failed=1
        running=$((running - 1))
      fi
    done
  done
  while [ "$running" -gt 0 ]; do wait_one || failed=1; running=$((running - 1)); done
  [ "$failed" -eq 0 ] || die "stage $n: some runs failed (their logs are named above); run the recipe again to retry them"
}
wait_one() {  # wait for one background run; on failure name its log
  local pid rc=0
  wait -n -p pid || rc=$?
  if [ "$rc" -ne 0 ]; then echo "[medical] error: a run failed (exit $rc): see ${what[$pid]}" >&2; tail -n 5 "${what[$pid]}" >&2; fi
  return "$rc"
}

if selected 2; then for_runs 2 train train_run; fi
if selected 3; then for_runs 3 evaluate eval_run; fi

if selected 4; then
  # Always rebuilt from the evaluations (seconds), so that added arms or seeds show up.
  log "stage 4: report"
  arm_args=()
  for arm in $ARMS; do
    arm_args+=(--arm "$arm")
    for s in $SEEDS; do
      [ -f "$out/.done/3-evaluate-$arm-seed$s" ] || die "$arm seed $s is not evaluated yet: run stage 3 first (--stage 3)"
    done
  done
  $JSTIP report grid "$exp/eval" --baseline "$baseline" "${arm_args[@]}" --only-seeds "$SEEDS" --bootstrap "$BOOTSTRAP" \
    --title "Medical entity grid: $(echo $ARMS | wc -w) arms x seeds $SEEDS, $ARM_STEPS steps each" \
    --out "$exp/grid.md"
  for s in $SEEDS; do
    runs=()
    for arm in $ARMS; do runs+=("$exp/eval/$arm/seed$s"); done
    $JSTIP report "${runs[@]}" --out "$exp/report_seed$s.html" --title "Medical grid, seed $s" \
      --bootstrap "$BOOTSTRAP"
  done
  cp "$exp/grid.md" "$out/grid.md.tmp" && mv "$out/grid.md.tmp" "$out/grid.md"
  cp "$exp/grid.json" "$out/grid.json.tmp" && mv "$out/grid.json.tmp" "$out/grid.json"
  if [ -f "$exp/grid_eer_by_exposure.png" ]; then  # the chart grid.md links to
    cp "$exp/grid_eer_by_exposure.png" "$out/grid_eer_by_exposure.png.tmp"
    mv "$out/grid_eer_by_exposure.png.tmp" "$out/grid_eer_by_exposure.png"
  fi
  done_step 4-report
fi

log "finished: $out/grid.md ($out/grid.json, $exp/report_seed*.html)"
