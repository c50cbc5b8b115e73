#!/usr/bin/env bash
# Usage: kafka/stop.sh --dir DIR | --all
# Stops the broker(s) that kafka/start.sh started in DIR (SIGTERM, then SIGKILL after 20 s),
# then their ZooKeeper (Kafka 2.x; the same way), and deletes DIR. --all does this for
# everything under kafka/.run and deletes kafka/.run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source-path=SCRIPTDIR source=lib/zookeeper.sh
. "$KAFKA_SCRIPTS/lib/zookeeper.sh"

usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }

dirs=() remove=''
case ${1-} in
  --dir)
    (($# == 2)) || usage
    [[ -e $2 ]] || { log "$2 does not exist; nothing to stop"; exit 0; }
    # The marker keeps a mistyped --dir from deleting someone's directory.
    [[ -f $2/.kafka-run ]] || die "$2 was not created by kafka/start.sh; not touching it"
    dirs=("$2") remove=$2 ;;
  --all)
    (($# == 1)) || usage
    shopt -s nullglob
    dirs=("$KAFKA_RUN"/*/)
    remove=$KAFKA_RUN ;;
  *) usage ;;
esac

# Brokers first: a Kafka 2.x broker's controlled shutdown needs its ZooKeeper.
broker_pids=() zk_pids=()
for d in "${dirs[@]}"; do
  d=$(cd "$d" && pwd -P)
  while IFS= read -r pidfile; do
    pid=$(node_pid "$(dirname "$pidfile")") && broker_pids+=("$pid")
  done < <(find "$d" -maxdepth 2 -name kafka.pid)
  pid=$(zookeeper_pid "$d/zookeeper") && zk_pids+=("$pid")
done

any_alive() {
  local p
  for p; do alive "$p" && return 0; done
  return 1
}
wait_gone() {  # wait_gone SECONDS PID...
  local end=$((SECONDS + $1))
  shift
  while any_alive "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}
stop_pids() {  # stop_pids PID...
  (($#)) || return 0
  log "stopping pid(s) $*"
  kill -TERM "$@" 2>/dev/null || true
  if ! wait_gone 20 "$@"; then
    log "still running after 20s; sending SIGKILL"
    kill -KILL "$@" 2>/dev/null || true
    wait_gone 5 "$@" || die "pid(s) $* survived SIGKILL"
  fi
}

stop_pids "${broker_pids[@]}"
stop_pids "${zk_pids[@]}"
rm -rf "$remove"
# Leaves no empty kafka/.run behind either; fails harmlessly while other runs live there.
rmdir "$KAFKA_RUN" 2>/dev/null || true
