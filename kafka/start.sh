#!/usr/bin/env bash
# Usage: kafka/start.sh [--port N] [--dir DIR] [--auto-create true|false] [--brokers 1|3] [--security]
#                       [--proxied] [--kafka 4.1|2.7]
#
# Starts a KRaft Kafka on 127.0.0.1 in the background (each node is broker+controller;
# with --kafka 2.7, a ZooKeeper and its brokers) and returns once it serves metadata.
# stdout gets exactly one line, the bootstrap list, so callers can do
# BROKERS=$(kafka/start.sh); everything else goes to stderr.
#   --port N         PLAINTEXT port (0 or absent: a free one; with --brokers 3: N, N+1, N+2)
#   --dir DIR        node state, server.log and kafka.pid (default kafka/.run/<port>)
#   --auto-create    auto.create.topics.enable (default false)
#   --brokers 1|3    3 = a cluster with replication factor 3, min.insync.replicas 2
#   --security       also a SASL_SSL listener per node (SCRAM-SHA-256 over TLS), beside the
#                    PLAINTEXT one that brokers, controllers and tools keep using. A CA and a
#                    certificate for 127.0.0.1/localhost are made in DIR/tls at every start, the
#                    user at storage format. What clients need goes to DIR/security.env
#                    (shell syntax): KAFKA_SASL_SSL_BROKERS (its bootstrap list),
#                    KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD (random)
#                    and KAFKA_SSL_CA_LOCATION (DIR/tls/ca.pem, to verify the broker); and, for
#                    kafka/tool.sh's --command-config, DIR/sasl-ssl.properties.
#   --proxied        also a PLAINTEXT listener per node that advertises a port nobody listens on
#                    yet, for a TCP proxy of the caller's to open in front of it, so that every
#                    connection of a client bootstrapped there goes through the proxy (the fault
#                    suite cuts one service instance off from its broker this way). DIR/proxied.env
#                    (shell syntax) names them, node by node in the same order:
#                    KAFKA_PROXIED_BROKERS (the advertised addresses, where the proxy listens)
#                    and KAFKA_PROXIED_UPSTREAMS (the listeners, where it forwards to).
#   --kafka V        the Kafka version: 4.1 (4.1.1, the default: pom.xml, or $KAFKA_VERSION), 2.7
#                    (2.7.0), or a full version such as 4.0.0. Kafka 2.x runs in ZooKeeper mode,
#                    as the CinemaAbyss platform does: a ZooKeeper 3.5 (from the broker's jars) in
#                    DIR/zookeeper on a free loopback port, then the broker(s) with
#                    zookeeper.connect; --brokers 3 and --security work there too (the SCRAM user
#                    goes into ZooKeeper). Its jars come from pom-2.7.xml into kafka/.dist/2.7.0.
# KAFKA_OPTS is appended to the broker's JVM options; KAFKA_START_TIMEOUT (default 60 s)
# bounds the wait. Stop with kafka/stop.sh --dir DIR.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# One job each (lib/*.sh): free ports and DIR; the CA and certificates; the SCRAM user; the nodes'
# server.properties; ZooKeeper (Kafka 2.x); readiness and the failure report.
# shellcheck source-path=SCRIPTDIR source=lib/ports.sh
. "$KAFKA_SCRIPTS/lib/ports.sh"
# shellcheck source-path=SCRIPTDIR source=lib/tls.sh
. "$KAFKA_SCRIPTS/lib/tls.sh"
# shellcheck source-path=SCRIPTDIR source=lib/scram.sh
. "$KAFKA_SCRIPTS/lib/scram.sh"
# shellcheck source-path=SCRIPTDIR source=lib/config.sh
. "$KAFKA_SCRIPTS/lib/config.sh"
# shellcheck source-path=SCRIPTDIR source=lib/zookeeper.sh
. "$KAFKA_SCRIPTS/lib/zookeeper.sh"
# shellcheck source-path=SCRIPTDIR source=lib/ready.sh
. "$KAFKA_SCRIPTS/lib/ready.sh"

port=0 dir='' auto_create=false brokers=1 security=false proxied=false version=''
while (($#)); do
  case $1 in
    --port) port=${2-}; shift 2 || usage ;;
    --dir) dir=${2-}; shift 2 || usage ;;
    --auto-create) auto_create=${2-}; shift 2 || usage ;;
    --brokers) brokers=${2-}; shift 2 || usage ;;
    --security) security=true; shift ;;
    --proxied) proxied=true; shift ;;
    --kafka) version=${2-}; shift 2 || usage ;;
    -h | --help) usage 0 ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((port > 65533)); then die "--port must be a port number, got '$port'"; fi
[[ $auto_create == true || $auto_create == false ]] || die "--auto-create must be true or false"
[[ $brokers == 1 || $brokers == 3 ]] || die "--brokers must be 1 or 3"
case $version in
  '') ;;
  2.7) kafka_use 2.7.0 ;;
  4.1) kafka_use 4.1.1 ;;
  *.*.*) [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--kafka must be 4.1, 2.7 or a version like 4.0.0"
    kafka_use "$version" ;;
  *) die "--kafka must be 4.1, 2.7 or a version like 4.0.0, got '$version'" ;;
esac
if $security; then command -v openssl >/dev/null || die "--security needs openssl"; fi

"$KAFKA_SCRIPTS/provision.sh" >&2
SECONDS=0
deadline=${KAFKA_START_TIMEOUT:-60}  # seconds; raise it on a slow machine

claim_ports
plan_nodes
if [[ $KAFKA_MODE == zookeeper ]]; then
  pick_port
  zk_port=${picked[-1]} zk_dir=$dir/zookeeper
fi
log "starting Kafka $KAFKA_VERSION ($brokers node(s)) on $bootstrap_list in $dir${zk_dir:+ (ZooKeeper on 127.0.0.1:$zk_port)}"
trap on_exit EXIT

if $security; then
  make_tls "$dir/tls"
  ca=$dir/tls/ca.pem
  [[ $KAFKA_MODE == kraft ]] || make_tls_encrypted_key "$dir/tls"
  make_sasl_user "$dir" "$ca"
fi
for ((i = 0; i < brokers; i++)); do write_server_properties "$i"; done

if [[ $KAFKA_MODE == kraft ]]; then
  format_storage
else
  write_zookeeper_config "$zk_dir" "$zk_port"
  launch_zookeeper "$zk_dir"
  zk_pid=$(<"$zk_dir/zookeeper.pid")
  wait_zookeeper "$zk_dir" "$deadline"
  if $security; then add_scram_user_zookeeper "127.0.0.1:$zk_port" "$zk_dir/scram.log"; fi
fi

for n in "${nodes[@]}"; do
  launch_node "$n"
  pids+=("$(<"$n/kafka.pid")")
done

wait_listeners "${bports[@]}" "${sports[@]}" "${pports[@]}"
wait_metadata

if $security; then
  verify_tls "$ca" "${sports[@]}"
  write_security_env "$dir" "$ca" "$sasl_list"
  log "SASL_SSL listener on $sasl_list; client settings in $dir/security.env"
fi
if $proxied; then write_proxied_env "$dir"; fi
started=true
log "ready after ${SECONDS}s (pids ${pids[*]}${zk_pid:+; ZooKeeper $zk_pid})"
echo "$bootstrap_list"
