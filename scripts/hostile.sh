#!/usr/bin/env bash
# Usage: scripts/hostile.sh [scripts/hostile.py options: --silent N --preface N --bodies N]
# Hostile traffic against the release binary, measured from outside (scripts/hostile.py; the
# table is RELIABILITY.md's "Hostile traffic"): builds the binary with the harness (a no-op when
# it is up to date, none with EVENTS_SERVICE_BINARY) and runs the measurement, which needs no
# broker and nothing beyond Python 3.11's standard library. About 20 s; closes with
# `hostile: N passed, N failed`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh
# shellcheck source-path=SCRIPTDIR source=harness/harness.sh
. scripts/harness/harness.sh
harness_build
exec python3 scripts/hostile.py "$SERVICE_BINARY" "$@"
