# shellcheck shell=bash disable=SC2034
# Sourced by the redis/*.sh scripts; paths hang off this file so they work from any cwd.

REDIS_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REDIS_RUN=$REDIS_SCRIPTS/.run
REDIS_SERVER=${REDIS_SERVER:-redis-server}

# log, die, alive, run_dirs, stop_pids
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/processes.sh
. "$REDIS_SCRIPTS/../scripts/lib/processes.sh"

# redis_pid DIR: the pid of the Redis running in DIR; fails when none runs.
redis_pid() {
  local pid
  pid=$(cat "$1/redis.pid" 2>/dev/null) || return 1
  alive "$pid" && echo "$pid"
}

# redis_ping PORT: whether a Redis answers PING on 127.0.0.1:PORT (bash's /dev/tcp, no client needed).
redis_ping() {
  local reply
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 1 reply <&3 || true
  exec 3>&-
  [[ $reply == +PONG* ]]
}
