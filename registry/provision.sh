#!/usr/bin/env bash
# Usage: registry/provision.sh
# Downloads Apicurio Registry (the packaged application, io.apicurio:apicurio-registry-app:
# <version>:tar.gz:all from Maven Central) and unpacks it into registry/.dist/<version> once.
# REGISTRY_VERSION overrides the version (3.0.9).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

marker=$REGISTRY_DIST/.provisioned
provisioned() { [[ -f $marker && $(<"$marker") == "$REGISTRY_ARTIFACT" && -f $REGISTRY_JAR ]]; }
command -v "$JAVA" >/dev/null || die "java not found (set JAVA_HOME or put java on PATH); Apicurio Registry needs Java 17+"
provisioned && exit 0
command -v mvn >/dev/null || die "mvn not found; install Maven 3 to download Apicurio Registry"

mkdir -p "$REGISTRY_SCRIPTS/.dist"
# Several start.sh runs on a fresh clone would otherwise all download and swap dirs under each other.
if command -v flock >/dev/null; then
  exec 9>"$REGISTRY_SCRIPTS/.dist/.lock"
  flock 9
  provisioned && exit 0
fi

log "downloading $REGISTRY_ARTIFACT into $REGISTRY_DIST"
# Stage then rename, so an interrupted download never looks provisioned.
stage=$(mktemp -d "$REGISTRY_SCRIPTS/.dist/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# The 3.0.9 parent POM is not on Maven Central: only the old dependency plugin's get, without
# transitive resolution, fetches the archive. mvn -q still prints stray colour codes, so its
# output is shown only on failure.
if ! mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:2.8:get -Dtransitive=false \
    -Dartifact="$REGISTRY_ARTIFACT" -Ddest="$stage/app.tar.gz" >"$stage/mvn.log" 2>&1; then
  cat "$stage/mvn.log" >&2
  die "mvn could not fetch $REGISTRY_ARTIFACT (does that version exist on Maven Central?)"
fi
tar -xzf "$stage/app.tar.gz" -C "$stage" || die "could not unpack $REGISTRY_ARTIFACT"
rm "$stage/app.tar.gz" "$stage/mvn.log"
[[ -f $stage/${REGISTRY_JAR##*/} ]] || die "the archive holds no ${REGISTRY_JAR##*/}"
echo "$REGISTRY_ARTIFACT" >"$stage/.provisioned"
rm -rf "$REGISTRY_DIST"
mv -T "$stage" "$REGISTRY_DIST"
log "done: $(find "$REGISTRY_DIST/lib" -name '*.jar' | wc -l) jars"
