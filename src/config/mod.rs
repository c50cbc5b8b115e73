//! The service's configuration, read once from the environment at start-up.
//!
//! Every variable is documented in README.md with its default. A value that does not parse stops
//! start-up with an error naming the variable. Any librdkafka property can be passed through:
//! `RDKAFKA_<NAME>` sets it on every client, `RDKAFKA_PRODUCER_<NAME>` / `RDKAFKA_CONSUMER_<NAME>`
//! on one kind only; `<NAME>` is the property upper-cased with dots as underscores
//! (`RDKAFKA_SASL_MECHANISMS=PLAIN` sets `sasl.mechanisms`).

mod env;
mod kafka;
mod redis;
mod registry;
mod security;

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use anyhow::bail;

use env::Env;
pub use kafka::{
    DEFAULT_CLOUDEVENTS_SOURCE, DELIVERY_REPORT_GRACE, KafkaConfig, LibrdkafkaOptions,
    MAX_STATISTICS_INTERVAL,
};
use kafka::{cloudevents_source, rdkafka_options, statistics_interval};
pub use redis::RedisConfig;
use redis::redis_config;
pub use registry::SchemaRegistryConfig;
use registry::schema_registry_config;
pub use security::{
    AuthConfig, DEFAULT_OPEN_ROUTES, MIN_API_KEY_LEN, MIN_HS256_SECRET_LEN, RateLimitConfig, Secret,
};
use security::{auth_config, rate_limit_config};

/// Everything the service needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub kafka: KafkaConfig,
    pub auth: AuthConfig,
    /// Per-client rate limiting of the publishing routes; `None` when off.
    pub rate_limit: Option<RateLimitConfig>,
    /// Where instances share their state; `None` (no `REDIS_URL`) keeps it in memory.
    pub redis: Option<RedisConfig>,
    /// Where the event topics' value schemas are registered; `None` (no `SCHEMA_REGISTRY_URL`)
    /// registers none.
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// `LOG_LEVEL`: a tracing filter such as `info` or `events_service=debug,rdkafka=warn`.
    pub log_level: String,
    /// `LOG_FORMAT`: `text`, the seed's lines (default), or `json`, one object per line.
    pub log_format: LogFormat,
    pub tracing: TracingConfig,
    /// `TOKIO_WORKER_THREADS` (tokio's own variable): the async runtime's worker threads; by
    /// default one per core but one, at least one ([`default_worker_threads`]).
    pub worker_threads: usize,
}

/// One worker thread per core but one: librdkafka's threads (one per client and broker) and the
/// consumers' need a core's worth between them, and workers that outnumber the cores left to
/// them wake and steal from one another on every request. On two cores one worker answered an
/// idle request in 0.35 ms where two took 0.44, and 16% more requests at concurrency 64
/// (BENCHMARKS.md). Counts the cores the process may use (its CPU quota included).
pub fn default_worker_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    cores.saturating_sub(1).max(1)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be text or json".to_owned()),
        }
    }
}

