#!/usr/bin/env bash
# Shared helpers of the egs/<corpus>/run.sh recipes (icefall / ESPnet style), sourced after the recipe has
# set its defaults:
#
#   stage=0; stop_stage=100; HOURS=1 ...          # every setting a user may change, with its default
#   . "$(dirname "$0")/../common/stages.sh"       # defines the helpers below
#   parse_args "$@"                                # --stage N --stop-stage M --quick --help KEY=VALUE ...
#   $quick && HOURS=0.1                            # quick defaults first,
#   apply_overrides                                # then the user's KEY=VALUE win
#
#   if stage_enabled 1 "pretrain"; then
#     once "$EXP/pretrain/.done" speechssl pretrain ...   # skipped when the marker exists (idempotent)
#   fi
#
# Outputs belong under the recipe's data/ and exp/; a `.done` marker is written after each step succeeds,
# so re-running a finished stage does nothing (delete the marker, or the step's folder, to redo it).

set -euo pipefail

RECIPE_DIR=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
REPO_DIR=$(cd "$RECIPE_DIR/../.." && pwd)
stage=${stage:-0}
stop_stage=${stop_stage:-100}
quick=false
_overrides=()

# log MESSAGE: time, script:line and the message, on stderr.
log() {
  printf '%s (%s:%s) %s\n' "$(date '+%F %T')" "$(basename "${BASH_SOURCE[1]}")" "${BASH_LINENO[0]}" "$*" >&2
}

die() { log "ERROR: $*"; exit 1; }

_usage() {
  # the recipe's header comment is its help
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
  exit 0
}

# parse_args "$@": --stage N, --stop-stage M, --quick, --help, KEY=VALUE (KEY must be a setting of the recipe).
parse_args() {
  while (($#)); do
    case $1 in
      --stage) stage=$2; shift 2 ;;
      --stage=*) stage=${1#*=}; shift ;;
      --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
      --stop-stage=*|--stop_stage=*) stop_stage=${1#*=}; shift ;;
      --quick) quick=true; shift ;;
      -h|--help) _usage ;;
      *=*)
        local key=${1%%=*}
        [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad setting name in '$1'"
        declare -p "$key" >/dev/null 2>&1 || die "unknown setting '$key' (see --help for the settings of $(basename "$0"))"
        _overrides+=("$1"); shift ;;
      *) die "unexpected argument '$1' (expected --stage N, --stop-stage M, --quick or KEY=VALUE)" ;;
    esac
  done
  [[ $stage =~ ^[0-9]+$ && $stop_stage =~ ^[0-9]+$ ]] || die "--stage/--stop-stage must be integers"
}

# apply_overrides: set the user's KEY=VALUE settings (after the recipe's --quick defaults, so they win).
apply_overrides() {
  local kv
  for kv in ${_overrides[@]+"${_overrides[@]}"}; do
    printf -v "${kv%%=*}" '%s' "${kv#*=}"
  done
}

# stage_enabled N TITLE: true when stage N is within --stage..--stop-stage; logs the stage it starts.
stage_enabled() {
  if ((stage <= $1 && $1 <= stop_stage)); then
    log "stage $1: $2"
    return 0
  fi
  return 1
}

# once MARKER COMMAND...: run COMMAND unless MARKER exists; write MARKER when it succeeds.
once() {
  local marker=$1; shift
  if [[ -f $marker ]]; then
    log "  done already ($marker): skipped"
    return 0
  fi
  mkdir -p "$(dirname "$marker")"
  log "  $*"
  "$@"
  touch "$marker"
}

# The speechssl command: the one on PATH, else the repository's virtualenv (what `make install` creates).
if ! command -v speechssl >/dev/null 2>&1 && [[ -x $REPO_DIR/.venv/bin/speechssl ]]; then
  export PATH="$REPO_DIR/.venv/bin:$PATH"
fi
command -v speechssl >/dev/null 2>&1 || die "speechssl not found: run 'make install' in $REPO_DIR or activate its virtualenv"
# The Python that has speechssl installed, for the small glue scripts in egs/common.
PYTHON=$(dirname "$(command -v speechssl)")/python
[[ -x $PYTHON ]] || PYTHON=python3
