#!/usr/bin/env bash
# Runs every test: unit tests, in-process router tests, and integration tests against a real
# Apache Kafka 4.1 broker (KRaft) that this script starts on a free port and removes afterwards,
# with a Redis and an Apicurio Registry of its own; then the integration tests that exercise the broker's protocol again
# against Kafka 2.7 (ZooKeeper), the version the platform runs.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh -- --nocapture); with a test filter
# given, the Kafka 2.7 pass is left out (it says so).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh --broker --redis --registry
# Build first, so that the broker does not sit idle through a cold compile.
cargo build --locked --all-targets

broker_dir=kafka/.run/test-$$ redis_dir=redis/.run/test-$$ old_broker_dir=kafka/.run/test-2.7-$$
registry_dir=registry/.run/test-$$
stop_all() {
  kafka/stop.sh --dir "$broker_dir" >&2 || true
  kafka/stop.sh --dir "$old_broker_dir" >&2 || true
  redis/stop.sh --dir "$redis_dir" >&2 || true
  # A registry still starting has no pid file to stop it by yet.
  [[ -z ${registry_start-} ]] || wait "$registry_start" 2>/dev/null || true
  registry/stop.sh --dir "$registry_dir" >&2 || true
  rm -f "$registry_dir.url" "$registry_dir.log"
}
trap stop_all EXIT
# Apicurio Registry for tests/kafka/schema_registry.rs (in memory, ~170 MiB, a few seconds):
# it starts while the broker does, and stops once the first pass is done.
mkdir -p registry/.run
registry/start.sh --dir "$registry_dir" >"$registry_dir.url" 2>"$registry_dir.log" &
registry_start=$!
# Redis for the tests of several instances sharing state (tests/kafka/shared/).
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
wait "$registry_start" || { cat "$registry_dir.log" >&2; echo "test: the schema registry did not start" >&2; exit 1; }
TEST_SCHEMA_REGISTRY_URL=$(<"$registry_dir.url")/apis/ccompat/v7
export TEST_SCHEMA_REGISTRY_URL
echo "test: Kafka broker at $TEST_KAFKA_BROKERS (automatic topic creation off)," \
  "SASL_SSL at $TEST_KAFKA_SASL_SSL_BROKERS, Redis at $TEST_REDIS_URL," \
  "schema registry at $TEST_SCHEMA_REGISTRY_URL" >&2

# The integration tests (tests/kafka/) are marked ignored so that a plain `cargo test` runs
# without a broker; here they run too. Arguments after `--` go to the test binaries.
cargo_args=() test_args=(--include-ignored) to_tests=false
for arg in "$@"; do
  if ! $to_tests && [[ $arg == -- ]]; then to_tests=true; continue; fi
  if $to_tests; then test_args+=("$arg"); else cargo_args+=("$arg"); fi
done
filtered=false
for arg in "${test_args[@]:1}"; do [[ $arg == -* ]] || filtered=true; done
# Kafka 2.7 starts (ZooKeeper and a broker, ~15 s) while the first pass runs.
if ! $filtered; then
  kafka/start.sh --kafka 2.7 --dir "$old_broker_dir" --auto-create false --security \
    >"$old_broker_dir.brokers" 2>"$old_broker_dir.log" &
  old_broker_start=$!
fi
cargo test --locked --all-targets "${cargo_args[@]}" -- "${test_args[@]}"
# The Kafka 2.7 pass does not use it.
registry/stop.sh --dir "$registry_dir" >&2 || true

if $filtered; then
  echo "test: the Kafka 2.7 pass is left out: a test filter was given" >&2
  exit 0
fi
wait "$old_broker_start" || { cat "$old_broker_dir.log" >&2; echo "test: Kafka 2.7 did not start" >&2; exit 1; }
TEST_KAFKA_BROKERS=$(<"$old_broker_dir.brokers")
rm -f "$old_broker_dir.brokers" "$old_broker_dir.log"
# shellcheck source=/dev/null # written by kafka/start.sh --security
. "$old_broker_dir/security.env"
export TEST_KAFKA_BROKERS TEST_KAFKA_SASL_SSL_BROKERS=$KAFKA_SASL_SSL_BROKERS \
  TEST_KAFKA_SASL_MECHANISM=$KAFKA_SASL_MECHANISM TEST_KAFKA_SASL_USERNAME=$KAFKA_SASL_USERNAME \
  TEST_KAFKA_SASL_PASSWORD=$KAFKA_SASL_PASSWORD TEST_KAFKA_SSL_CA_LOCATION=$KAFKA_SSL_CA_LOCATION
echo "test: Kafka 2.7 at $TEST_KAFKA_BROKERS: the tests of the broker's protocol again" >&2
# Publishing, batches, consumers and groups, topics, health, dead letters, the live view's
# reader, rebalancing, SASL/SCRAM over TLS, the earlier attempts' look-up by time, metrics and
# independent clients. Left out: HTTP connection handling, the binary's signals, tracing and a
# broker of the test's own, which do not depend on the broker's version.
cargo test --locked --test kafka "${cargo_args[@]}" -- "${test_args[@]}" \
  batch:: clients:: consumers:: health:: live:: metrics:: poison:: publish:: scale_out:: \
  security:: shared:: topics::