/// Where spans go. Trace context is propagated whether or not they are exported.
#[derive(Debug, Clone)]
pub struct TracingConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the OTLP/HTTP endpoint (e.g. `http://collector:4318`)
    /// spans are exported to, at `<endpoint>/v1/traces`; unset, spans are not exported.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`: the service name spans are exported under (default
    /// `events-service`).
    pub service_name: String,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `HOST`: the address to listen on (default `0.0.0.0`).
    pub host: IpAddr,
    /// `PORT`: the port to listen on (default 8082; 0 picks a free one).
    pub port: u16,
    /// `HTTP_BODY_LIMIT_BYTES`: the largest request body accepted (default 1 MiB).
    pub body_limit_bytes: usize,
    /// `HTTP_REQUEST_TIMEOUT_MS`: the longest a request may take, body included (default 15 s).
    /// Longer than the delivery timeout, so that a Kafka failure is reported as such.
    pub request_timeout: Duration,
    /// `HTTP_HEADER_TIMEOUT_MS`: how long a client may take to send a request's head (request
    /// line and headers), from accept or from the first byte of a later request, before its
    /// connection is closed (default 10 s), whatever the protocol.
    pub header_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT_MS`: how long a kept-alive connection may stay idle between requests
    /// (default 90 s, longer than the 60 s idle timeout of common load balancers, so that they
    /// close first).
    pub idle_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`: connections open at once at most; more are closed as soon as
    /// they are accepted (default 10000, lowered to fit the open-file limit).
    pub max_connections: usize,
    /// `HTTP_MAX_INFLIGHT_BYTES`: request body bytes the publishing requests in progress may
    /// hold at once; beyond it, 503 (default 32 MiB).
    pub max_inflight_bytes: usize,
    /// `SHUTDOWN_TIMEOUT_MS`: how long shutdown may take in all (default 20 s).
    pub shutdown_timeout: Duration,
    /// `HTTP_MAX_CONCURRENT_REQUESTS`: event requests served at once; more are answered 503 at
    /// once (default 1024).
    pub max_concurrent_requests: usize,
    /// `BATCH_MAX_EVENTS`: the most events one batch request may hold (default 1000).
    pub batch_max_events: usize,
    /// `STREAM_MAX_CLIENTS`: event streams (`GET /api/events/stream`) open at once at most;
    /// more are answered 503 (default 64).
    pub stream_max_clients: usize,
    /// `STREAM_MAX_PER_CLIENT`: event streams one client (its credentials, or its address) may
    /// have open at once; more are answered 429 (default 8).
    pub stream_max_per_client: usize,
    /// `STREAM_WRITE_TIMEOUT_MS`: how long a write to a client may make no progress before its
    /// connection is closed: a stream whose client stopped reading frees its slot (default 15 s).
    pub write_timeout: Duration,
    /// `IDEMPOTENCY_WINDOW_SECS`: how long the answer to a request with an `Idempotency-Key` is
    /// remembered (default 86400, a day).
    pub idempotency_window: Duration,
    /// `IDEMPOTENCY_MAX_BYTES`: the memory remembered answers may take at most; beyond it the
    /// oldest are forgotten before their window ends (default 64 MiB).
    pub idempotency_max_bytes: usize,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the given variables; tests use it instead of mutating the process environment.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let env = Env::new(vars);
        let delivery_timeout = env.millis("KAFKA_DELIVERY_TIMEOUT_MS", 5_000)?;
        let request_timeout = env.millis("HTTP_REQUEST_TIMEOUT_MS", 15_000)?;
        let shutdown_timeout = env.millis("SHUTDOWN_TIMEOUT_MS", 20_000)?;
        let linger_ms: u32 = env.get("KAFKA_LINGER_MS", 1)?;
        let idle_linger_ms: u32 = env.get("KAFKA_IDLE_LINGER_MS", 0)?;
        if idle_linger_ms > linger_ms {
            bail!(
                "KAFKA_IDLE_LINGER_MS ({idle_linger_ms}) must not exceed KAFKA_LINGER_MS ({linger_ms})"
            );
        }
        // A Kafka failure must be reported as such (500), not as a request timeout (408), and a
        // graceful shutdown must be able to finish the requests in flight.
        if request_timeout <= delivery_timeout + DELIVERY_REPORT_GRACE {
            bail!(
                "HTTP_REQUEST_TIMEOUT_MS ({} ms) must exceed KAFKA_DELIVERY_TIMEOUT_MS ({} ms) by more than {} ms",
                request_timeout.as_millis(),
                delivery_timeout.as_millis(),
                DELIVERY_REPORT_GRACE.as_millis()
            );
        }
        if shutdown_timeout <= request_timeout {
            bail!(
                "SHUTDOWN_TIMEOUT_MS ({} ms) must be longer than HTTP_REQUEST_TIMEOUT_MS ({} ms)",
                shutdown_timeout.as_millis(),
                request_timeout.as_millis()
            );
        }
        if u128::from(linger_ms) >= delivery_timeout.as_millis() {
            bail!(
                "KAFKA_LINGER_MS ({linger_ms}) must be shorter than KAFKA_DELIVERY_TIMEOUT_MS ({} ms)",
                delivery_timeout.as_millis()
            );
        }
        let auto_offset_reset = env.get("KAFKA_AUTO_OFFSET_RESET", "earliest".to_owned())?;
        if !["earliest", "latest"].contains(&auto_offset_reset.as_str()) {
            bail!("KAFKA_AUTO_OFFSET_RESET must be earliest or latest, not {auto_offset_reset:?}");
        }
        let body_limit_bytes = env.positive("HTTP_BODY_LIMIT_BYTES", 1024 * 1024)?;
        let max_inflight_bytes = env.positive("HTTP_MAX_INFLIGHT_BYTES", 32 * 1024 * 1024)?;
        if max_inflight_bytes < body_limit_bytes {
            bail!(
                "HTTP_MAX_INFLIGHT_BYTES ({max_inflight_bytes}) must be at least HTTP_BODY_LIMIT_BYTES ({body_limit_bytes}), or the largest bodies could never be served"
            );
        }
        let brokers = env.get("KAFKA_BROKERS", "localhost:9092".to_owned())?;
        if brokers.split(',').any(|b| b.trim().is_empty()) {
            bail!("KAFKA_BROKERS must be a comma-separated list of host:port, not {brokers:?}");
        }
        Ok(Self {
            http: HttpConfig {
                host: env.get("HOST", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?,
                port: env.get("PORT", 8082)?,
                body_limit_bytes,
                request_timeout,
                header_timeout: env.millis("HTTP_HEADER_TIMEOUT_MS", 10_000)?,
                idle_timeout: env.millis("HTTP_IDLE_TIMEOUT_MS", 90_000)?,
                max_connections: env.positive("HTTP_MAX_CONNECTIONS", 10_000)?,
                max_inflight_bytes,
                shutdown_timeout,
                max_concurrent_requests: env.positive("HTTP_MAX_CONCURRENT_REQUESTS", 1024)?,
                batch_max_events: env.positive("BATCH_MAX_EVENTS", 1000)?,
                stream_max_clients: env.positive("STREAM_MAX_CLIENTS", 64)?,
                stream_max_per_client: env.positive("STREAM_MAX_PER_CLIENT", 8)?,
                write_timeout: env.millis("STREAM_WRITE_TIMEOUT_MS", 15_000)?,
                idempotency_window: Duration::from_secs(
                    env.positive("IDEMPOTENCY_WINDOW_SECS", 86_400)?,
                ),
                idempotency_max_bytes: env.positive("IDEMPOTENCY_MAX_BYTES", 64 * 1024 * 1024)?,
            },
            kafka: KafkaConfig {
                brokers,
                topic_prefix: env.get("KAFKA_TOPIC_PREFIX", String::new())?,
                topic_partitions: env.positive("KAFKA_TOPIC_PARTITIONS", 1)?,
                topic_replication_factor: env.positive("KAFKA_TOPIC_REPLICATION_FACTOR", 1)?,
                cloudevents_source: cloudevents_source(&env)?,
                delivery_timeout,
                max_queued_events: env.positive("KAFKA_MAX_QUEUED_EVENTS", 100_000)?,
                linger_ms,
                idle_linger_ms,
                group_id: env.get("KAFKA_GROUP_ID", "events-service-group".to_owned())?,
                auto_offset_reset,
                consumers_enabled: env.get("KAFKA_CONSUMERS_ENABLED", true)?,
                health_interval: env.millis("KAFKA_HEALTH_INTERVAL_MS", 1_000)?,
                dlq_max_hold: env.millis("KAFKA_DLQ_MAX_HOLD_MS", 60_000)?,
                statistics_interval: statistics_interval(&env)?,
                client_options: rdkafka_options(&env, "RDKAFKA_", &["PRODUCER_", "CONSUMER_"])?,
                producer_options: rdkafka_options(&env, "RDKAFKA_PRODUCER_", &[])?,
                consumer_options: rdkafka_options(&env, "RDKAFKA_CONSUMER_", &[])?,
            },
            auth: auth_config(&env)?,
            rate_limit: rate_limit_config(&env)?,
            redis: redis_config(&env)?,
            schema_registry: schema_registry_config(&env)?,
            log_level: env.get("LOG_LEVEL", "info".to_owned())?,
            log_format: env.get("LOG_FORMAT", LogFormat::Text)?,
            tracing: TracingConfig {
                otlp_endpoint: otlp_endpoint(&env)?,
                service_name: env.get("OTEL_SERVICE_NAME", "events-service".to_owned())?,
            },
            worker_threads: env.positive("TOKIO_WORKER_THREADS", default_worker_threads())?,
        })
    }
}

