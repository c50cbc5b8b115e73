# shellcheck shell=bash disable=SC2034,SC2154 # globals shared with start.sh, named below
# Sourced by kafka/start.sh (and by registry/start.sh, for port_busy and pick_port). Free ports
# and the run directory: picks loopback ports that no socket uses, claims DIR for a run
# (kafka/.run/<first port> unless --dir), and refuses to wipe a DIR that start.sh did not make
# or whose broker or ZooKeeper still runs.
# Reads: port, brokers, dir. Sets: picked, bports, dir (absolute, with the .kafka-run marker).

# Linux lists every bound or connected socket in /proc/net/tcp*; elsewhere fall back to a connect probe.
# A socket left in TIME_WAIT (state 06) by a broker that just stopped does not count: the
# broker binds with SO_REUSEADDR.
port_busy() {
  local hex
  hex=$(printf ':%04X' "$1")
  awk -v port="$hex" '$4 != "06" && ($2 ~ port "$" || $3 ~ port "$") { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null ||
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

picked=()
# pick_port: appends a free port to picked (its last element), never one picked before.
# Stays below Linux's ephemeral range (32768+) so client sockets cannot grab the port first.
pick_port() {
  local p
  for _ in {1..500}; do
    p=$((20000 + RANDOM % 12000))
    [[ " ${picked[*]} " == *" $p "* ]] || port_busy "$p" || { picked+=("$p"); return 0; }
  done
  die "found no free port"
}

# prepare_dir DIR: an empty DIR, made anew if an earlier start.sh run left it.
prepare_dir() {
  local d=$1 pidfile
  if [[ -e $d ]]; then
    while IFS= read -r pidfile; do
      ! alive "$(<"$pidfile")" || die "a broker already runs in $d (stop it with kafka/stop.sh --dir $d)"
    done < <(find "$d" -maxdepth 2 \( -name kafka.pid -o -name zookeeper.pid \))
    if [[ -f $d/.kafka-run ]]; then
      rm -rf "$d"
    elif [[ -n $(ls -A "$d") ]]; then
      die "$d exists and was not created by start.sh; refusing to reuse it"
    fi
  fi
  mkdir -p "$d"
}

# claim_ports: the nodes' PLAINTEXT ports (--port N: N, N+1, ...; else free ones) and DIR.
claim_ports() {
  local i p
  bports=()
  if ((port == 0)); then
    while :; do
      picked=()
      for ((i = 0; i < brokers; i++)); do pick_port; done
      bports=("${picked[@]}")
      [[ -n $dir ]] && break
      # mkdir is atomic, so concurrent start.sh runs cannot both claim the same port's dir.
      mkdir -p "$KAFKA_RUN"
      mkdir "$KAFKA_RUN/${bports[0]}" 2>/dev/null && { dir=$KAFKA_RUN/${bports[0]}; break; }
    done
  else
    for ((i = 0; i < brokers; i++)); do
      p=$((port + i))
      ! port_busy "$p" || die "port $p is already in use"
      bports+=("$p") picked+=("$p")
    done
  fi
  dir=${dir:-$KAFKA_RUN/${bports[0]}}
  prepare_dir "$dir"
  dir=$(cd "$dir" && pwd -P)
  # The marker (see stop.sh) also tells node.sh and stop.sh which Kafka runs here.
  echo "KAFKA_VERSION=$KAFKA_VERSION" >"$dir/.kafka-run"
}
