#!/usr/bin/env bash
# Usage: bench/confined.sh   (as root: it makes a cgroup)
#
# The service within the CinemaAbyss platform's limits (its chart gives the events service 300m
# of CPU and 256Mi of memory): the service runs in a cgroup of its own with a CPU quota of
# CONFINED_CPU_PERCENT (30) percent of one CPU and CONFINED_MEMORY (256M) of memory, swap
# included, against a broker of its own outside the cgroup, and oha drives single POSTs at
# concurrency 1 and 64, then hostile bodies: 100 connections posting 878 KiB movies (a valid
# event plus a large array in an unknown field) as fast as they are answered. It prints a
# markdown table (also written to bench/results/confined.md): throughput, latencies, the answers,
# the cgroup's peak memory and whether the kernel had to reclaim or kill (failcnt, OOM kills).
#
#   CONFINED_SECS  seconds of each load phase (default 8)
# cgroup v1 (cpu and memory hierarchies, as on the machine this was written on) or v2.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$BENCH/.."
SECS=${CONFINED_SECS:-8}
CPU_PERCENT=${CONFINED_CPU_PERCENT:-30}
MEMORY=${CONFINED_MEMORY:-256M}
OHA=$(command -v oha || echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha")
[[ -x $OHA ]] || { echo "confined: oha not found (bench/run.sh installs it)" >&2; exit 1; }
((EUID == 0)) || { echo "confined: making a cgroup needs root" >&2; exit 1; }

# shellcheck source-path=SCRIPTDIR source=../scripts/harness/harness.sh
. scripts/harness/harness.sh
work=$(mktemp -d)
name=events-service-confined-$$
if [[ -e /sys/fs/cgroup/cgroup.controllers ]]; then
  groups=("/sys/fs/cgroup/$name")
  mkdir "${groups[0]}"
  echo "$((CPU_PERCENT * 1000)) 100000" >"${groups[0]}/cpu.max"
  echo "$MEMORY" >"${groups[0]}/memory.max"
  echo 0 >"${groups[0]}/memory.swap.max"
  peak() { cat "${groups[0]}/memory.peak"; }
  pressure() { awk '$1 == "max" || $1 == "oom_kill" { printf "%s %s; ", $1, $2 }' "${groups[0]}/memory.events"; }
else
  groups=("/sys/fs/cgroup/cpu/$name" "/sys/fs/cgroup/memory/$name")
  mkdir "${groups[@]}"
  echo 100000 >"${groups[0]}/cpu.cfs_period_us"
  echo "$((CPU_PERCENT * 1000))" >"${groups[0]}/cpu.cfs_quota_us"
  echo "$MEMORY" >"${groups[1]}/memory.limit_in_bytes"
  [[ ! -e ${groups[1]}/memory.memsw.limit_in_bytes ]] || echo "$MEMORY" >"${groups[1]}/memory.memsw.limit_in_bytes"
  peak() { cat "${groups[1]}/memory.max_usage_in_bytes"; }
  pressure() {
    printf 'failcnt %s; oom_kill %s' "$(cat "${groups[1]}/memory.failcnt")" \
      "$(awk '$1 == "oom_kill" { print $2 }' "${groups[1]}/memory.oom_control")"
  }
fi
finish() {
  harness_cleanup
  for group in "${groups[@]}"; do rmdir "$group" 2>/dev/null || true; done
  rm -rf "$work"
}
trap finish EXIT

harness_build
broker_start "$work/kafka" --auto-create false >/dev/null
# The service puts itself in the cgroup before it starts: every thread it makes is confined.
# shellcheck disable=SC2016 # expanded by the inner shell
service_start --log "$work/service.log" KAFKA_BROKERS="$BROKERS" -- \
  sh -c 'for g in "$@"; do echo $$ >"$g/cgroup.procs"; done; exec "$0"' \
  "$SERVICE_BINARY" "${groups[@]}"
mib() { awk -v b="$1" 'BEGIN { printf "%.0f MiB", b / 1048576 }'; }
rows=()
# phase NAME BODY CONCURRENCY: one oha run; a row of the table.
phase() {
  local name=$1 body=$2 c=$3 out=$work/$1.json
  "$OHA" --no-tui --output-format json -o "$out" -z "${SECS}s" -w -c "$c" -t 30s -m POST \
    -T application/json -D "$body" "$SERVICE_URL/api/events/movie" >/dev/null
  service_alive || { echo "confined: the service died in $name (see $work/service.log)" >&2; exit 1; }
  rows+=("$(python3 - "$out" "$name" "$c" "$(mib "$(peak)")" "$(pressure)" <<'PY'
import json, sys
out, name, c, peak, pressure = sys.argv[1:]
d = json.load(open(out))
s, p = d["summary"], d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
ok = sum(v for k, v in codes.items() if k.startswith("2"))
answers = ", ".join(f"{k}: {v:,}" for k, v in sorted(codes.items()))
kinds = d.get("errorDistribution", {})
errors = "; ".join(f"{k} ×{v:,}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])) or "0"
rps = ok / s["total"] if s["total"] else 0
print(f"| {name} | {c} | {rps:,.0f} req/s | {p['p50'] * 1000:.2f} | {p['p99'] * 1000:.2f} "
      f"| {answers}; client errors: {errors} | {peak} | {pressure} |")
PY
)")
}
echo '{"movie_id": 1, "title": "Confined", "action": "viewed", "user_id": 7}' >"$work/single.json"
python3 - "$work/hostile.json" <<'PY'
import json, sys
# 878 KiB: a valid movie and a large array in a field the schema does not know.
body = {"movie_id": 1, "title": "Hostile", "action": "viewed", "extra": [1234567] * 112_000}
json.dump(body, open(sys.argv[1], "w"), separators=(",", ":"))
PY
"$OHA" --no-tui -z 2s -c 16 -m POST -T application/json -D "$work/single.json" \
  "$SERVICE_URL/api/events/movie" >/dev/null
idle=$(mib "$(peak)")
phase "single POST" "$work/single.json" 1
phase "single POST" "$work/single.json" 64
phase "878 KiB bodies" "$work/hostile.json" 100
service_stop || { echo "confined: the service did not exit 0 on SIGTERM" >&2; exit 1; }

{
  echo "Confined to ${CPU_PERCENT}% of one CPU and $MEMORY (swap included), $SECS s per phase; peak"
  echo "memory is the cgroup's high-water mark since the start (after a 2 s warm-up: $idle)."
  echo
  echo "| Load | Concurrency | Throughput (2xx) | p50 ms | p99 ms | Answers | Peak memory | Memory pressure |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "$(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $(uname -sr)"
} | tee "$BENCH/results/confined.md"
