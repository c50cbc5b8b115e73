#!/usr/bin/env bash
# Runs the service (release build). When KAFKA_BROKERS is not set, it first starts a local
# Apache Kafka broker, on localhost:9092 when that port is free, and stops it when the service
# exits. Every other variable in README.md is passed through as it is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh
cargo build --locked --release --bin events-service

if [[ -z ${KAFKA_BROKERS:-} ]]; then
  broker_dir=kafka/.run/local-$$
  port=9092
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && port=0   # taken: let start.sh pick one
  trap 'kafka/stop.sh --dir "$broker_dir" >&2 || true' EXIT
  KAFKA_BROKERS=$(kafka/start.sh --port "$port" --dir "$broker_dir")
  export KAFKA_BROKERS
  echo "run: started a local Kafka broker at $KAFKA_BROKERS (stopped when the service exits)" >&2
fi

target/release/events-service &
service=$!
# Pass SIGTERM and SIGINT on, then wait for the service's own graceful shutdown: a trap
# interrupts `wait`, so wait once more for the service's real exit status.
stopping=false
trap 'stopping=true; kill -TERM $service 2>/dev/null || true' TERM INT
status=0
wait $service || status=$?
if $stopping; then
  status=0
  wait $service || status=$?
fi
exit $status
