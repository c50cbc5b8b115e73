#!/usr/bin/env bash
# Usage: bench/run.sh
#
# One command for the whole benchmark of issue 3: builds the service in release mode, starts a
# Kafka broker and the service of its own, drives load with oha, runs Kafka's own
# ProducerPerformance against the same broker, and prints one markdown table (also written to
# bench/results/latest.md). It leaves no broker or service behind, also on Ctrl-C.
#
# Knobs (environment):
#   BENCH_SECS         seconds of each load phase (default 8)
#   BENCH_WARMUP_SECS  seconds of warm-up before the first single-POST and batch phases (default 2)
#   BENCH_PARTITIONS   partitions of every topic, the service's and the raw producer's (default 1)
#   BENCH_BURST        events in the consumer catch-up burst (default 100000)
#   BENCH_RUNS         runs of concurrency 1 and 64, and of the floor at 1, for the spread (default 5)
#   BENCH_RUN_SECS     seconds of each of those runs (default 4)
#   BENCH_KEEP=1       keep the work dir (service log, oha reports) even when all went well
# The service keeps its default log level (info): its per-event log lines are part of what is
# measured. Its stdout goes to the work dir, bench/.run/<pid>/service.log.
#
# Budget, measured on the 2-core machine with the release build cached: broker ~4 s, idle memory
# 3 s, single POST 2 + 4 × 9 s, open loop 9 s, batch 2 + 3 × 9 s, catch-up ~3 s, raw producer
# ~13 s (two JVM runs), overload ~15 s, the five runs of c1, the floor and c64 ~70 s, the gzip
# batch ~9 s, stopping ~1 s: about 3 minutes (6 at most). The
# catch-up phase (9) runs before the raw producer (8) so that the producer has the machine to
# itself while the service's consumers are idle.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
cd "$ROOT"

SECS=${BENCH_SECS:-8}
WARMUP=${BENCH_WARMUP_SECS:-2}
PARTITIONS=${BENCH_PARTITIONS:-1}
BURST=${BENCH_BURST:-100000}
RUNS=${BENCH_RUNS:-5}
RUN_SECS=${BENCH_RUN_SECS:-4}
AUTO_COMMIT_MS=200
OHA_VERSION=1.16.0

# shellcheck source-path=SCRIPTDIR source=../scripts/harness/harness.sh
. scripts/harness/harness.sh
WORK=$BENCH/.run/$$
RESULTS=$WORK/results.json
BROKER_DIR=$WORK/kafka
SERVICE_LOG=$WORK/service.log
lag_pid=''
floor_pid=''
failures=()

