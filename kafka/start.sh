#!/usr/bin/env bash
# Usage: kafka/start.sh [--port N] [--dir DIR] [--auto-create true|false] [--brokers 1|3] [--security]
#
# Starts a KRaft Kafka on 127.0.0.1 in the background (each node is broker+controller)
# and returns once it serves metadata. stdout gets exactly one line, the bootstrap
# list, so callers can do BROKERS=$(kafka/start.sh); everything else goes to stderr.
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
# KAFKA_OPTS is appended to the broker's JVM options; KAFKA_START_TIMEOUT (default 60 s)
# bounds the wait. Stop with kafka/stop.sh --dir DIR.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit "${1:-2}"; }

port=0 dir='' auto_create=false brokers=1 security=false
while (($#)); do
  case $1 in
    --port) port=${2-}; shift 2 || usage ;;
    --dir) dir=${2-}; shift 2 || usage ;;
    --auto-create) auto_create=${2-}; shift 2 || usage ;;
    --brokers) brokers=${2-}; shift 2 || usage ;;
    --security) security=true; shift ;;
    -h | --help) usage 0 ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((port > 65533)); then die "--port must be a port number, got '$port'"; fi
[[ $auto_create == true || $auto_create == false ]] || die "--auto-create must be true or false"
[[ $brokers == 1 || $brokers == 3 ]] || die "--brokers must be 1 or 3"

"$KAFKA_SCRIPTS/provision.sh" >&2
SECONDS=0
deadline=${KAFKA_START_TIMEOUT:-60}  # seconds; raise it on a slow machine

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
# Stays below Linux's ephemeral range (32768+) so client sockets cannot grab the port first.
pick_port() {
  local p
  for _ in {1..500}; do
    p=$((20000 + RANDOM % 12000))
    [[ " ${picked[*]} " == *" $p "* ]] || port_busy "$p" || { picked+=("$p"); return 0; }
  done
  die "found no free port"
}

# Refuses to wipe anything start.sh did not create, or a dir whose broker still runs.
prepare_dir() {
  local d=$1 pidfile
  if [[ -e $d ]]; then
    while IFS= read -r pidfile; do
      ! alive "$(<"$pidfile")" || die "a broker already runs in $d (stop it with kafka/stop.sh --dir $d)"
    done < <(find "$d" -maxdepth 2 -name kafka.pid)
    if [[ -f $d/.kafka-run ]]; then
      rm -rf "$d"
    elif [[ -n $(ls -A "$d") ]]; then
      die "$d exists and was not created by start.sh; refusing to reuse it"
    fi
  fi
  mkdir -p "$d"
}

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
touch "$dir/.kafka-run"

cports=() sports=() voters=() bootstrap=() sasl_bootstrap=() nodes=()
for ((i = 0; i < brokers; i++)); do
  pick_port
  cports+=("${picked[-1]}")
  if $security; then
    pick_port
    sports+=("${picked[-1]}")
    sasl_bootstrap+=("127.0.0.1:${sports[i]}")
  fi
  voters+=("$((i + 1))@127.0.0.1:${cports[i]}")
  bootstrap+=("127.0.0.1:${bports[i]}")
  if ((brokers == 1)); then nodes+=("$dir"); else nodes+=("$dir/node-$((i + 1))"); fi
done
if ((brokers == 1)); then rf=1 min_isr=1; else rf=3 min_isr=2; fi
bootstrap_list=$(IFS=,; echo "${bootstrap[*]}")
voters_list=$(IFS=,; echo "${voters[*]}")
sasl_list=$(IFS=,; echo "${sasl_bootstrap[*]}")
log "starting Kafka $KAFKA_VERSION ($brokers node(s)) on $bootstrap_list in $dir"

# Kafka's own random-uuid is a 16-byte base64url string; generating it here saves a JVM start.
cluster_id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
while [[ $cluster_id == -* ]]; do
  cluster_id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
done

