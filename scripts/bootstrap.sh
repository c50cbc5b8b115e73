#!/usr/bin/env bash
# Usage: scripts/bootstrap.sh [--broker] [--redis] [--registry] [--smoke] [--all] [--check]
#
# Makes sure the tools the command at hand needs are installed, installing Debian's packages
# where they are missing (as root; otherwise it names them and fails). Safe to run again.
# Always what the build needs: cmake, g++ and make (the vendored librdkafka), pkg-config and
# libssl-dev (its TLS and SASL/SCRAM), python3 (scripts/harness/ builds and runs the service),
# and cargo (Rust of Cargo.toml's rust-version or newer), which comes from rustup and is not
# installed here.
#   --broker  a local Kafka broker (kafka/): Java 17 or newer (the `java` of JAVA_HOME or PATH
#             when it is one, else the openjdk-NN-jre-headless that apt offers, 17 or 21), Maven
#             (fetches the broker's jars) and openssl (the CA of kafka/start.sh --security)
#   --redis   a local Redis (redis/): redis-server
#   --registry  a local Apicurio Registry (registry/): Java 17 or newer and Maven, as for
#             --broker, and curl (start.sh asks the registry's API whether it is up)
#   --smoke   curl and kcat (scripts/smoke.sh; curl for bench/run.sh too)
#   --all     all of them (CI)
#   --check   only say what is missing; install nothing (exit 1 when something is)
# scripts/run.sh asks for --broker only when KAFKA_BROKERS is not set, so that running against a
# broker of one's own needs neither Java nor Maven.
set -euo pipefail

usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit "${1:-2}"; }
broker=false redis=false registry=false smoke=false check=false
while (($#)); do
  case $1 in
    --broker) broker=true ;;
    --redis) redis=true ;;
    --registry) registry=true ;;
    --smoke) smoke=true ;;
    --all) broker=true redis=true registry=true smoke=true ;;
    --check) check=true ;;
    -h | --help) usage 0 ;;
    *) echo "bootstrap: unknown argument: $1" >&2; usage ;;
  esac
  shift
done

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need cmake cmake
need c++ g++
need make make
need pkg-config pkg-config
[[ -f /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
need python3 python3

# The major version of the java kafka/ runs (its common.sh: JAVA_HOME's, else PATH's), or 0.
java_major() {
  local java=${JAVA_HOME:+$JAVA_HOME/bin/}java version
  command -v "$java" >/dev/null 2>&1 || { echo 0; return; }
  version=$("$java" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = //p')
  version=${version#1.}   # Java 8 says 1.8
  [[ $version =~ ^[0-9]+$ ]] && echo "$version" || echo 0
}
# The headless JRE that apt can install: 17 (what the broker is tried with), else 21.
java_package() {
  local n candidate
  for n in 17 21; do
    candidate=$(apt-cache policy "openjdk-$n-jre-headless" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [[ -n $candidate && $candidate != '(none)' ]]; then echo "openjdk-$n-jre-headless"; return; fi
  done
  return 1
}
java_wanted=false java_found=0
if $broker || $registry; then
  java_found=$(java_major)
  # Kafka 4.x needs 17; 2.7 runs on it too; so does Apicurio Registry 3.
  ((java_found >= 17)) || java_wanted=true
  need mvn maven
fi
if $broker; then need openssl openssl; fi
if $registry; then need curl curl; fi
if $redis; then need redis-server redis-server; fi
if $smoke; then
  need curl curl
  need kcat kcat
fi

if $java_wanted || ((${#missing[@]})); then
  if $check || [[ $(id -u) -ne 0 ]]; then
    $java_wanted && missing+=("$(java_package || echo 'openjdk-17-jre-headless or openjdk-21-jre-headless')")
    echo "bootstrap: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
    if $java_wanted; then
      found="the java found is $java_found"
      ((java_found)) || found="no java found"
      echo "bootstrap: or point JAVA_HOME at a Java 17 or newer ($found)" >&2
    fi
    exit 1
  fi
  apt-get update -qq >&2
  if $java_wanted; then
    package=$(java_package) || { echo "bootstrap: apt offers neither openjdk-17 nor openjdk-21; install a Java 17 or newer and set JAVA_HOME" >&2; exit 1; }
    missing+=("$package")
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  if $java_wanted && (($(java_major) < 17)); then
    echo "bootstrap: installed $package, but the java kafka/ runs (JAVA_HOME's, else PATH's) is older: point JAVA_HOME at the new one (/usr/lib/jvm)" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "bootstrap: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi
