#!/usr/bin/env bash
# Usage: kafka/provision.sh
# Downloads the Kafka jars (see pom.xml) into kafka/.dist/<version>/libs once.
# Set KAFKA_VERSION to override the version pinned in pom.xml; a 2.x version (ZooKeeper mode,
# kafka/start.sh --kafka 2.7) takes its jars from pom-2.7.xml instead.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

marker=$KAFKA_DIST/.provisioned
# The marker holds the pom's hash so that editing the pom (e.g. adding a jar) re-provisions.
want=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
provisioned() { [[ -f $marker && $(<"$marker") == "$want" ]]; }
if [[ $KAFKA_MODE == kraft ]]; then need_java=17; else need_java=11; fi
command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME or put java on PATH); Kafka $KAFKA_VERSION needs Java $need_java+"
provisioned && exit 0
command -v mvn >/dev/null || die "mvn not found; install Maven 3 to download the Kafka jars"

mkdir -p "$KAFKA_SCRIPTS/.dist"
# Several start.sh runs on a fresh clone would otherwise all download and swap dirs under each other.
if command -v flock >/dev/null; then
  exec 9>"$KAFKA_SCRIPTS/.dist/.lock"
  flock 9
  provisioned && exit 0
fi

log "downloading Kafka $KAFKA_VERSION jars into $KAFKA_LIBS"
# Stage then rename, so an interrupted download never looks provisioned.
stage=$(mktemp -d "$KAFKA_SCRIPTS/.dist/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# mvn -q still prints stray colour codes, so its output is shown only on failure.
if ! mvn -q -B -f "$KAFKA_POM" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$stage/libs" >"$stage/mvn.log" 2>&1; then
  cat "$stage/mvn.log" >&2
  die "mvn could not fetch Kafka $KAFKA_VERSION (does that version exist on Maven Central?)"
fi
rm "$stage/mvn.log"
echo "$want" >"$stage/.provisioned"
# A stale dist (the pom changed) is replaced whole.
rm -rf "$KAFKA_DIST"
mv -T "$stage" "$KAFKA_DIST"
log "done: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars"