pids=()
started=false
cleanup() {
  $started && return
  local i
  for ((i = 0; i < ${#nodes[@]}; i++)); do
    if [[ -f ${nodes[i]}/server.log ]]; then
      log "--- last lines of ${nodes[i]}/server.log ---"
      tail -n 25 "${nodes[i]}/server.log" | cut -c1-400 >&2
    fi
  done
  ((${#pids[@]})) && { kill -KILL "${pids[@]}" 2>/dev/null || true; }
  log "failed; logs kept in $dir (kafka/stop.sh --dir $dir removes it)"
}
trap cleanup EXIT

# make_tls TLS_DIR: a CA and a certificate it signed for the brokers' address. EC keys take
# milliseconds, where RSA keys or a keytool JVM would take about a second. Kafka reads the
# broker's unencrypted PKCS#8 key and its certificate from one PEM file.
make_tls() {
  local t=$1
  mkdir -p "$t"
  cat >"$t/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[broker]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  local new_key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -days 365)
  if ! {
    openssl req -config "$t/openssl.cnf" -x509 -extensions ca "${new_key[@]}" \
      -subj "/CN=events-service local Kafka CA" -keyout "$t/ca.key" -out "$t/ca.pem" &&
      openssl req -config "$t/openssl.cnf" -x509 -extensions broker "${new_key[@]}" \
        -CA "$t/ca.pem" -CAkey "$t/ca.key" -subj "/CN=localhost" \
        -keyout "$t/broker.key" -out "$t/broker.crt"
  } 2>"$t/openssl.log"; then
    cat "$t/openssl.log" >&2
    die "openssl could not make the TLS certificates in $t"
  fi
  cat "$t/broker.key" "$t/broker.crt" >"$t/broker.pem"
}

scram=()
if $security; then
  command -v openssl >/dev/null || die "--security needs openssl"
  make_tls "$dir/tls"
  ca=$dir/tls/ca.pem sasl_user=events
  # 18 random bytes are 24 base64 characters without padding; letters and digits only, so the
  # password needs no quoting in --add-scram, JAAS or a shell.
  sasl_password=$(head -c18 /dev/urandom | base64 | tr '+/' 'xy')
  scram=(--add-scram "SCRAM-SHA-256=[name=$sasl_user,password=$sasl_password]")
  cat >"$dir/sasl-ssl.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$sasl_user" password="$sasl_password";
ssl.truststore.type=PEM
ssl.truststore.location=$ca
EOF
fi

fmt_pids=()
for ((i = 0; i < brokers; i++)); do
  n=${nodes[i]}
  mkdir -p "$n"
  listeners=PLAINTEXT://127.0.0.1:${bports[i]},CONTROLLER://127.0.0.1:${cports[i]}
  advertised=PLAINTEXT://127.0.0.1:${bports[i]}
  protocols=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
  if $security; then
    listeners+=,SASL_SSL://127.0.0.1:${sports[i]}
    advertised+=,SASL_SSL://127.0.0.1:${sports[i]}
    protocols+=,SASL_SSL:SASL_SSL
  fi
  cat >"$n/server.properties" <<EOF
process.roles=broker,controller
node.id=$((i + 1))
controller.quorum.voters=$voters_list
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
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
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
unclean.leader.election.enable=false
EOF
  if $security; then
    cat >>"$n/server.properties" <<EOF
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$dir/tls/broker.pem
EOF
  fi
  # Formatting costs a JVM start per node; do them side by side.
  "${KAFKA_JAVA[@]}" "${QUICK_JVM[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$n/server.properties" "${scram[@]}" >"$n/server.log" 2>&1 &
  fmt_pids+=($!)
done
for ((i = 0; i < brokers; i++)); do
  wait "${fmt_pids[i]}" || die "formatting storage in ${nodes[i]} failed"
done

for n in "${nodes[@]}"; do
  launch_node "$n"
  pids+=("$(<"$n/kafka.pid")")
done

check_alive() {
  local i
  for ((i = 0; i < brokers; i++)); do
    alive "${pids[i]}" || die "broker in ${nodes[i]} exited during startup"
  done
  ((SECONDS < deadline)) || die "not ready after ${deadline}s"
}

# Polling the TCP port is nearly free, so no probe JVM starts before the listeners are up.
for p in "${bports[@]}" "${sports[@]}"; do
  until (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
    check_alive
    sleep 0.2
  done
done

# Ready = every node shows up, unfenced, in a metadata response and answers ApiVersions.
printf '%s\n' request.timeout.ms=3000 default.api.timeout.ms=5000 >"$dir/probe.properties"
until out=$(timeout $((deadline > SECONDS ? deadline - SECONDS : 1)) "${KAFKA_JAVA[@]}" "${QUICK_JVM[@]}" \
  org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$bootstrap_list" \
  --command-config "$dir/probe.properties" 2>/dev/null) &&
  (($(grep -c '(id: [0-9]* rack: .*isFenced: false' <<<"$out") == brokers)); do
  check_alive
  sleep 0.2
done

if $security; then
  # An unfenced broker has every listener open and the user in its metadata. Checking the
  # certificate as a client would (chain and address) costs milliseconds; a probe JVM over
  # SASL_SSL would cost a second.
  for p in "${sports[@]}"; do
    openssl s_client -connect "127.0.0.1:$p" -CAfile "$ca" -verify_ip 127.0.0.1 \
      -verify_return_error </dev/null >"$dir/tls/s_client.log" 2>&1 ||
      die "the SASL_SSL listener on port $p fails TLS verification; see $dir/tls/s_client.log"
  done
  {
    echo "KAFKA_SASL_SSL_BROKERS=${sasl_list@Q}"
    echo "KAFKA_SASL_MECHANISM=SCRAM-SHA-256"
    echo "KAFKA_SASL_USERNAME=${sasl_user@Q}"
    echo "KAFKA_SASL_PASSWORD=${sasl_password@Q}"
    echo "KAFKA_SSL_CA_LOCATION=${ca@Q}"
  } >"$dir/security.env"
  log "SASL_SSL listener on $sasl_list; client settings in $dir/security.env"
fi
started=true
log "ready after ${SECONDS}s (pids ${pids[*]})"
echo "$bootstrap_list"
