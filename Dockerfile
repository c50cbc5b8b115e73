# syntax=docker/dockerfile:1
# The events service in a container: `docker build -t events-service .` (BuildKit), or
# `docker compose up --build` with Kafka beside it (docker-compose.yml). No Docker engine runs
# where this repository is developed and tested: scripts/containers.sh checks this file instead
# (README, "Containers").

# --- build: scripts/run.sh's command, so the image gets the binary the scripts run and test ------
# The toolchain the repository is built and tested with; Debian 12, as the runtime stage below.
FROM rust:1.95.0-slim-bookworm AS builder
# What scripts/bootstrap.sh installs for the build: cmake, g++ and make build the vendored
# librdkafka, pkg-config and libssl-dev its TLS and SASL; zlib1g-dev its compression.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake g++ make pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The dashboard's files, which the binary embeds (src/http/dashboard.rs).
COPY assets ./assets
# The caches keep the crates and the compiled dependencies (librdkafka above all) between builds;
# they are not part of the image, so the binary is copied out of them in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin events-service \
 && cp target/release/events-service /usr/local/bin/events-service

# --- run: Debian slim, the libraries the binary links (libssl3; glibc, libgcc and zlib are in the
# base image), and curl for the health check ------------------------------------------------
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin events
COPY --from=builder /usr/local/bin/events-service /usr/local/bin/events-service
# A numeric user, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
ENV HOST=0.0.0.0 \
    PORT=8082 \
    LOG_LEVEL=info
EXPOSE 8082
# Liveness, which never depends on Kafka: an unreachable broker is a readiness matter
# (/api/events/health), not a reason to restart the container.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["sh", "-c", "curl -fsS -o /dev/null http://127.0.0.1:${PORT}/api/events/health/live || exit 1"]
# SIGTERM starts the graceful shutdown (SHUTDOWN_TIMEOUT_MS, 20 s by default): give the
# container that long before it is killed (`docker stop -t 25`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/events-service"]
