#!/usr/bin/env bash
# Usage: redis/stop.sh --dir DIR | --all
# Stops the Redis that redis/start.sh started in DIR (SIGTERM, then SIGKILL after 10 s) and
# deletes DIR. --all does this for everything under redis/.run and deletes redis/.run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_dirs .redis-run "$REDIS_RUN" "$@"
pids=()
for d in "${RUN_DIRS[@]}"; do
  pid=$(redis_pid "$d") && pids+=("$pid")
done
stop_pids 10 "${pids[@]}"
rm -rf "$RUN_REMOVE"
rmdir "$REDIS_RUN" 2>/dev/null || true