fn otlp_endpoint(env: &Env) -> anyhow::Result<Option<String>> {
    let endpoint = env.optional("OTEL_EXPORTER_OTLP_ENDPOINT");
    if let Some(endpoint) = &endpoint
        && !endpoint.starts_with("http://")
    {
        bail!(
            "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// URL (OTLP over HTTP, no TLS: use a \
             collector beside the service), not {endpoint:?}"
        );
    }
    Ok(endpoint.map(|e| e.trim_end_matches('/').to_owned()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The configuration these variables give, and no others: the tests' way to build one.
    pub(crate) fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = config(&[]).unwrap();
        assert_eq!(c.http.port, 8082);
        assert_eq!(c.kafka.brokers, "localhost:9092");
        assert_eq!(c.kafka.topic_partitions, 1);
        assert_eq!(c.kafka.topic_replication_factor, 1);
        assert_eq!(c.kafka.group_id, "events-service-group");
        assert_eq!(c.kafka.auto_offset_reset, "earliest");
        assert_eq!(c.http.body_limit_bytes, 1024 * 1024);
        assert!(c.kafka.delivery_timeout <= Duration::from_secs(10));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (name, value) in [
            ("PORT", "eighty"),
            ("PORT", "70000"),
            ("KAFKA_TOPIC_PARTITIONS", "0"),
            ("KAFKA_DELIVERY_TIMEOUT_MS", "-5"),
            ("KAFKA_CONSUMERS_ENABLED", "maybe"),
            ("KAFKA_AUTO_OFFSET_RESET", "middle"),
            ("KAFKA_BROKERS", "a:1,,b:2"),
            ("HOST", "not an ip"),
            ("BATCH_MAX_EVENTS", "0"),
            ("HTTP_MAX_CONCURRENT_REQUESTS", "many"),
            ("KAFKA_MAX_QUEUED_EVENTS", "-1"),
            ("KAFKA_STATISTICS_INTERVAL_MS", "-1"),
            ("KAFKA_STATISTICS_INTERVAL_MS", "60000"),
        ] {
            let err = format!("{:#}", config(&[(name, value)]).unwrap_err());
            assert!(err.contains(name), "error for {name}={value} was {err:?}");
        }
    }

    #[test]
    fn timeouts_must_nest() {
        for (vars, named) in [
            (
                &[("KAFKA_DELIVERY_TIMEOUT_MS", "14500")][..],
                "HTTP_REQUEST_TIMEOUT_MS",
            ),
            (
                &[("SHUTDOWN_TIMEOUT_MS", "15000")][..],
                "SHUTDOWN_TIMEOUT_MS",
            ),
            (&[("KAFKA_LINGER_MS", "5000")][..], "KAFKA_LINGER_MS"),
            (&[("KAFKA_IDLE_LINGER_MS", "2")][..], "KAFKA_IDLE_LINGER_MS"),
        ] {
            let err = config(vars).unwrap_err().to_string();
            assert!(err.starts_with(named), "{vars:?}: {err}");
        }
    }
}
