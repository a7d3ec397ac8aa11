# Shared by the recipes: the options every recipe takes and its stage runner (Kaldi/ESPnet style).
#
# A recipe sets, then sources this file (it parses the recipe's own arguments):
#   recipe=mini                    # name in log lines
#   out=recipes/mini/exp           # default of --out
#   help_lines=2,14                # lines of the recipe's header that --help prints
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib/stages.sh"
#
# Options: --stage N  --stop-stage N  --out DIR  -h/--help.
# `run_stage N NAME` is true when stage N is selected and OUT/.done/N-NAME does not exist yet (a finished stage is
# skipped, an unfinished one runs again); `done_stage N NAME` marks it finished and logs how long it took. `log` and
# `die` print with the name.

stage=0
stop_stage=100
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n "${help_lines}p" "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "[$(date +%H:%M:%S)] [$recipe] $*"; }
die() { echo "[$recipe] error: $*" >&2; exit 1; }
run_stage() {
  local n=$1 name=$2
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 1; fi
  if [ -f "$out/.done/$n-$name" ]; then log "stage $n ($name): done already"; return 1; fi
  log "stage $n: $name"
  stage_started=$SECONDS
  return 0
}
done_stage() {
  mkdir -p "$out/.done"; touch "$out/.done/$1-$2"
  local s=$((SECONDS - ${stage_started:-$SECONDS}))
  log "stage $1 ($2) done in $((s / 60)) min $((s % 60)) s"
}
