#!/usr/bin/env bash
# Usage: registry/stop.sh --dir DIR | --all
# Stops the registry that registry/start.sh started in DIR (SIGTERM, then SIGKILL after 20 s)
# and deletes DIR. --all does this for everything under registry/.run and deletes registry/.run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_dirs .registry-run "$REGISTRY_RUN" "$@"
pids=()
for d in "${RUN_DIRS[@]}"; do
  pid=$(registry_pid "$(cd "$d" && pwd -P)") && pids+=("$pid")
done
stop_pids 20 "${pids[@]}"
rm -rf "$RUN_REMOVE"
# Leaves no empty registry/.run behind either; fails harmlessly while other runs live there.
rmdir "$REGISTRY_RUN" 2>/dev/null || true