log() { echo "bench [${SECONDS}s]: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
res() { python3 "$BENCH/results.py" "$RESULTS" "$@"; }
# A failure that still lets the table be printed; the run exits non-zero at the end.
fail_later() { log "FAILURE: $*"; failures+=("$*"); res note "FAILURE: $*"; }

# ---------------------------------------------------------------- cleanup
# stop_helper PID: stops a helper of ours in the background (none when PID is empty).
stop_helper() {
  [[ -n $1 ]] || return 0
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_helper "$lag_pid"
  stop_helper "$floor_pid"
  harness_cleanup
  if ((status == 130 || status == 143)) && [[ ${BENCH_KEEP:-} != 1 ]]; then
    log "interrupted"
    rm -rf "$WORK"
    rmdir "$BENCH/.run" 2>/dev/null || true
  elif ((status != 0)); then
    log "exit status $status; work dir kept: $WORK"
    [[ -f $SERVICE_LOG ]] && { log "last lines of the service log:"; tail -n 20 "$SERVICE_LOG" >&2; }
  elif [[ ${BENCH_KEEP:-} != 1 ]]; then
    rm -rf "$WORK"   # the service log reaches hundreds of MB
    rmdir "$BENCH/.run" 2>/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT
# Ctrl-C also reaches the foreground tool (oha, java) in our process group; the service and the
# broker run in the background, where SIGINT is ignored, and are stopped by cleanup.
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK" "$BENCH/results"
echo '{}' >"$RESULTS"
res set secs "$SECS"

# ---------------------------------------------------------------- 1. tools and build
log "1. build and tools"
scripts/bootstrap.sh --broker --smoke   # curl
harness_build
cargo build --release --locked --example consumer_lag --example floor
LAG_BIN=$ROOT/target/release/examples/consumer_lag
FLOOR_BIN=$ROOT/target/release/examples/floor

# oha from crates.io. 1.16.0 does not compile with --no-default-features alone (its client code
# needs one TLS feature), so take native-tls: the system OpenSSL, no extra C build.
OHA=$(command -v oha || echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha")
if ! [[ -x $OHA ]] || [[ $("$OHA" --version) != *" $OHA_VERSION"* ]]; then
  log "installing oha $OHA_VERSION (a few minutes, once)"
  cargo install oha --locked --version "$OHA_VERSION" --no-default-features --features native-tls
  OHA=${CARGO_HOME:-$HOME/.cargo}/bin/oha
fi
# 2048 connections for the overload phase, plus the service's own sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- 2. broker
log "2. starting Kafka in $BROKER_DIR"
broker_start "$BROKER_DIR"
log "broker at $BROKERS"

# ---------------------------------------------------------------- 3. service
GROUP=bench-$$-$RANDOM
TOPICS=movie-events,user-events,payment-events
log "3. starting the service, group $GROUP"
# The consumers commit every 200 ms instead of librdkafka's 5 s, so that the committed lag the
# catch-up phase measures follows the processing, not the commit timer. The service flushes and
# commits on SIGTERM within SHUTDOWN_TIMEOUT_MS (20 s by default).
service_start --log "$SERVICE_LOG" --stop-within 25 KAFKA_BROKERS="$BROKERS" \
  KAFKA_GROUP_ID="$GROUP" KAFKA_TOPIC_PREFIX='' KAFKA_TOPIC_PARTITIONS="$PARTITIONS" \
  KAFKA_CONSUMERS_ENABLED=true LOG_LEVEL=info \
  RDKAFKA_CONSUMER_AUTO_COMMIT_INTERVAL_MS="$AUTO_COMMIT_MS" || die "the service was not healthy"
service_pid=$SERVICE_PID
URL=$SERVICE_URL/api/events
res set auto_commit_ms "$AUTO_COMMIT_MS"
log "service healthy on port $SERVICE_PORT"

# Bodies: one movie event, and batches of 10, 100, 1000.
python3 "$BENCH/bodies.py" single "$WORK/single.json"
for n in 10 100 1000; do python3 "$BENCH/bodies.py" batch "$n" "$WORK/batch-$n.json"; done

# The record the service writes is the "event" of its answer, byte for byte: the raw producer
# gets records of that size.
code=$(curl -s -o "$WORK/single-answer.json" -w '%{http_code}' -X POST \
  -H 'Content-Type: application/json' --data-binary "@$WORK/single.json" "$URL/movie")
[[ $code == 201 ]] || die "POST /movie answered $code: $(cat "$WORK/single-answer.json")"
RECORD_SIZE=$(res record-size "$WORK/single-answer.json")
res set record_size "$RECORD_SIZE"
log "record value size: $RECORD_SIZE bytes"

# oha_run NAME EVENTS_PER_REQUEST BODY PATH [oha options...]: one load phase, summarised into results.
# PATH is under the service's /api/events, or a whole URL (the floor's).
oha_run() {
  local name=$1 per=$2 body=$3 target=$4
  shift 4
  [[ $target == http://* ]] || target=$URL/$target
  "$OHA" --no-tui --output-format json -o "$WORK/$name.json" -m POST -T application/json \
    -D "$body" -t 30s "$@" "$target"
  check_service
  res oha "$name" "$WORK/$name.json" "$per"
}
# A dead service would turn every later phase into connection errors: stop at once instead.
check_service() { service_alive || die "the service exited (see $SERVICE_LOG)"; }
rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$service_pid/status"; }  # kB

# ---------------------------------------------------------------- 4. idle memory
log "4. idle memory"
"$OHA" --no-tui -n 200 -c 4 -m POST -T application/json -D "$WORK/single.json" "$URL/movie" >/dev/null
sleep 2
res set rss_idle_kib "$(rss VmRSS)"

# ---------------------------------------------------------------- 5. single POST, closed loop
log "5. single POST, closed loop, ${SECS}s each"
"$OHA" --no-tui -z "${WARMUP}s" -c 16 -m POST -T application/json -D "$WORK/single.json" "$URL/movie" >/dev/null
max_rps=0
for c in 1 16 64 256; do
  # -w: requests still in flight at the deadline are waited for, not counted as aborted.
  oha_run "single_c$c" 1 "$WORK/single.json" movie -z "${SECS}s" -w -c "$c"
  r=$(res get "single_c$c.ok_rps")
  max_rps=$(python3 -c "print(max($max_rps, $r))")
done
res set max_rps "$max_rps"

# ---------------------------------------------------------------- 5b. the spread over runs
# The idle median and the loaded tail, BENCH_RUNS times each, alternating: one run can be lucky.
# Beside each c1 run, the floor (examples/floor.rs: a bare hyper server with one producer,
# acks=all, idempotent, linger 0) on the same broker, with as many tokio workers as the service
# has, on a topic of its own (its records are not events: the service's consumers would
# dead-letter them): the machine's mood changes from hour to hour, and the ratio tells what is
# the service's.
log "5b. concurrency 1 and 64, $RUNS runs of ${RUN_SECS}s each, and the floor at concurrency 1"
FLOOR_TOPIC=bench-floor-$$
kafka/tool.sh org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" --create \
  --topic "$FLOOR_TOPIC" --partitions 1 --replication-factor 1 >&2
# A free port picked as the broker's and the service's are (below the ephemeral range).
FLOOR_PORT=$(. kafka/common.sh && . kafka/lib/ports.sh && pick_port && echo "${picked[-1]}")
cpus=$(nproc)
TOKIO_WORKER_THREADS=$((cpus > 1 ? cpus - 1 : 1)) "$FLOOR_BIN" --brokers "$BROKERS" \
  --topic "$FLOOR_TOPIC" --port "$FLOOR_PORT" >"$WORK/floor.log" 2>&1 &
floor_pid=$!
FLOOR_URL=http://127.0.0.1:$FLOOR_PORT/
floor_up() { curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$WORK/single.json" "$FLOOR_URL" 2>/dev/null; }
deadline=$((SECONDS + 30))
until [[ $(floor_up) == 201 ]]; do
  ((SECONDS < deadline)) || die "the floor did not answer 201 within 30 s (see $WORK/floor.log)"
  sleep 0.2
done
res set runs "$RUNS"
res set run_secs "$RUN_SECS"
for ((i = 1; i <= RUNS; i++)); do
  oha_run "run${i}_c1" 1 "$WORK/single.json" movie -z "${RUN_SECS}s" -w -c 1
  oha_run "run${i}_floor" 1 "$WORK/single.json" "$FLOOR_URL" -z "${RUN_SECS}s" -w -c 1
  oha_run "run${i}_c64" 1 "$WORK/single.json" movie -z "${RUN_SECS}s" -w -c 64
done
stop_helper "$floor_pid"
floor_pid=''

# ---------------------------------------------------------------- 6. open loop at half the max
# The closed-loop phases leave the consumers a backlog (up to ~300,000 events after c256); the
# open loop measures the steady state at half the maximum, so it starts once that is processed.
lag_wait() {  # lag_wait TIMEOUT [--since-epoch-ms MS]
  local t=$1
  shift
  "$LAG_BIN" --brokers "$BROKERS" --group "$GROUP" --topics "$TOPICS" --timeout-secs "$t" "$@"
}
if drained=$(lag_wait 90 --since-epoch-ms "$(date +%s%3N)"); then
  log "consumers caught up before the open loop: $drained"
else
  fail_later "consumers did not drain the closed-loop phases' backlog within 90 s"
fi
RATE=$(python3 -c "print(max(1, int($max_rps / 2)))")
OPEN_CONNS=128
log "6. open loop at $RATE req/s"
res set open_loop_rate "$RATE"
res set open_loop_conns "$OPEN_CONNS"
# --latency-correction measures each request from when it was due, so a stall shows as latency
# of every request scheduled behind it (no coordinated omission).
oha_run open_loop 1 "$WORK/single.json" movie -z "${SECS}s" -w -c "$OPEN_CONNS" -q "$RATE" --latency-correction

# ---------------------------------------------------------------- 7. batch endpoint
log "7. batch endpoint"
code=$(curl -s -o "$WORK/batch-probe.json" -w '%{http_code}' -X POST \
  -H 'Content-Type: application/json' --data-binary "@$WORK/batch-10.json" "$URL/batch")
batch=false
case $code in
  201) batch=true ;;
  # Only a missing route is "not there yet"; any other refusal is a real failure.
  404) res set batch_missing "POST /api/events/batch answered 404 (not implemented in this build)"
       res note "The batch endpoint answered 404: batch rows and the batch ratio are n/a." ;;
  *) die "POST /batch (10 events) answered $code: $(head -c 2000 "$WORK/batch-probe.json")" ;;
esac
if $batch; then
  "$OHA" --no-tui -z "${WARMUP}s" -c 8 -m POST -T application/json -D "$WORK/batch-100.json" "$URL/batch" >/dev/null
  # Enough requests in flight to keep the producer busy, without ~64,000 records queued at once.
  for spec in 10:64 100:16 1000:4; do
    n=${spec%%:*} c=${spec##*:}
    res set "batch_${n}_conns" "$c"
    oha_run "batch_$n" "$n" "$WORK/batch-$n.json" batch -z "${SECS}s" -w -c "$c"
    bad=$(python3 -c "import json; d=json.load(open('$RESULTS'))['batch_$n']; \
print(sum(v for k, v in d['statuses'].items() if not k.startswith('2') and k != '503'))")
    ((bad == 0)) || fail_later "POST /batch of $n: $bad answers neither 2xx nor 503"
  done
  # The same 100 events gzip-compressed, as ingestion clients send them.
  gzip -9 -c "$WORK/batch-100.json" >"$WORK/batch-100.json.gz"
  res set batch_100_gzip_conns 16
  res set batch_100_gzip_bytes "$(stat -c %s "$WORK/batch-100.json.gz")"
  oha_run batch_100_gzip 100 "$WORK/batch-100.json.gz" batch -z "${SECS}s" -w -c 16 \
    -H 'Content-Encoding: gzip'
fi

# ---------------------------------------------------------------- 9. consumer catch-up
# Before 8 on purpose: the raw producer then runs with the service's consumers idle.
log "9. consumer catch-up: draining what the load phases left"
# The burst is measured from a lag of 0, so that its max lag and catch-up time are its own.
if drain=$(lag_wait 90 --since-epoch-ms "$(date +%s%3N)"); then
  res set drain "$drain"
  log "drained: $drain"
  log "9. burst of $BURST events"
  # The watcher polls during the burst too (so it sees the burst's max lag), but counts from the
  # burst's end, which the start file tells it.
  start_file=$WORK/burst-end
  lag_wait 60 --start-file "$start_file" >"$WORK/lag.json" &
  lag_pid=$!
  if $batch; then
    how="batch requests of 1000 at concurrency 4"
    "$OHA" --no-tui --output-format json -o "$WORK/burst.json" -n "$((BURST / 1000))" -c 4 \
      -m POST -T application/json -D "$WORK/batch-1000.json" -t 30s "$URL/batch"
    per=1000
  else
    how="single POSTs at concurrency 64 (batch endpoint n/a)"
    "$OHA" --no-tui --output-format json -o "$WORK/burst.json" -n "$BURST" -c 64 \
      -m POST -T application/json -D "$WORK/single.json" -t 30s "$URL/movie"
    per=1
  fi
  check_service
  date +%s%3N >"$start_file.tmp"
  mv "$start_file.tmp" "$start_file"
  lag_status=0
  wait "$lag_pid" || lag_status=$?
  lag_pid=''
  lag=$(cat "$WORK/lag.json")
  res oha burst "$WORK/burst.json" "$per"
  res set burst_how "$how"
  res set burst_events "$(python3 -c "print($(res get burst.ok) * $per)")"
  res set burst_secs "$(res get burst.secs)"
  res set lag "${lag:-{\}}"
  ((lag_status == 0)) || fail_later "consumer lag not back to 0 within 60 s of the burst ($lag)"
  log "catch-up: $lag"
else
  res set lag_note "backlog of the load phases not drained within 90 s; no burst"
  fail_later "consumers did not drain the load phases' backlog within 90 s"
fi

# ---------------------------------------------------------------- 8. raw Kafka producer
log "8. Kafka ProducerPerformance, records of $RECORD_SIZE bytes"
RAW_TOPIC=bench-raw-$$
kafka/tool.sh org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" --create \
  --topic "$RAW_TOPIC" --partitions "$PARTITIONS" --replication-factor 1 >&2
# Same acks and idempotence as the service's producer; linger.ms and batch.size stay the Java
# client's defaults (5 ms and 16 KiB in Kafka 4.x). The service's records also carry a key and
# four headers; these do not.
perf() {  # perf NUM_RECORDS OUT
  kafka/tool.sh org.apache.kafka.tools.ProducerPerformance --topic "$RAW_TOPIC" --num-records "$1" \
    --record-size "$RECORD_SIZE" --throughput -1 \
    --producer-props bootstrap.servers="$BROKERS" acks=all enable.idempotence=true >"$2"
}
# ProducerPerformance has no duration option: a short first run warms the JVM and the broker up
# and tells how many records make about 10 s (x 1.5: the cold first run is slower).
perf 200000 "$WORK/raw-warmup.txt"
res perf raw_warmup "$WORK/raw-warmup.txt"
RAW_RECORDS=$(python3 -c "print(min(20_000_000, max(200_000, int($(res get raw_warmup.records_per_s) * 10 * 1.5))))")
perf "$RAW_RECORDS" "$WORK/raw.txt"
res perf raw "$WORK/raw.txt"
check_service

# ---------------------------------------------------------------- 10. memory under overload
OVER_RATE=$(python3 -c "print(max(2, int(2 * $max_rps)))")
OVER_CONNS=2048
res set rss_run_hwm_kib "$(rss VmHWM)"
# Writing 5 to clear_refs resets VmHWM to the current RSS, so the peak below is this phase's.
if echo 5 >"/proc/$service_pid/clear_refs" 2>/dev/null; then
  peak_note=''
else
  peak_note="VmHWM could not be reset: the overload peak is the whole run's"
  res note "$peak_note"
fi
log "10. overload: open loop at $OVER_RATE req/s on up to $OVER_CONNS connections"
res set overload_rate "$OVER_RATE"
res set overload_conns "$OVER_CONNS"
oha_run overload 1 "$WORK/single.json" movie -z "${SECS}s" -w -c "$OVER_CONNS" -q "$OVER_RATE" --latency-correction
res set rss_overload_hwm_kib "$(rss VmHWM)"
bad=$(python3 -c "import json; d=json.load(open('$RESULTS'))['overload']; \
print(sum(v for k, v in d['statuses'].items() if k not in ('201', '503')))")
((bad == 0)) || fail_later "overload: $bad answers neither 201 nor 503"
sleep 3
res set rss_idle_after_kib "$(rss VmRSS)"

# ---------------------------------------------------------------- 11. the table
check_service
# The log is large (one line per event and stage): count, and name the commonest problems.
errors=$(grep -c ' ERROR ' "$SERVICE_LOG" || true)
warns=$(grep -c ' WARN ' "$SERVICE_LOG" || true)
top=$(grep -E ' (ERROR|WARN) ' "$SERVICE_LOG" | cut -d' ' -f2- | sed -E 's/^ +//; s/[0-9]+/N/g' |
  sort | uniq -c | sort -rn | head -5 | awk '{ n = $1; $1 = ""; printf "%s%s ×%s", (NR > 1 ? "; " : ""), n, $0 }' || true)
res note "Service log: $(wc -l <"$SERVICE_LOG") lines at LOG_LEVEL=info, $errors ERROR and $warns WARN lines${top:+ (commonest: $top)}."
res note "ProducerPerformance sends as fast as it can, so its latencies are those of a full send buffer (buffer.memory), not comparable with the HTTP latencies. The service's producer runs with its own defaults (linger.ms = KAFKA_LINGER_MS, 1 ms unless set); the records it writes also carry a key and four headers."

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
res set machine "$(nproc) CPUs, ${cpu:-unknown CPU}, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); broker on the same machine"
res set software "oha $OHA_VERSION, Apache Kafka $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' kafka/pom.xml), $(rustc --version | cut -d' ' -f1-2), $(java -version 2>&1 | head -1)"
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
  [[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || commit="$commit + uncommitted changes"
else
  commit="not a git checkout"
fi
res set commit "$commit"
res set date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
res set wall_secs "$SECONDS"
res table >"$BENCH/results/latest.md"
cat "$BENCH/results/latest.md"

service_stop || fail_later "the service did not exit 0 after SIGTERM"
((${#failures[@]} == 0)) || die "${#failures[@]} failure(s): ${failures[*]}"
log "done in ${SECONDS}s; table in bench/results/latest.md"
