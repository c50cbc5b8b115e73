#!/usr/bin/env bash
# Usage: KAFKA_BROKERS=host:port bench/compare.sh RUNS BINARY...
#
# A/B comparison of service builds on the batch endpoint: for each binary, RUNS times, starts a
# fresh service on its own topics, warms up for 2 s, then drives 1000-event batches at
# concurrency 4 for 8 s with oha and prints the events/s stored. Interleave the binaries' runs
# by listing them again (A B A B) when the machine is noisy; compare medians. Each service gets
# KAFKA_BROKERS and none of the service's other variables from this environment
# (scripts/harness/), so that both sides of a comparison run with the same configuration.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=${1:?runs}; shift
: "${KAFKA_BROKERS:?set KAFKA_BROKERS to a running broker (kafka/start.sh prints one)}"
# shellcheck source-path=SCRIPTDIR source=../scripts/harness/harness.sh
. scripts/harness/harness.sh
body=$(mktemp)
trap 'harness_cleanup; rm -f "$body"' EXIT
python3 bench/bodies.py batch 1000 "$body"

for binary in "$@"; do
  for ((run = 1; run <= runs; run++)); do
    service_start --binary "$binary" --within 30 KAFKA_BROKERS="$KAFKA_BROKERS" \
      KAFKA_TOPIC_PREFIX="compare-$RANDOM." KAFKA_GROUP_ID="compare-$RANDOM" ||
      { echo "compare: $binary never became healthy" >&2; exit 1; }
    url=$SERVICE_URL/api/events/batch
    oha --no-tui -z 2s -c 4 -m POST -T application/json -D "$body" "$url" >/dev/null
    report=$(oha --no-tui -z 8s -w -c 4 -m POST -T application/json -D "$body" --output-format json "$url")
    python3 -c '
import json, sys
d = json.loads(sys.argv[2])
stored = d["statusCodeDistribution"].get("201", 0) * 1000 / d["summary"]["total"]
print(f"{sys.argv[1]}: {stored:,.0f} events/s")' "$binary" "$report"
    service_stop || echo "compare: $binary did not exit 0 after SIGTERM" >&2
  done
done
