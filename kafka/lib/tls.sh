# shellcheck shell=bash disable=SC2034,SC2154 # globals shared with start.sh, named below
# Sourced by kafka/start.sh --security. The CA and the brokers' certificate (made anew at every
# start, in DIR/tls), and the check that each SASL_SSL listener presents it as a client expects.

# make_tls TLS_DIR: a CA and a certificate it signed for the brokers' address. EC keys take
# milliseconds, where RSA keys or a keytool JVM would take about a second. Kafka reads the
# broker's unencrypted PKCS#8 key and its certificate from one PEM file.
make_tls() {
  local t=$1
  mkdir -p "$t"
  cat >"$t/openssl.cnf" <<EOT
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
EOT
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

# make_tls_encrypted_key TLS_DIR: Kafka 2.x reads a PEM key store only with a key password,
# so its broker gets broker-encrypted.pem: the same key, encrypted (PKCS#8 with a PBE algorithm
# Java knows by name) with a random tls_key_password, and the certificate.
make_tls_encrypted_key() {
  local t=$1
  tls_key_password=$(head -c18 /dev/urandom | base64 | tr '+/' 'xy')
  if ! openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -in "$t/broker.key" -passout "pass:$tls_key_password" \
    -out "$t/broker-encrypted.key" 2>>"$t/openssl.log"; then
    cat "$t/openssl.log" >&2
    die "openssl could not encrypt the broker key in $t"
  fi
  cat "$t/broker-encrypted.key" "$t/broker.crt" >"$t/broker-encrypted.pem"
}

# verify_tls CA PORT...: an unfenced broker has every listener open and the user in its
# metadata. Checking the certificate as a client would (chain and address) costs milliseconds;
# a probe JVM over SASL_SSL would cost a second.
verify_tls() {
  local ca=$1 p
  shift
  for p; do
    openssl s_client -connect "127.0.0.1:$p" -CAfile "$ca" -verify_ip 127.0.0.1 \
      -verify_return_error </dev/null >"$dir/tls/s_client.log" 2>&1 ||
      die "the SASL_SSL listener on port $p fails TLS verification; see $dir/tls/s_client.log"
  done
}
