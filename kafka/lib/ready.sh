# shellcheck shell=bash disable=SC2034,SC2154 # globals shared with start.sh, named below
# Sourced by kafka/start.sh. Readiness, and what happens when it does not come: waits, polling
# until the KAFKA_START_TIMEOUT deadline, for the listeners and then for a metadata request
# that lists every node; if start.sh exits before it is ready, shows the end of each log and
# kills what it launched (the logs stay in DIR).
# Reads: nodes, brokers, bootstrap_list, dir, deadline, KAFKA_MODE. Uses: pids (the brokers'),
# zk_pid and zk_dir (ZooKeeper's, if any), started.

pids=() zk_pid='' zk_dir='' started=false
# on_exit: start.sh's EXIT trap.
on_exit() {
  $started && return
  local f logs=()
  for f in "${nodes[@]}"; do logs+=("$f/server.log"); done
  [[ -z $zk_dir ]] || logs+=("$zk_dir/zookeeper.log")
  for f in "${logs[@]}"; do
    if [[ -f $f ]]; then
      log "--- last lines of $f ---"
      tail -n 25 "$f" | cut -c1-400 >&2
    fi
  done
  ((${#pids[@]})) && { kill -KILL "${pids[@]}" 2>/dev/null || true; }
  [[ -z $zk_pid ]] || kill -KILL "$zk_pid" 2>/dev/null || true
  log "failed; logs kept in $dir (kafka/stop.sh --dir $dir removes it)"
}

# check_alive: dies if a launched process exited or the deadline passed.
check_alive() {
  local i
  for ((i = 0; i < brokers; i++)); do
    alive "${pids[i]}" || die "broker in ${nodes[i]} exited during startup"
  done
  if [[ -n $zk_pid ]]; then alive "$zk_pid" || die "ZooKeeper in $zk_dir exited"; fi
  ((SECONDS < deadline)) || die "not ready after ${deadline}s"
}

# wait_listeners PORT...: polling a TCP port is nearly free, so no probe JVM starts before the
# listeners are up.
wait_listeners() {
  local p
  for p; do
    until (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
      check_alive
      sleep 0.2
    done
  done
}

# wait_metadata: ready = every node shows up in a metadata response and answers ApiVersions
# (with KRaft, unfenced too). Kafka 2.x has the command in core, and no fencing.
wait_metadata() {
  local tool=org.apache.kafka.tools.BrokerApiVersionsCommand node='(id: [0-9]* rack: .*isFenced: false'
  [[ $KAFKA_MODE == kraft ]] || tool=kafka.admin.BrokerApiVersionsCommand node='(id: [0-9]* rack: '
  local out
  printf '%s\n' request.timeout.ms=3000 default.api.timeout.ms=5000 >"$dir/probe.properties"
  until out=$(timeout $((deadline > SECONDS ? deadline - SECONDS : 1)) "${KAFKA_JAVA[@]}" "${QUICK_JVM[@]}" \
    "$tool" --bootstrap-server "$bootstrap_list" --command-config "$dir/probe.properties" 2>/dev/null) &&
    (($(grep -c "$node" <<<"$out") == brokers)); do
    check_alive
    sleep 0.2
  done
}
