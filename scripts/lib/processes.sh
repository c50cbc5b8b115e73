# shellcheck shell=bash disable=SC2034 # RUN_DIRS, RUN_REMOVE: set for the caller
# Sourced by kafka/, redis/ and registry/ (through their common.sh): what their start and stop
# scripts share about the processes they run in directories of their own.
#
#   log MESSAGE, die MESSAGE   on stderr, named by the script; die exits 1
#   alive PID                  whether PID runs (a zombie, dead but not yet reaped, does not)
#   run_dirs MARKER RUN --dir DIR | --all
#                              the run directories a stop script is asked for: RUN_DIRS (DIR, or
#                              every directory under RUN) and RUN_REMOVE (what to delete after).
#                              DIR must hold the file MARKER, which its start script wrote, so
#                              that a mistyped --dir deletes nobody's directory; a DIR that does
#                              not exist is nothing to stop (exit 0). Other arguments: usage.
#   usage [STATUS]             the script's header comment, then exit STATUS (2)
#   stop_pids SECONDS PID...   SIGTERM, then SIGKILL once SECONDS have passed; dies if a pid
#                              survives that too

log() { echo "${0##*/}: $*" >&2; }
die() { log "$*"; exit 1; }

alive() {
  local stat
  [[ -n ${1-} ]] && stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

# usage [STATUS]: prints the calling script's header comment (its second line up to `set`) and
# exits STATUS (2).
# shellcheck disable=SC2120 # STATUS is optional: most callers pass none.
usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit "${1:-2}"; }

run_dirs() {
  local marker=$1 run=$2
  shift 2
  case ${1-} in
    --dir)
      (($# == 2)) || usage
      [[ -e $2 ]] || { log "$2 does not exist; nothing to stop"; exit 0; }
      [[ -f $2/$marker ]] || die "$2 was not created by $(basename "$(dirname "$0")")/start.sh; not touching it"
      RUN_DIRS=("$2") RUN_REMOVE=$2 ;;
    --all)
      (($# == 1)) || usage
      shopt -s nullglob
      RUN_DIRS=("$run"/*/)
      RUN_REMOVE=$run ;;
    *) usage ;;
  esac
}

stop_pids() {
  local seconds=$1
  shift
  (($#)) || return 0
  log "stopping pid(s) $*"
  kill -TERM "$@" 2>/dev/null || true
  if ! wait_gone "$seconds" "$@"; then
    log "still running after ${seconds}s; sending SIGKILL"
    kill -KILL "$@" 2>/dev/null || true
    wait_gone 5 "$@" || die "pid(s) $* survived SIGKILL"
  fi
}

# any_alive PID...: whether one of them still runs.
any_alive() {
  local p
  for p; do alive "$p" && return 0; done
  return 1
}

# wait_gone SECONDS PID...: whether every PID is gone within SECONDS.
wait_gone() {
  local end=$((SECONDS + $1))
  shift
  while any_alive "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}
