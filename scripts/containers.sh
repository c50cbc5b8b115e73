#!/usr/bin/env bash
# Checks the container files (Dockerfile, docker-compose.yml, deploy/kubernetes.yaml) where no
# Docker engine runs, in about 20 seconds once the release binary is built:
#   - the Dockerfile's `cargo build` is the harness's (scripts/harness/), which scripts/run.sh,
#     scripts/faults.sh and every script build with, and is run here (or was, once, by CI, which
#     hands the binary on in EVENTS_SERVICE_BINARY), so the binary checked below is the one the
#     image gets and the scripts run and test;
#   - the builder copies every file the build reads (src/, and what src/ include_str!s);
#   - the builder's Rust is this machine's rustc, builder and runtime are this machine's Debian,
#     and the runtime stage holds every shared library the binary links (ldd, dpkg);
#   - hadolint passes;
#   - every variable the three files set is one src/config/ documents;
#   - ports, broker address, user and shutdown grace periods agree across the files;
#   - Kafka's own storage tool accepts compose's broker settings (as apache/kafka renders them);
#   - the binary, started as the image's user with each file's variables and no Kafka, answers
#     the HEALTHCHECK and livenessProbe routes 200 and the readinessProbe route 503, lists all
#     three in its OpenAPI document, and exits 0 on SIGTERM.
# Closes with `containers: N passed, N failed`. Installs PyYAML and hadolint
# (scripts/requirements-containers.txt) into .venv-containers/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh --broker   # Kafka's storage tool checks compose's broker settings
scripts/venv.sh .venv-containers scripts/requirements-containers.txt
exec .venv-containers/bin/python scripts/containers.py
