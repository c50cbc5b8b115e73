# shellcheck shell=bash disable=SC2034 # SERVICE_*, BROKERS, REGISTRY_URL: set for the caller
# The harness for shell scripts, sourced: `. scripts/harness/harness.sh`. The work is done by the
# Python beside it (service.py, run as `python3 scripts/harness`), the same code the Python
# scripts and suites import, so that every script builds, starts, waits for and stops the
# service one way.
#
#   harness_build         sets SERVICE_BINARY to the release binary: $EVENTS_SERVICE_BINARY when
#                         set (CI builds once), else `cargo build --locked --release --bin
#                         events-service`, a no-op when it is up to date
#   broker_start DIR [kafka/start.sh options]
#                         sets BROKERS; the broker is stopped by broker_stop DIR or
#                         harness_cleanup (kafka/stop.sh --dir DIR)
#   registry_start DIR    sets REGISTRY_URL to an Apicurio Registry's Confluent-compatible API
#                         (http://127.0.0.1:PORT/apis/ccompat/v7), in memory; it is stopped by
#                         harness_cleanup (registry/stop.sh --dir DIR)
#   service_start [--live | --no-wait] [--within S] [--stop-within S] [--log FILE]
#                 [--binary PATH] [--no-inherit] [VAR=VALUE ...] [-- COMMAND ...]
#                         starts SERVICE_BINARY (or PATH, or COMMAND, which runs it: say
#                         scripts/run.sh) on a loopback port the harness picks, with VAR=VALUE
#                         and none of the service's own variables from this environment, and
#                         returns once its health route answers 200 (readiness; --live:
#                         liveness) within S seconds (default 60), setting SERVICE_URL
#                         (http://127.0.0.1:PORT), SERVICE_PORT, SERVICE_PID and SERVICE_LOG
#                         (its output: FILE, or a temporary file removed after a clean stop).
#                         Returns 1 when it did not, having said why, with the end of the
#                         output, on stderr.
#   service_alive         whether the service still runs
#   service_stop          SIGTERM; returns 0 when it exited 0 within the --stop-within deadline
#                         (default 30 s), else non-zero, having said why on stderr
#   harness_cleanup       stops the service, the brokers broker_start started and the
#                         registries registry_start started: call it from the script's EXIT trap
# One service at a time. Should the script die without its trap (kill -9), the service is stopped
# all the same: the Python that runs it is told when its parent dies.

HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HARNESS_ROOT=$(cd "$HARNESS/../.." && pwd)
# Set by the functions below; a value the caller gave one before sourcing this stays until then.
SERVICE_BINARY=${SERVICE_BINARY:-} SERVICE_URL=${SERVICE_URL:-} SERVICE_PORT=${SERVICE_PORT:-}
SERVICE_PID='' SERVICE_LOG=${SERVICE_LOG:-}
harness_supervisor='' harness_brokers=() harness_registries=()

harness_build() {
  SERVICE_BINARY=$(python3 "$HARNESS" build)
}

broker_start() {
  local dir=$1
  shift
  harness_brokers+=("$dir")
  BROKERS=$("$HARNESS_ROOT/kafka/start.sh" --dir "$dir" "$@")
}

broker_stop() {
  local dir=$1 kept=() d
  "$HARNESS_ROOT/kafka/stop.sh" --dir "$dir" >&2 || true
  for d in "${harness_brokers[@]}"; do [[ $d == "$dir" ]] || kept+=("$d"); done
  harness_brokers=("${kept[@]}")
}

registry_start() {
  local dir=$1 url
  harness_registries+=("$dir")
  url=$("$HARNESS_ROOT/registry/start.sh" --dir "$dir") || return 1
  REGISTRY_URL=$url/apis/ccompat/v7
}

service_start() {
  local args=() binary=$SERVICE_BINARY fifo line
  while (($#)); do
    case $1 in
      --live) args+=(--health live); shift ;;
      --no-wait) args+=(--health none); shift ;;
      --within | --stop-within | --log) args+=("$1" "$2"); shift 2 ;;
      --binary) binary=$2; shift 2 ;;
      --no-inherit) args+=("$1"); shift ;;
      --) break ;;
      *=*) args+=("$1"); shift ;;
      *) echo "harness: service_start: unknown argument $1" >&2; return 2 ;;
    esac
  done
  [[ -z $binary ]] || args+=(--binary "$binary")
  if [[ -n $harness_supervisor ]]; then
    echo "harness: service_start: a service runs already (pid $SERVICE_PID)" >&2
    return 2
  fi
  # The Python prints one line once the service is healthy, or nothing (EOF) when it is not.
  fifo=$(mktemp -d)
  mkfifo "$fifo/ready"
  python3 "$HARNESS" serve "${args[@]}" "$@" >"$fifo/ready" &
  harness_supervisor=$!
  read -r line <"$fifo/ready" || line=''
  rm -rf "$fifo"
  if [[ -z $line ]]; then
    wait "$harness_supervisor" 2>/dev/null || true
    harness_supervisor=''
    return 1
  fi
  read -r SERVICE_URL SERVICE_PID SERVICE_LOG <<<"$line"
  SERVICE_PORT=${SERVICE_URL##*:}
}

service_alive() {
  local stat
  [[ -n $SERVICE_PID ]] && stat=$(ps -o stat= -p "$SERVICE_PID" 2>/dev/null) && [[ $stat != Z* ]]
}

service_stop() {
  [[ -n $harness_supervisor ]] || return 0
  local status=0
  kill -TERM "$harness_supervisor" 2>/dev/null || true
  wait "$harness_supervisor" || status=$?
  harness_supervisor='' SERVICE_PID=''
  return "$status"
}

harness_cleanup() {
  local dir
  service_stop || true
  for dir in "${harness_brokers[@]}"; do
    "$HARNESS_ROOT/kafka/stop.sh" --dir "$dir" >&2 || true
  done
  for dir in "${harness_registries[@]}"; do
    "$HARNESS_ROOT/registry/stop.sh" --dir "$dir" >&2 || true
  done
  harness_brokers=() harness_registries=()
}
