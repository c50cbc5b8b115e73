#!/usr/bin/env bash
# Usage: kafka/node.sh --dir DIR [--node N] kill|start
#
# Fails or revives one node of a broker (or cluster) that kafka/start.sh started in DIR, keeping
# its data: the fault suite's way of crashing a broker and bringing it back.
#   --node N   the node id in a 3-node cluster (1, 2 or 3); omit it for a single broker
#   kill       SIGKILL the node and wait until it is gone
#   start      relaunch the node from its server.properties on the data it had, and wait until
#              its listener accepts connections (it may still be catching up on replication).
#              With Kafka 2.x (ZooKeeper mode; ZooKeeper itself is never killed) it first waits
#              until ZooKeeper has expired the killed broker's session (up to 18 s after the
#              kill), as a broker restarted earlier would find its id taken and exit.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source-path=SCRIPTDIR source=lib/zookeeper.sh
. "$KAFKA_SCRIPTS/lib/zookeeper.sh"

dir='' node='' action=''
while (($#)); do
  case $1 in
    --dir) dir=${2-}; shift 2 || usage ;;
    --node) node=${2-}; shift 2 || usage ;;
    kill | start) action=$1; shift ;;
    *) usage ;;
  esac
done
[[ -n $dir && -n $action ]] || usage
[[ -f $dir/.kafka-run ]] || die "$dir was not created by kafka/start.sh"
dir=$(cd "$dir" && pwd -P)
kafka_use_dir "$dir"
n=$dir${node:+/node-$node}
[[ -f $n/server.properties ]] || die "no node in $n"

case $action in
  kill)
    pid=$(node_pid "$n") || die "no broker runs in $n"
    kill -KILL "$pid"
    SECONDS=0
    while alive "$pid"; do
      ((SECONDS < 10)) || die "pid $pid survived SIGKILL"
      sleep 0.05
    done
    log "killed node ${node:-1} (pid $pid)" ;;
  start)
    ! node_pid "$n" >/dev/null || die "a broker already runs in $n"
    port=$(sed -n 's/^listeners=PLAINTEXT:\/\/[^:]*:\([0-9]*\).*/\1/p' "$n/server.properties")
    if [[ $KAFKA_MODE == zookeeper ]]; then
      SECONDS=0
      zookeeper_pid "$dir/zookeeper" >/dev/null || die "ZooKeeper in $dir/zookeeper is not running"
      id=$(sed -n 's/^broker\.id=//p' "$n/server.properties")
      wait_broker_session_gone "$dir/zookeeper" "$id" $((SECONDS + ${KAFKA_START_TIMEOUT:-60}))
      ((SECONDS == 0)) || log "ZooKeeper expired broker $id's session after ${SECONDS}s"
    fi
    launch_node "$n"
    pid=$(<"$n/kafka.pid")
    SECONDS=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
      alive "$pid" || die "node ${node:-1} exited during startup; see $n/server.log"
      ((SECONDS < ${KAFKA_START_TIMEOUT:-60})) || die "node ${node:-1} not listening after ${SECONDS}s"
      sleep 0.1
    done
    log "started node ${node:-1} (pid $pid) on port $port" ;;
esac
