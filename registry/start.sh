#!/usr/bin/env bash
# Usage: registry/start.sh [--port N] [--dir DIR]
#
# Starts Apicurio Registry (in-memory storage) on 127.0.0.1 in the background and returns once
# its Confluent-compatible API answers GET /apis/ccompat/v7/subjects with 200. stdout gets
# exactly one line, the base URL (http://127.0.0.1:PORT), so callers can do
# REGISTRY=$(registry/start.sh); everything else goes to stderr. Clients of the Confluent
# Schema Registry API use $REGISTRY/apis/ccompat/v7. Provisions it first (registry/provision.sh).
#   --port N   HTTP port (0 or absent: a free one)
#   --dir DIR  registry.log and registry.pid (default registry/.run/<port>)
# The schemas live in memory: they are gone when the registry stops. REGISTRY_OPTS is appended
# to the JVM options (e.g. -Dapicurio.ccompat.legacy-id-mode.enabled=true);
# REGISTRY_START_TIMEOUT (default 60 s) bounds the wait. Stop with registry/stop.sh --dir DIR.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# The free-port picking that kafka/start.sh uses (port_busy, pick_port).
# shellcheck source-path=SCRIPTDIR source=../kafka/lib/ports.sh
. "$REGISTRY_SCRIPTS/../kafka/lib/ports.sh"

port=0 dir=''
while (($#)); do
  case $1 in
    --port) port=${2-}; shift 2 || usage ;;
    --dir) dir=${2-}; shift 2 || usage ;;
    -h | --help) usage 0 ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((port > 65535)); then die "--port must be a port number, got '$port'"; fi
command -v curl >/dev/null || die "curl not found; it checks that the registry answers"

"$REGISTRY_SCRIPTS/provision.sh" >&2
SECONDS=0
deadline=${REGISTRY_START_TIMEOUT:-60}  # seconds

if ((port == 0)); then
  while :; do
    picked=()
    pick_port
    port=${picked[0]}
    [[ -n $dir ]] && break
    # mkdir is atomic, so concurrent start.sh runs cannot both claim the same port's dir.
    mkdir -p "$REGISTRY_RUN"
    mkdir "$REGISTRY_RUN/$port" 2>/dev/null && { dir=$REGISTRY_RUN/$port; break; }
  done
else
  ! port_busy "$port" || die "port $port is already in use"
fi
dir=${dir:-$REGISTRY_RUN/$port}
# Refuses to wipe anything start.sh did not create, or a dir whose registry still runs.
if [[ -e $dir ]]; then
  ! registry_pid "$(cd "$dir" && pwd -P)" >/dev/null ||
    die "a registry already runs in $dir (stop it with registry/stop.sh --dir $dir)"
  if [[ -f $dir/.registry-run ]]; then
    rm -rf "$dir"
  elif [[ -n $(ls -A "$dir") ]]; then
    die "$dir exists and was not created by registry/start.sh; refusing to reuse it"
  fi
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
touch "$dir/.registry-run"
url=http://127.0.0.1:$port
log "starting Apicurio Registry $REGISTRY_VERSION on $url in $dir"

# setsid: the registry gets its own session, so it outlives its caller and a Ctrl-C in its
# terminal. The management interface (health, metrics) gets a port of its own: 0, any free one.
launch=(setsid)
command -v setsid >/dev/null || launch=(nohup)
# shellcheck disable=SC2086 # REGISTRY_OPTS holds several options.
(cd "$dir" && exec "${launch[@]}" "$JAVA" -Xms64m -Xmx256m -Djava.awt.headless=true \
  -Dregistry.run.dir="$dir" -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
  -Dquarkus.management.port=0 ${REGISTRY_OPTS-} -jar "$REGISTRY_JAR" >>"$dir/registry.log" 2>&1 </dev/null) &
pid=$!
echo "$pid" >"$dir/registry.pid"

started=false
on_exit() {
  $started && return
  if [[ -f $dir/registry.log ]]; then
    log "--- last lines of $dir/registry.log ---"
    tail -n 25 "$dir/registry.log" | cut -c1-400 >&2
  fi
  kill -KILL "$pid" 2>/dev/null || true
  log "failed; log kept in $dir (registry/stop.sh --dir $dir removes it)"
}
trap on_exit EXIT

# Ready = the API answers (a listening port alone is not: Quarkus opens it late anyway).
until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/apis/ccompat/v7/subjects") == 200 ]]; do
  alive "$pid" || die "the registry exited during startup"
  ((SECONDS < deadline)) || die "the registry does not answer after ${deadline}s"
  sleep 0.1
done
started=true
log "ready after ${SECONDS}s (pid $pid)"
echo "$url"
