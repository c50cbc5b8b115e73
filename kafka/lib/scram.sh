# shellcheck shell=bash disable=SC2034,SC2154 # globals shared with start.sh, named below
# Sourced by kafka/start.sh --security. The SCRAM-SHA-256 user `events`: a random password, the
# user stored where the brokers read it (KRaft: StorageTool's --add-scram at format; ZooKeeper:
# ConfigCommand, once ZooKeeper runs), and what clients need: DIR/sasl-ssl.properties for Java
# tools, DIR/security.env (shell syntax) for everyone else.
# Sets: sasl_user, sasl_password, scram (the StorageTool arguments; empty without --security).

scram=()
# make_sasl_user DIR CA: the user, its StorageTool arguments and DIR/sasl-ssl.properties.
make_sasl_user() {
  local d=$1 ca=$2
  sasl_user=events
  # 18 random bytes are 24 base64 characters without padding; letters and digits only, so the
  # password needs no quoting in --add-scram, JAAS or a shell.
  sasl_password=$(head -c18 /dev/urandom | base64 | tr '+/' 'xy')
  scram=(--add-scram "SCRAM-SHA-256=[name=$sasl_user,password=$sasl_password]")
  cat >"$d/sasl-ssl.properties" <<EOT
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$sasl_user" password="$sasl_password";
ssl.truststore.type=PEM
ssl.truststore.location=$ca
EOT
}

# add_scram_user_zookeeper ZK_CONNECT LOG: Kafka 2.x keeps SCRAM credentials in ZooKeeper; a
# running broker picks up a change there at once. Runs in the foreground (one JVM, ~2 s).
add_scram_user_zookeeper() {
  "${KAFKA_JAVA[@]}" "${QUICK_JVM[@]}" kafka.admin.ConfigCommand --zookeeper "$1" --alter \
    --add-config "SCRAM-SHA-256=[password=$sasl_password]" --entity-type users \
    --entity-name "$sasl_user" >"$2" 2>&1 || { cat "$2" >&2; die "could not add the SCRAM user to ZooKeeper"; }
}

# write_security_env DIR CA SASL_BOOTSTRAP: what a client needs, in shell syntax.
write_security_env() {
  local ca=$2 list=$3
  {
    echo "KAFKA_SASL_SSL_BROKERS=${list@Q}"
    echo "KAFKA_SASL_MECHANISM=SCRAM-SHA-256"
    echo "KAFKA_SASL_USERNAME=${sasl_user@Q}"
    echo "KAFKA_SASL_PASSWORD=${sasl_password@Q}"
    echo "KAFKA_SSL_CA_LOCATION=${ca@Q}"
  } >"$1/security.env"
}
