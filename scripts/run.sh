#!/usr/bin/env bash
# Runs the service (release build). When KAFKA_BROKERS is not set, it first starts a local
# Apache Kafka broker, on localhost:9092 when that port is free, and stops it when the service
# exits. Every other variable in README.md is passed through as it is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A local broker needs Java and Maven; one of your own (KAFKA_BROKERS) does not.
if [[ -z ${KAFKA_BROKERS:-} ]]; then scripts/bootstrap.sh --broker; else scripts/bootstrap.sh; fi
# The release binary: built (a no-op when up to date), or EVENTS_SERVICE_BINARY when that is set.
# shellcheck source-path=SCRIPTDIR source=harness/harness.sh
. scripts/harness/harness.sh
harness_build

if [[ -z ${KAFKA_BROKERS:-} ]]; then
  broker_dir=kafka/.run/local-$$
  port=9092
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && port=0   # taken: let start.sh pick one
  trap harness_cleanup EXIT
  broker_start "$broker_dir" --port "$port"
  export KAFKA_BROKERS=$BROKERS
  echo "run: started a local Kafka broker at $KAFKA_BROKERS (stopped when the service exits)" >&2
fi

"$SERVICE_BINARY" &
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
