# shellcheck shell=bash disable=SC2034
# Sourced by the registry/*.sh scripts; paths hang off this file so they work from any cwd.
# Apicurio Registry (its Confluent-compatible API under /apis/ccompat/v7), run as the packaged
# Quarkus application from Maven Central, in memory, on loopback.

REGISTRY_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REGISTRY_VERSION=${REGISTRY_VERSION:-3.0.9}
REGISTRY_ARTIFACT=io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all
REGISTRY_DIST=$REGISTRY_SCRIPTS/.dist/$REGISTRY_VERSION
REGISTRY_JAR=$REGISTRY_DIST/apicurio-registry-app-$REGISTRY_VERSION-runner.jar
REGISTRY_RUN=$REGISTRY_SCRIPTS/.run
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

# log, die, alive, run_dirs, stop_pids
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/processes.sh
. "$REGISTRY_SCRIPTS/../scripts/lib/processes.sh"


# registry_pid DIR: the pid of the registry that start.sh runs for DIR, or status 1 when none
# runs; a recycled pid that now belongs to another process does not count.
registry_pid() {
  local pid args
  [[ -f $1/registry.pid ]] || return 1
  pid=$(<"$1/registry.pid")
  args=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
  [[ $args == *"-Dregistry.run.dir=$1 "* ]] && alive "$pid" && echo "$pid"
}
