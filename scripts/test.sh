#!/usr/bin/env bash
# Runs every test: unit tests, in-process router tests, and integration tests against a real
# Apache Kafka broker that this script starts on a free port and removes afterwards.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh -- --nocapture).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh
# Build first, so that the broker does not sit idle through a cold compile.
cargo build --locked --all-targets

broker_dir=kafka/.run/test-$$
stop_broker() { kafka/stop.sh --dir "$broker_dir" >&2 || true; }
trap stop_broker EXIT
TEST_KAFKA_BROKERS=$(kafka/start.sh --dir "$broker_dir" --auto-create false)
export TEST_KAFKA_BROKERS
echo "test: Kafka broker at $TEST_KAFKA_BROKERS (automatic topic creation off)" >&2

cargo test --locked --all-targets "$@"
