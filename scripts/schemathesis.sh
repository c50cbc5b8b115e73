#!/usr/bin/env bash
# API fuzzing: schemathesis against the OpenAPI document the service serves, with the release
# binary (scripts/harness/) on a port of its own and a local Kafka broker of its own (POST routes
# publish for real).
# Fails unless every answer is right:
#   - no 5xx at all (not_a_server_error), and the service still healthy, free of panics and
#     exiting 0 on SIGTERM afterwards;
#   - every answer conforms to the document: a documented status code, its content type, its
#     headers and its body schema; schema-valid bodies accepted, schema-violating ones refused;
#     undeclared methods answered 405 with Allow;
#   - every 4xx (and 5xx) is a JSON object with a string `error` (the custom check in
#     scripts/schemathesis_hooks.py, which also explains the two ways generated bodies are
#     adjusted);
#   - the document itself is complete (scripts/schemathesis.toml: no unresolvable `$ref`).
# Phases: examples, coverage, fuzzing, stateful; the same seed sends the same requests.
# GET /api/events/stream is left out: a stream of server-sent events never ends by design, so
# every request would run into the timeout (tests/live.rs and tests/kafka/live.rs test it).
#
# Usage: scripts/schemathesis.sh [more `schemathesis run` options, e.g. --phases fuzzing]
#   FUZZ_SEED          seed (default 1); `random` for a fresh one, printed so it can be replayed
#   FUZZ_MAX_EXAMPLES  test cases per operation and phase (default 400)
#   FUZZ_SCHEMA        a file or URL to test instead of the served document (to try a fix)
#   FUZZ_REPORT_DIR    keep schemathesis' JSON, NDJSON (every request and answer) and JUnit
#                      reports and the service's output there
#   FUZZ_TIMEOUT       hard limit for the schemathesis run in seconds (default 300)
# Closes with `schemathesis: N passed, N failed`: one verdict per API operation, plus one for the
# service's own health. Installs schemathesis (scripts/requirements-fuzz.txt) into .venv-fuzz/.
set -euo pipefail
# Paths given relative to where the script was started from.
if [[ -n ${FUZZ_SCHEMA:-} && $FUZZ_SCHEMA != *://* ]]; then FUZZ_SCHEMA=$(realpath "$FUZZ_SCHEMA"); fi
if [[ -n ${FUZZ_REPORT_DIR:-} ]]; then FUZZ_REPORT_DIR=$(realpath -m "$FUZZ_REPORT_DIR"); fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

say() { echo "schemathesis: $*" >&2; }

# --- schemathesis, pinned, in a virtualenv of its own ------------------------------------------
venv=$root/.venv-fuzz
scripts/venv.sh "$venv" scripts/requirements-fuzz.txt

# --- the service, with a broker of its own ------------------------------------------------------
scripts/bootstrap.sh --broker
# shellcheck source-path=SCRIPTDIR source=harness/harness.sh
. scripts/harness/harness.sh
work=$(mktemp -d)
log=$work/service.log
finish() {
  harness_cleanup
  if [[ -n ${FUZZ_REPORT_DIR:-} ]]; then
    mkdir -p "$FUZZ_REPORT_DIR"
    cp -r "$work"/. "$FUZZ_REPORT_DIR"/ 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap finish EXIT
harness_build
if ! broker_start "$work/kafka" 2>"$work/broker.log"; then
  say "the Kafka broker did not start:"
  cat "$work/broker.log" >&2
  exit 1
fi
say "started a Kafka broker at $BROKERS"
if ! service_start --log "$log" KAFKA_BROKERS="$BROKERS" KAFKA_TOPIC_PREFIX=''; then
  say "the service did not become healthy"
  exit 1
fi
port=$SERVICE_PORT
base=$SERVICE_URL/api/events
say "the service is healthy on port $port"

# --- the run --------------------------------------------------------------------------------
schema=${FUZZ_SCHEMA:-$base/openapi.json}
if [[ -n ${FUZZ_SCHEMA:-} ]]; then
  target=(--url "$SERVICE_URL")
else
  target=()
fi
seed=${FUZZ_SEED:-1}
[[ $seed == random ]] && seed=$(python3 -c 'import random; print(random.randrange(2**32))')
if ! curl -fsS "$schema" -o "$work/openapi.json" 2>/dev/null && ! cp "$schema" "$work/openapi.json" 2>/dev/null; then
  say "cannot read the document $schema"
  exit 1
fi

say "seed $seed, ${FUZZ_MAX_EXAMPLES:-400} examples per operation and phase, against $schema"
started=$SECONDS
status=0
(
  cd "$work"   # where schemathesis and Hypothesis may leave files of their own
  PYTHONDONTWRITEBYTECODE=1 SCHEMATHESIS_HOOKS=$root/scripts/schemathesis_hooks.py \
    timeout --signal=INT --kill-after=30 "${FUZZ_TIMEOUT:-300}" \
    "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" \
    run "$schema" "${target[@]}" \
    --checks all,error_is_json \
    --exclude-path /api/events/stream \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "${FUZZ_MAX_EXAMPLES:-400}" \
    --seed "$seed" \
    --request-timeout 10 \
    --continue-on-failure \
    --report json,ndjson,junit --report-dir "$work/reports" \
    --report-json-path "$work/reports/report.json" \
    "$@"
) || status=$?
elapsed=$((SECONDS - started))

# --- the service survived and stops cleanly -----------------------------------------------------
service_problems=()
if ! service_alive; then
  service_problems+=("the service is no longer running")
elif ! curl -fs "$base/health" >/dev/null 2>&1; then
  service_problems+=("health is not 200 after the run: $(curl -s "$base/health" 2>&1 || true)")
fi
exit_status=0
service_stop || exit_status=$?
if ((exit_status != 0)); then
  service_problems+=("the service exited with $exit_status after SIGTERM")
fi
if grep -q "panicked" "$log"; then
  service_problems+=("the service panicked: $(grep -m1 "panicked" "$log")")
fi
if ((${#service_problems[@]})); then
  say "the service's output (last 40 lines):"
  tail -n 40 "$log" >&2
fi

# --- verdicts: one per operation of the document, one for the service ------------------------
printf '%s\n' "${service_problems[@]}" >"$work/service-problems"
"$venv/bin/python" - "$work/openapi.json" "$work/reports/report.json" "$root/scripts/schemathesis.toml" \
  "$status" "$elapsed" "$work/service-problems" <<'PY'
import json, sys, tomllib

document, report_path, config_path, status, elapsed, problems_path = sys.argv[1:]
status = int(status)
methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
operations = [
    f"{method.upper()} {path}"
    for path, item in json.load(open(document)).get("paths", {}).items()
    for method in item
    if method in methods
]
failed = {}   # item -> reasons
try:
    report = json.load(open(report_path))
except (OSError, ValueError):
    report = None
if report is None:
    failed["schemathesis"] = [f"no report (exit status {status})"]
else:
    for group in report.get("failures", []):
        for label in group.get("operations", []):
            failed.setdefault(label, []).append(f"{group['code']} {group['title']}")
    fail_on = tomllib.load(open(config_path, "rb")).get("warnings", {}).get("fail-on", [])
    for kind, labels in report.get("warnings", {}).items():
        if kind in fail_on:
            for label in labels:
                failed.setdefault(label, []).append(f"warning {kind}")
    for error in report.get("errors", []):
        failed.setdefault("schemathesis", []).append(f"error: {error['title']} ({error['count']})")
    if report.get("stop_reason") not in (None, "completed"):
        failed.setdefault("schemathesis", []).append(f"stopped: {report['stop_reason']}")
if status != 0 and not failed:
    failed["schemathesis"] = [f"exit status {status}"]
problems = [line for line in open(problems_path).read().splitlines() if line]
items = operations + [label for label in failed if label not in operations] + ["service"]
if problems:
    failed["service"] = problems
for item in items:
    verdict = "FAIL" if item in failed else "ok"
    reasons = "; ".join(dict.fromkeys(failed.get(item, [])))
    print(f"schemathesis: {verdict:4} {item}" + (f": {reasons}" if reasons else ""))
if report is not None:
    cases = report.get("test_cases", {})
    print(f"schemathesis: {cases.get('generated', 0)} test cases in {elapsed} s, seed {report.get('seed')}")
n_failed = sum(1 for item in items if item in failed)
print(f"schemathesis: {len(items) - n_failed} passed, {n_failed} failed")
sys.exit(1 if n_failed else 0)
PY
