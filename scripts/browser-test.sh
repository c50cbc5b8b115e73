#!/usr/bin/env bash
# The dashboard in a real browser: builds the release binary (scripts/harness/), starts a Kafka
# broker of its own and the service on a free port, runs browser-test/dashboard.test.mjs, which
# drives Debian's Chromium (headless) with playwright-core (pinned in
# browser-test/package-lock.json), and checks that the service exits 0 on SIGTERM. Installs
# chromium with apt when /usr/bin/chromium is missing (as root). Needs Node.js 20 or newer.
#
# Usage: scripts/browser-test.sh [--docs]
#   --docs  also saves the screenshot as docs/dashboard.png (the README's), after sample traffic
# Saves artifacts/dashboard.png; closes with `browser-test: N passed, N failed`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { echo "browser-test: $*" >&2; }

if [[ ! -x /usr/bin/chromium ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    say "needs Debian's Chromium at /usr/bin/chromium; install it (apt-get install chromium)"
    exit 1
  fi
  say "installing chromium"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null ||
  ! command -v npm >/dev/null 2>&1; then
  say "needs Node.js 20 or newer and npm (playwright-core's minimum); node is $(node --version 2>&1 || true)"
  exit 1
fi
scripts/bootstrap.sh --broker
(cd browser-test && npm ci --no-audit --no-fund --loglevel=error >&2)
# shellcheck source-path=SCRIPTDIR source=harness/harness.sh
. scripts/harness/harness.sh
work=$(mktemp -d)
trap 'harness_cleanup; rm -rf "$work"' EXIT
harness_build

broker_start "$work/kafka"
say "broker at $BROKERS"
# Statistics every second, so that the consumer lag reaches /metrics quickly.
if ! service_start --log "$work/service.log" KAFKA_BROKERS="$BROKERS" LOG_FORMAT=text \
  KAFKA_TOPIC_PREFIX='' KAFKA_STATISTICS_INTERVAL_MS=1000; then
  say "the service did not become healthy"
  exit 1
fi
url=$SERVICE_URL/
say "service at $url"

if ! node browser-test/dashboard.test.mjs --url "$url" "$@"; then
  say "the service's output (last 50 lines):"
  tail -n 50 "$SERVICE_LOG" >&2
  exit 1
fi
if ! service_stop; then
  say "the service did not exit 0 after SIGTERM"
  exit 1
fi
