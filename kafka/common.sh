# shellcheck shell=bash disable=SC2034
# Sourced by the kafka/*.sh scripts; paths hang off this file so they work from any cwd.

KAFKA_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_RUN=$KAFKA_SCRIPTS/.run
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
# Short-lived helper JVMs (format, readiness probes) start ~2x faster this way.
QUICK_JVM=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto)

# log, die, alive, run_dirs, stop_pids
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/processes.sh
. "$KAFKA_SCRIPTS/../scripts/lib/processes.sh"

# kafka_use VERSION: points the KAFKA_* paths at that version's jars. 2.x runs with ZooKeeper
# (KAFKA_MODE=zookeeper), jars from pom-2.7.xml and log4j 1.x; anything newer runs KRaft, jars
# from pom.xml and log4j 2. KAFKA_VERSION is exported so provision.sh fetches the same one.
kafka_use() {
  export KAFKA_VERSION=$1
  KAFKA_DIST=$KAFKA_SCRIPTS/.dist/$KAFKA_VERSION
  KAFKA_LIBS=$KAFKA_DIST/libs
  if [[ $KAFKA_VERSION == 2.* ]]; then
    KAFKA_MODE=zookeeper KAFKA_POM=$KAFKA_SCRIPTS/pom-2.7.xml
    KAFKA_LOG_SERVER=-Dlog4j.configuration=file:$KAFKA_SCRIPTS/log4j-server.properties
    KAFKA_LOG_TOOLS=-Dlog4j.configuration=file:$KAFKA_SCRIPTS/log4j-tools.properties
  else
    KAFKA_MODE=kraft KAFKA_POM=$KAFKA_SCRIPTS/pom.xml
    KAFKA_LOG_SERVER=-Dlog4j2.configurationFile=$KAFKA_SCRIPTS/log4j2-server.properties
    KAFKA_LOG_TOOLS=-Dlog4j2.configurationFile=$KAFKA_SCRIPTS/log4j2-tools.properties
  fi
  # "${KAFKA_JAVA[@]}" [jvm options...] main-class [args...]: logs go to stderr, stdout stays the tool's.
  KAFKA_JAVA=("$JAVA" "$KAFKA_LOG_TOOLS" -cp "$KAFKA_LIBS/*")
}
kafka_use "${KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_SCRIPTS/pom.xml")}"

# kafka_use_dir DIR: switches to the version that kafka/start.sh ran in DIR (it notes it in
# DIR/.kafka-run; an empty marker is from before that, hence the default version).
kafka_use_dir() {
  local v
  v=$(sed -n 's/^KAFKA_VERSION=//p' "$1/.kafka-run" 2>/dev/null) || true
  [[ -z $v ]] || kafka_use "$v"
}


# launch_node NODE_DIR: starts the broker configured in NODE_DIR/server.properties in the
# background, appending to its server.log, and writes its pid to NODE_DIR/kafka.pid.
# setsid: the broker gets its own session, so it outlives its caller and a Ctrl-C in its terminal.
launch_node() {
  local n=$1 launch=(setsid)
  command -v setsid >/dev/null || launch=(nohup)
  # shellcheck disable=SC2086 # KAFKA_OPTS holds several options.
  (cd "$n" && exec "${launch[@]}" "$JAVA" -Xmx512m -Xms256m -Djava.awt.headless=true ${KAFKA_OPTS-} \
    "$KAFKA_LOG_SERVER" -cp "$KAFKA_LIBS/*" kafka.Kafka "$n/server.properties" >>"$n/server.log" 2>&1 </dev/null) &
  echo "$!" >"$n/kafka.pid"
}

# node_pid NODE_DIR: the pid of NODE_DIR's running broker, or nothing (and status 1) when none
# runs; a recycled pid that now belongs to another process does not count.
node_pid() {
  local pid args
  [[ -f $1/kafka.pid ]] || return 1
  pid=$(<"$1/kafka.pid")
  args=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
  [[ $args == *"kafka.Kafka $1/server.properties"* ]] && alive "$pid" && echo "$pid"
}
