# shellcheck shell=bash disable=SC2034,SC2154 # globals shared with start.sh, named below
# Sourced by kafka/start.sh, node.sh and stop.sh. ZooKeeper for Kafka 2.x: one standalone
# server (from the broker's own jars) in DIR/zookeeper on a loopback port, with its config,
# launch, pid, readiness, and waiting out a killed broker's session. It is asked through
# ZooKeeper's four-letter words (ruok, dump) over bash's /dev/tcp, so no client JVM starts.

# write_zookeeper_config ZK_DIR PORT. The AdminServer (Jetty, port 8080) stays off.
write_zookeeper_config() {
  mkdir -p "$1/data"
  cat >"$1/zookeeper.properties" <<EOT
dataDir=$1/data
clientPort=$2
clientPortAddress=127.0.0.1
tickTime=2000
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,dump
EOT
}

# launch_zookeeper ZK_DIR: starts it in the background (its own session, like launch_node),
# appending to ZK_DIR/zookeeper.log, and writes its pid to ZK_DIR/zookeeper.pid.
launch_zookeeper() {
  local z=$1 launch=(setsid)
  command -v setsid >/dev/null || launch=(nohup)
  (cd "$z" && exec "${launch[@]}" "$JAVA" -Xmx128m -Djava.awt.headless=true "$KAFKA_LOG_SERVER" \
    -cp "$KAFKA_LIBS/*" org.apache.zookeeper.server.ZooKeeperServerMain "$z/zookeeper.properties" \
    >>"$z/zookeeper.log" 2>&1 </dev/null) &
  echo "$!" >"$z/zookeeper.pid"
}

# zookeeper_pid ZK_DIR: the pid of ZK_DIR's running ZooKeeper, or status 1 (as node_pid).
zookeeper_pid() {
  local pid args
  [[ -f $1/zookeeper.pid ]] || return 1
  pid=$(<"$1/zookeeper.pid")
  args=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
  [[ $args == *"ZooKeeperServerMain $1/zookeeper.properties"* ]] && alive "$pid" && echo "$pid"
}

zookeeper_port() { sed -n 's/^clientPort=//p' "$1/zookeeper.properties"; }

# zk_ask PORT WORD: ZooKeeper's answer to a four-letter word (it closes the connection after it).
zk_ask() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf %s "$2" >&3 && timeout 2 cat <&3) 2>/dev/null
}

# wait_zookeeper ZK_DIR DEADLINE: returns once ZooKeeper answers ruok; dies if it exits first
# or DEADLINE (in $SECONDS) passes.
wait_zookeeper() {
  local pid port
  pid=$(<"$1/zookeeper.pid") port=$(zookeeper_port "$1")
  until [[ $(zk_ask "$port" ruok) == imok ]]; do
    alive "$pid" || die "ZooKeeper exited during startup; see $1/zookeeper.log"
    ((SECONDS < $2)) || die "ZooKeeper not answering after ${SECONDS}s; see $1/zookeeper.log"
    sleep 0.1
  done
}

# wait_broker_session_gone ZK_DIR BROKER_ID DEADLINE: a broker killed with SIGKILL leaves its
# /brokers/ids/N registration until ZooKeeper expires its session (zookeeper.session.timeout.ms,
# 18 s by default); a broker restarted before then would find the node taken and exit.
wait_broker_session_gone() {
  local port out
  port=$(zookeeper_port "$1")
  while :; do
    out=$(zk_ask "$port" dump) || die "ZooKeeper on port $port does not answer"
    grep -q "^[[:space:]]*/brokers/ids/$2\$" <<<"$out" || return 0
    ((SECONDS < $3)) || die "broker $2's ZooKeeper session still open after ${SECONDS}s"
    sleep 0.2
  done
}
