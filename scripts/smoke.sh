#!/usr/bin/env bash
# The seed README's curl examples against the service as scripts/run.sh starts it (with its own
# local broker), each record then read back with kcat at the partition and offset the service
# returned, and then with the CloudEvents SDK (scripts/cloudevents_check.py; pinned in
# scripts/requirements-cloudevents.txt, installed into .venv-cloudevents/). Exits non-zero on the
# first mismatch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# curl and kcat; scripts/run.sh below asks for the broker's tools itself.
scripts/bootstrap.sh --smoke
# First, so that a machine that cannot install it fails before the build.
scripts/venv.sh .venv-cloudevents scripts/requirements-cloudevents.txt

ce_source=/cinemaabyss/events-service   # the default CLOUDEVENTS_SOURCE
# shellcheck source-path=SCRIPTDIR source=harness/harness.sh
. scripts/harness/harness.sh
trap harness_cleanup EXIT
# run.sh, with nothing of the service's configuration from this shell (so with a local broker of
# its own), on a port the harness picks; it builds the binary, or takes EVENTS_SERVICE_BINARY's.
# Its stop includes run.sh stopping that broker.
if ! service_start --within 300 --stop-within 60 -- scripts/run.sh; then
  echo "smoke: the service did not become healthy" >&2
  exit 1
fi
base=$SERVICE_URL/api/events
brokers=$(sed -n 's/^run: started a local Kafka broker at \([^ ]*\).*/\1/p' "$SERVICE_LOG")

responses=()
check() {   # kind, body: POST as the seed does, then find the same record with kcat
  local kind=$1 body=$2 response topic partition offset record
  response=$(curl -fsS -X POST "$base/$kind" -H "Content-Type: application/json" -d "$body")
  responses+=("$response")
  read -r topic partition offset < <(python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["topic"], r["partition"], r["offset"])' <<<"$response")
  record=$(kcat -b "$brokers" -C -t "$topic" -p "$partition" -o "$offset" -c 1 -e -q -f '%k\t%s\n')
  python3 - "$response" "$record" "$body" <<'PY'
import json, sys
response, record, body = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
key, value = record.split("\t", 1)
event = json.loads(value)
assert event == response["event"], f"kcat found {event}, the service returned {response['event']}"
assert event["payload"] == body, f"payload {event['payload']} differs from the request {body}"
id_field = {"movie": "movie_id", "user": "user_id", "payment": "payment_id"}[event["type"]]
assert key == str(body[id_field]), f"key {key!r} is not {id_field}"
PY
  echo "smoke: POST /api/events/$kind -> 201, $topic/$partition/$offset holds the same record (kcat)"
}

check movie '{"movie_id": 1, "title": "The Matrix", "action": "viewed", "user_id": 123, "rating": 9.5, "genres": ["Sci-Fi", "Action"], "description": "A computer hacker learns about the true nature of reality"}'
check user '{"user_id": 123, "username": "john_doe", "email": "john@example.com", "action": "registered", "timestamp": "2025-01-01T00:00:00Z"}'
check payment '{"payment_id": 456, "user_id": 123, "amount": 99.99, "status": "completed", "timestamp": "2025-01-01T00:00:00Z", "method_type": "credit_card"}'
check movie '{"movie_id": 1, "title": "Test Movie", "action": "viewed"}'
# The same records read by the CloudEvents SDK, while run.sh's broker is still up.
.venv-cloudevents/bin/python scripts/cloudevents_check.py "$brokers" "$ce_source" "${responses[@]}" |
  sed 's/^/smoke: /'

if ! service_stop; then
  echo "smoke: the service did not exit 0 after SIGTERM" >&2
  exit 1
fi
echo "smoke: $((2 * ${#responses[@]})) passed, 0 failed"
