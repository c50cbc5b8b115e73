#!/usr/bin/env bash
# Usage: scripts/run-many.sh [N]
#
# Runs N instances of the service (default 2, release build) as one service: one consumer
# group, one Redis, one broker. Instance i (from 0) listens on PORT + i (PORT defaults to
# 8082), and its log lines are prefixed with [i]. When KAFKA_BROKERS is not set a local broker
# is started, and when REDIS_URL is not set a local redis-server; both are stopped when the
# instances exit (Ctrl-C stops them all, each gracefully). KAFKA_TOPIC_PARTITIONS defaults to
# N, so that every instance consumes. Every other variable in README.md is passed through.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

n=${1:-2}
[[ $n =~ ^[1-9][0-9]?$ ]] || { echo "run-many: N must be 1 to 99, got '$n'" >&2; exit 2; }
base=${PORT:-8082}

needs=()
[[ -n ${KAFKA_BROKERS:-} ]] || needs+=(--broker)
[[ -n ${REDIS_URL:-} ]] || needs+=(--redis)
scripts/bootstrap.sh "${needs[@]}"
cargo build --locked --release --bin events-service

broker_dir='' redis_dir='' pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -z $broker_dir ]] || kafka/stop.sh --dir "$broker_dir" >&2 || true
  [[ -z $redis_dir ]] || redis/stop.sh --dir "$redis_dir" >&2 || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if [[ -z ${KAFKA_BROKERS:-} ]]; then
  broker_dir=kafka/.run/many-$$
  KAFKA_BROKERS=$(kafka/start.sh --dir "$broker_dir")
  export KAFKA_BROKERS
  echo "run-many: started a local Kafka broker at $KAFKA_BROKERS" >&2
fi
if [[ -z ${REDIS_URL:-} ]]; then
  redis_dir=redis/.run/many-$$
  REDIS_URL=$(redis/start.sh --dir "$redis_dir")
  export REDIS_URL
  echo "run-many: started a local Redis at $REDIS_URL" >&2
fi
export KAFKA_TOPIC_PARTITIONS=${KAFKA_TOPIC_PARTITIONS:-$n}

for ((i = 0; i < n; i++)); do
  # The instance's own pid (not a pipeline's), so that it gets the signals.
  PORT=$((base + i)) target/release/events-service > >(sed -u "s/^/[$i] /") 2>&1 &
  pids+=($!)
  echo "run-many: instance $i on http://127.0.0.1:$((base + i))" >&2
done
# Until one exits (or Ctrl-C); then the others are stopped.
wait -n "${pids[@]}" || true
