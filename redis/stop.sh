#!/usr/bin/env bash
# Usage: redis/stop.sh --dir DIR | --all
# Stops the Redis that redis/start.sh started in DIR (SIGTERM, then SIGKILL after 10 s) and
# deletes DIR. --all does this for everything under redis/.run and deletes redis/.run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }

dirs=() remove=''
case ${1-} in
  --dir)
    (($# == 2)) || usage
    [[ -e $2 ]] || { log "$2 does not exist; nothing to stop"; exit 0; }
    # The marker keeps a mistyped --dir from deleting someone's directory.
    [[ -f $2/.redis-run ]] || die "$2 was not created by redis/start.sh; not touching it"
    dirs=("$2") remove=$2 ;;
  --all)
    (($# == 1)) || usage
    shopt -s nullglob
    dirs=("$REDIS_RUN"/*/)
    remove=$REDIS_RUN ;;
  *) usage ;;
esac

for d in "${dirs[@]}"; do
  pid=$(redis_pid "$d") || continue
  kill -TERM "$pid" 2>/dev/null || true
  for _ in {1..100}; do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    log "pid $pid still running after 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
rm -rf "$remove"
rmdir "$REDIS_RUN" 2>/dev/null || true
