#!/usr/bin/env bash
# The dashboard in a real browser: builds the release binary, starts a Kafka broker of its own
# and the service on a free port, and runs browser-test/dashboard.test.mjs, which drives Debian's
# Chromium (headless) with playwright-core (pinned in browser-test/package-lock.json). Installs
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
scripts/bootstrap.sh
(cd browser-test && npm ci --no-audit --no-fund --loglevel=error >&2)
cargo build --locked --release --bin events-service

broker_dir=kafka/.run/browser-$$
log=$(mktemp)
service=
finish() {
  if [[ -n $service ]]; then
    kill -TERM "$service" 2>/dev/null || true
    wait "$service" 2>/dev/null || true
  fi
  kafka/stop.sh --dir "$broker_dir" >&2 || true
  rm -f "$log"
}
trap finish EXIT

brokers=$(kafka/start.sh --dir "$broker_dir")
say "broker at $brokers"
# Statistics every second, so that the consumer lag reaches /metrics quickly.
KAFKA_BROKERS=$brokers HOST=127.0.0.1 PORT=0 LOG_FORMAT=text KAFKA_TOPIC_PREFIX='' \
  KAFKA_STATISTICS_INTERVAL_MS=1000 target/release/events-service >"$log" 2>&1 &
service=$!

url=
deadline=$((SECONDS + 60))
until [[ -n $url ]] && curl -fs "${url}api/events/health" >/dev/null 2>&1; do
  if ! kill -0 "$service" 2>/dev/null || ((SECONDS > deadline)); then
    say "the service did not become healthy; its output:"
    cat "$log" >&2
    exit 1
  fi
  url=$(sed -n 's|.*Events Service listening on \(http://[^ ]*\).*|\1/|p' "$log" | head -n 1)
  sleep 0.2
done
say "service at $url"

if ! node browser-test/dashboard.test.mjs --url "$url" "$@"; then
  say "the service's output (last 50 lines):"
  tail -n 50 "$log" >&2
  exit 1
fi
