#!/usr/bin/env bash
# Makes sure the tools the build, the tests and the local broker need are installed, installing
# Debian's packages where they are missing (as root). Rust itself (1.85 or newer, for edition
# 2024) comes from rustup. Called by scripts/run.sh and scripts/test.sh; safe to run again.
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need cmake cmake            # builds the vendored librdkafka
need c++ g++
need make make
need pkg-config pkg-config
need java openjdk-17-jre-headless   # runs the local Kafka broker
need mvn maven                      # fetches the broker's jars from Maven Central
need curl curl                      # the smoke test posts the seed's curl examples
need kcat kcat                      # the smoke test reads records back independently
need python3 python3                # the smoke test compares JSON
need redis-server redis-server      # the shared state of several instances, in the tests
[[ -f /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)   # librdkafka's TLS and SASL/SCRAM

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "bootstrap: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi
