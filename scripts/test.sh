#!/usr/bin/env bash
# Runs every test: unit tests, in-process router tests, and integration tests against a real
# Apache Kafka broker that this script starts on a free port and removes afterwards.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh -- --nocapture).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh
# Build first, so that the broker does not sit idle through a cold compile.
cargo build --locked --all-targets

broker_dir=kafka/.run/test-$$ redis_dir=redis/.run/test-$$
stop_all() {
  kafka/stop.sh --dir "$broker_dir" >&2 || true
  redis/stop.sh --dir "$redis_dir" >&2 || true
}
trap stop_all EXIT
# Redis for the tests of several instances sharing state (tests/kafka/shared.rs).
TEST_REDIS_URL=$(redis/start.sh --dir "$redis_dir")
export TEST_REDIS_URL
TEST_KAFKA_BROKERS=$(kafka/start.sh --dir "$broker_dir" --auto-create false --security)
export TEST_KAFKA_BROKERS
# The SASL_SSL listener (SCRAM-SHA-256, a CA made for this run) for tests/kafka/security.rs.
# shellcheck source=/dev/null # written by kafka/start.sh --security
. "$broker_dir/security.env"
export TEST_KAFKA_SASL_SSL_BROKERS=$KAFKA_SASL_SSL_BROKERS \
  TEST_KAFKA_SASL_MECHANISM=$KAFKA_SASL_MECHANISM \
  TEST_KAFKA_SASL_USERNAME=$KAFKA_SASL_USERNAME \
  TEST_KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD \
  TEST_KAFKA_SSL_CA_LOCATION=$KAFKA_SSL_CA_LOCATION
echo "test: Kafka broker at $TEST_KAFKA_BROKERS (automatic topic creation off)," \
  "SASL_SSL at $TEST_KAFKA_SASL_SSL_BROKERS, Redis at $TEST_REDIS_URL" >&2

# The integration tests (tests/kafka/) are marked ignored so that a plain `cargo test` runs
# without a broker; here they run too. Arguments after `--` go to the test binaries.
cargo_args=() test_args=(--include-ignored) to_tests=false
for arg in "$@"; do
  if ! $to_tests && [[ $arg == -- ]]; then to_tests=true; continue; fi
  if $to_tests; then test_args+=("$arg"); else cargo_args+=("$arg"); fi
done
cargo test --locked --all-targets "${cargo_args[@]}" -- "${test_args[@]}"
