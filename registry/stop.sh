#!/usr/bin/env bash
# Usage: registry/stop.sh --dir DIR | --all
# Stops the registry that registry/start.sh started in DIR (SIGTERM, then SIGKILL after 20 s)
# and deletes DIR. --all does this for everything under registry/.run and deletes registry/.run.
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
    [[ -f $2/.registry-run ]] || die "$2 was not created by registry/start.sh; not touching it"
    dirs=("$2") remove=$2 ;;
  --all)
    (($# == 1)) || usage
    shopt -s nullglob
    dirs=("$REGISTRY_RUN"/*/)
    remove=$REGISTRY_RUN ;;
  *) usage ;;
esac

pids=()
for d in "${dirs[@]}"; do
  pid=$(registry_pid "$(cd "$d" && pwd -P)") && pids+=("$pid")
done

any_alive() {
  local p
  for p in "${pids[@]}"; do alive "$p" && return 0; done
  return 1
}
wait_gone() {  # wait_gone SECONDS
  local end=$((SECONDS + $1))
  while any_alive; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}

if ((${#pids[@]})); then
  log "stopping pid(s) ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  if ! wait_gone 20; then
    log "still running after 20s; sending SIGKILL"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait_gone 5 || die "pid(s) ${pids[*]} survived SIGKILL"
  fi
fi
rm -rf "$remove"
# Leaves no empty registry/.run behind either; fails harmlessly while other runs live there.
rmdir "$REGISTRY_RUN" 2>/dev/null || true
