# shellcheck shell=bash disable=SC2034,SC2154 # globals shared with start.sh, named below
# Sourced by kafka/start.sh. The nodes' layout and configuration: each node's directory and
# ports, the bootstrap lists, and its server.properties (KRaft broker+controller for Kafka 4.x,
# a ZooKeeper-mode broker for 2.x); for KRaft also the cluster id and the storage format.
# Reads: brokers, bports, dir, security, proxied, auto_create, KAFKA_MODE, picked (via pick_port); for
# ZooKeeper mode zk_port, and with --security there tls_key_password (tls.sh).

# plan_nodes: sets nodes, cports (KRaft controllers), sports (SASL_SSL), pports and aports
# (--proxied: the listeners and the ports they advertise), rf, min_isr and the comma-separated
# bootstrap_list, voters_list and sasl_list.
plan_nodes() {
  local i
  cports=() sports=() pports=() aports=() nodes=()
  local voters=() bootstrap=() sasl_bootstrap=()
  for ((i = 0; i < brokers; i++)); do
    if [[ $KAFKA_MODE == kraft ]]; then
      pick_port
      cports+=("${picked[-1]}")
      voters+=("$((i + 1))@127.0.0.1:${cports[i]}")
    fi
    if $security; then
      pick_port
      sports+=("${picked[-1]}")
      sasl_bootstrap+=("127.0.0.1:${sports[i]}")
    fi
    if $proxied; then
      pick_port
      pports+=("${picked[-1]}")
      pick_port
      aports+=("${picked[-1]}")
    fi
    bootstrap+=("127.0.0.1:${bports[i]}")
    if ((brokers == 1)); then nodes+=("$dir"); else nodes+=("$dir/node-$((i + 1))"); fi
  done
  if ((brokers == 1)); then rf=1 min_isr=1; else rf=3 min_isr=2; fi
  bootstrap_list=$(IFS=,; echo "${bootstrap[*]}")
  voters_list=$(IFS=,; echo "${voters[*]}")
  sasl_list=$(IFS=,; echo "${sasl_bootstrap[*]}")
}

# write_server_properties I: node I's (0-based) NODE_DIR/server.properties.
write_server_properties() {
  local i=$1 n=${nodes[$1]} listeners advertised protocols
  mkdir -p "$n"
  listeners=PLAINTEXT://127.0.0.1:${bports[i]}
  advertised=PLAINTEXT://127.0.0.1:${bports[i]}
  protocols=PLAINTEXT:PLAINTEXT
  if [[ $KAFKA_MODE == kraft ]]; then
    listeners+=,CONTROLLER://127.0.0.1:${cports[i]}
    protocols+=,CONTROLLER:PLAINTEXT
  fi
  if $security; then
    listeners+=,SASL_SSL://127.0.0.1:${sports[i]}
    advertised+=,SASL_SSL://127.0.0.1:${sports[i]}
    protocols+=,SASL_SSL:SASL_SSL
  fi
  if $proxied; then
    listeners+=,PROXIED://127.0.0.1:${pports[i]}
    advertised+=,PROXIED://127.0.0.1:${aports[i]}
    protocols+=,PROXIED:PLAINTEXT
  fi
  {
    if [[ $KAFKA_MODE == kraft ]]; then
      cat <<EOT
process.roles=broker,controller
node.id=$((i + 1))
controller.quorum.voters=$voters_list
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
EOT
    else
      cat <<EOT
broker.id=$((i + 1))
zookeeper.connect=127.0.0.1:$zk_port
listeners=$listeners
advertised.listeners=$advertised
EOT
    fi
    cat <<EOT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$n/data
auto.create.topics.enable=$auto_create
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
EOT
    if [[ $KAFKA_MODE == kraft ]]; then
      cat <<EOT
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
EOT
    fi
    cat <<EOT
group.initial.rebalance.delay.ms=0
unclean.leader.election.enable=false
EOT
    if [[ $KAFKA_MODE == zookeeper ]]; then
      # A 2.x broker whose controlled shutdown cannot move its leaders (the last of three,
      # or all stopping at once) retries twice, 5 s apart by default, before it just stops.
      echo controlled.shutdown.retry.backoff.ms=500
    fi
    if $security; then write_sasl_ssl_listener; fi
  } >"$n/server.properties"
}

# write_proxied_env DIR: where a proxy in front of the PROXIED listeners listens and forwards to.
write_proxied_env() {
  local i advertised=() upstreams=()
  for ((i = 0; i < brokers; i++)); do
    advertised+=("127.0.0.1:${aports[i]}") upstreams+=("127.0.0.1:${pports[i]}")
  done
  {
    echo "KAFKA_PROXIED_BROKERS=$(IFS=,; echo "${advertised[*]}")"
    echo "KAFKA_PROXIED_UPSTREAMS=$(IFS=,; echo "${upstreams[*]}")"
  } >"$1/proxied.env"
}

# The SASL_SSL listener's settings; Kafka 2.x wants the key encrypted (see tls.sh).
write_sasl_ssl_listener() {
  cat <<EOT
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
EOT
  if [[ $KAFKA_MODE == kraft ]]; then
    echo "listener.name.sasl_ssl.ssl.keystore.location=$dir/tls/broker.pem"
  else
    echo "listener.name.sasl_ssl.ssl.keystore.location=$dir/tls/broker-encrypted.pem"
    echo "listener.name.sasl_ssl.ssl.key.password=$tls_key_password"
  fi
}

# format_storage: KRaft storage must be formatted once, with one cluster id for every node
# (and the SCRAM user, with --security). Kafka's own random-uuid is a 16-byte base64url
# string; generating it here saves a JVM start. Formatting costs a JVM start per node; they
# run side by side, each logging to its server.log.
format_storage() {
  local cluster_id i fmt_pids=()
  cluster_id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  while [[ $cluster_id == -* ]]; do
    cluster_id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  done
  for ((i = 0; i < brokers; i++)); do
    "${KAFKA_JAVA[@]}" "${QUICK_JVM[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "${nodes[i]}/server.properties" "${scram[@]}" >"${nodes[i]}/server.log" 2>&1 &
    fmt_pids+=($!)
  done
  for ((i = 0; i < brokers; i++)); do
    wait "${fmt_pids[i]}" || die "formatting storage in ${nodes[i]} failed"
  done
}
