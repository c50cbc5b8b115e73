#!/usr/bin/env bash
# The records' contract, checked from outside Rust, against a Kafka broker and an Apicurio
# Registry of its own:
#   1. the AsyncAPI document the service serves, parsed and validated by the official parser
#      (npm @asyncapi/parser, pinned in scripts/contracts/package-lock.json; its rulesets check
#      the specification's schemas, the Kafka bindings' and the spectral rules), for plain JSON
#      and for the wire format (SCHEMA_REGISTRY_WIRE_FORMAT=true);
#   2. the records the service wrote (an event of each type and a dead letter), read back and
#      validated against that document's message schemas, key and every header included (Python
#      jsonschema; scripts/contracts_check.py records);
#   3. wire-format records read with confluent-kafka's registry-aware JSONDeserializer against
#      the registry the service registered its schemas in (scripts/contracts_check.py wire).
# Python packages are pinned in scripts/requirements-contracts.txt (.venv-contracts/); both the
# npm packages and the virtualenv live in the per-user cache (scripts/cache.sh), installed once.
# Takes the binary from EVENTS_SERVICE_BINARY (CI builds it once) or builds the release one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { echo "contracts: $*" >&2; }
SECONDS=0

# First, so that a machine that cannot install them fails before the build.
scripts/bootstrap.sh --broker --registry
scripts/venv.sh .venv-contracts scripts/requirements-contracts.txt
command -v npm >/dev/null || { say "npm not found: install Node.js 18 or newer (Debian: nodejs npm)"; exit 1; }
# shellcheck source-path=SCRIPTDIR source=cache.sh
. scripts/cache.sh
lock=scripts/contracts/package-lock.json
if ! parser_home=$(cache_entry npm "asyncapi-parser-$(sha256sum "$lock" | cut -c1-16)"); then
  parser_home=scripts/contracts/.npm  # no writable cache: inside the checkout
fi
mkdir -p "$parser_home"
cache_lock "$parser_home"
if [[ ! -f $parser_home/.installed ]]; then
  say "installing the packages of $lock into $parser_home"
  cp scripts/contracts/package.json "$lock" "$parser_home/"
  (cd "$parser_home" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  touch "$parser_home/.installed"
fi
cache_unlock

# shellcheck source-path=SCRIPTDIR source=harness/harness.sh
. scripts/harness/harness.sh
work=$(mktemp -d)
trap 'harness_cleanup; rm -rf "$work"' EXIT
harness_build
broker_start kafka/.run/contracts-$$ --auto-create false
registry_start registry/.run/contracts-$$
say "Kafka at $BROKERS, Apicurio Registry at $REGISTRY_URL ($SECONDS s)"

# check NAME VAR=VALUE...: the service with those variables, its document through the parser,
# then its records through contracts_check.py NAME.
check() {
  local name=$1
  shift
  if ! service_start KAFKA_BROKERS="$BROKERS" KAFKA_TOPIC_PREFIX="contracts-$name-$$." "$@"; then
    say "the service did not become healthy"
    exit 1
  fi
  curl -fsS -o "$work/$name.json" "$SERVICE_URL/api/events/asyncapi.json"
  node scripts/contracts/asyncapi-check.mjs "$parser_home" "$work/$name.json" | sed "s/^/contracts: $name document: /"
  local extra=()
  [[ $name != wire ]] || extra=("$REGISTRY_URL")
  .venv-contracts/bin/python scripts/contracts_check.py "$name" "$SERVICE_URL" "$BROKERS" "${extra[@]}" |
    sed "s/^/contracts: $name: /"
  if ! service_stop; then
    say "the service did not exit 0 after SIGTERM"
    exit 1
  fi
}

check records
check wire SCHEMA_REGISTRY_URL="$REGISTRY_URL" SCHEMA_REGISTRY_WIRE_FORMAT=true
say "passed in $SECONDS s"
