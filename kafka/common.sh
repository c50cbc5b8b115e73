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
