# shellcheck shell=bash disable=SC2034
# Sourced by the kafka/*.sh scripts; paths hang off this file so they work from any cwd.

KAFKA_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_VERSION=${KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_SCRIPTS/pom.xml")}
KAFKA_DIST=$KAFKA_SCRIPTS/.dist/$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_DIST/libs
KAFKA_RUN=$KAFKA_SCRIPTS/.run
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
# Short-lived helper JVMs (format, readiness probes) start ~2x faster this way.
QUICK_JVM=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto)

log() { echo "${0##*/}: $*" >&2; }
die() { log "$*"; exit 1; }

# A dead child stays a zombie until reaped, and kill -0 still succeeds on it.
alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

# "${KAFKA_JAVA[@]}" [jvm options...] main-class [args...]: log4j goes to stderr, stdout stays the tool's.
KAFKA_JAVA=("$JAVA" -Dlog4j2.configurationFile="$KAFKA_SCRIPTS/log4j2-tools.properties" -cp "$KAFKA_LIBS/*")

# launch_node NODE_DIR: starts the broker configured in NODE_DIR/server.properties in the
# background, appending to its server.log, and writes its pid to NODE_DIR/kafka.pid.
# setsid: the broker gets its own session, so it outlives its caller and a Ctrl-C in its terminal.
launch_node() {
  local n=$1 launch=(setsid)
  command -v setsid >/dev/null || launch=(nohup)
  # shellcheck disable=SC2086 # KAFKA_OPTS holds several options.
  (cd "$n" && exec "${launch[@]}" "$JAVA" -Xmx512m -Xms256m -Djava.awt.headless=true ${KAFKA_OPTS-} \
    -Dlog4j2.configurationFile="$KAFKA_SCRIPTS/log4j2-server.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$n/server.properties" >>"$n/server.log" 2>&1 </dev/null) &
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
