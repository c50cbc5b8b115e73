#!/usr/bin/env bash
# Usage: redis/start.sh [--port N] [--dir DIR]
#
# Starts Debian's redis-server on 127.0.0.1 in the background, with nothing persisted (no RDB,
# no AOF: a test's or a local run's state), and returns once it answers PING. stdout gets
# exactly one line, the URL (redis://127.0.0.1:PORT), so callers can do REDIS_URL=$(redis/start.sh);
# everything else goes to stderr.
#   --port N   the port (0 or absent: a free one)
#   --dir DIR  redis.log and redis.pid (default redis/.run/<port>)
# Stop with redis/stop.sh --dir DIR (or --all).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# The free-port picking that kafka/start.sh uses (port_busy, pick_port).
# shellcheck source-path=SCRIPTDIR source=../kafka/lib/ports.sh
. "$REDIS_SCRIPTS/../kafka/lib/ports.sh"

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
command -v "$REDIS_SERVER" >/dev/null || die "redis-server not found; scripts/bootstrap.sh --redis installs it (Debian: redis-server)"

if ((port == 0)); then
  while :; do
    picked=()
    pick_port
    port=${picked[0]}
    [[ -n $dir ]] && break
    # mkdir is atomic, so concurrent start.sh runs cannot both claim the same port's dir.
    mkdir -p "$REDIS_RUN"
    mkdir "$REDIS_RUN/$port" 2>/dev/null && { dir=$REDIS_RUN/$port; break; }
  done
else
  ! port_busy "$port" || die "port $port is already in use"
fi
dir=${dir:-$REDIS_RUN/$port}
if [[ -e $dir ]]; then
  ! redis_pid "$dir" >/dev/null || die "a Redis already runs in $dir (stop it with redis/stop.sh --dir $dir)"
  if [[ -f $dir/.redis-run ]]; then
    rm -rf "$dir"
  elif [[ -n $(ls -A "$dir") ]]; then
    die "$dir exists and was not created by redis/start.sh; refusing to reuse it"
  fi
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
touch "$dir/.redis-run"
url=redis://127.0.0.1:$port
log "starting $("$REDIS_SERVER" --version | cut -d' ' -f1-3) on $url in $dir"

# Daemonized by itself; its own pidfile says where it is.
"$REDIS_SERVER" --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2

for _ in {1..100}; do
  if redis_ping "$port"; then
    echo "$url"
    exit 0
  fi
  sleep 0.05
done
die "Redis did not answer PING within 5 s; see $dir/redis.log"
