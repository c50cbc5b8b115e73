#!/usr/bin/env bash
# The fault suite (RELIABILITY.md): kills brokers and the service under load, reads the topics
# back with an independent client (Python confluent-kafka) and counts sent, acknowledged, stored,
# lost, wrong, duplicated and out-of-order events. Fails unless every scenario passes.
#
# Usage: scripts/faults.sh [--full] [--report FILE] [scenario ...]
#   (no flag)   the CI run, about 5 minutes: short outages, small backlogs
#   --full      longer outages (60 s), more load, bigger backlogs, as RELIABILITY.md's table
#   --report F  also write the table (markdown) to F
#   scenario    broker-crash, leader-kills, sigterm, consumer-crash, long-outage, instance-kill
#               (default: all)
# Starts its own brokers on free ports (one broker, and a 3-node cluster for leader-kills) and
# removes them afterwards; builds the release binary (scripts/harness/: a no-op when it is up to
# date, none at all with EVENTS_SERVICE_BINARY); installs faults/requirements.txt into
# .venv-faults/.
set -euo pipefail
args=()
while (($#)); do
  case $1 in
    --report) args+=(--report "$(realpath -m "${2:?--report needs a file}")"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Its own brokers, and a Redis for instance-kill.
scripts/bootstrap.sh --broker --redis
# shellcheck source-path=SCRIPTDIR source=harness/harness.sh
. scripts/harness/harness.sh
harness_build
scripts/venv.sh .venv-faults faults/requirements.txt
exec .venv-faults/bin/python faults/run.py --binary "$SERVICE_BINARY" "${args[@]}"
