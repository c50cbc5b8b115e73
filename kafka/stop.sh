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

run_dirs .kafka-run "$KAFKA_RUN" "$@"
# Brokers first: a Kafka 2.x broker's controlled shutdown needs its ZooKeeper.
broker_pids=() zk_pids=()
for d in "${RUN_DIRS[@]}"; do
  d=$(cd "$d" && pwd -P)
  while IFS= read -r pidfile; do
    pid=$(node_pid "$(dirname "$pidfile")") && broker_pids+=("$pid")
  done < <(find "$d" -maxdepth 2 -name kafka.pid)
  pid=$(zookeeper_pid "$d/zookeeper") && zk_pids+=("$pid")
done
stop_pids 20 "${broker_pids[@]}"
stop_pids 20 "${zk_pids[@]}"
rm -rf "$RUN_REMOVE"
# Leaves no empty kafka/.run behind either; fails harmlessly while other runs live there.
rmdir "$KAFKA_RUN" 2>/dev/null || true
