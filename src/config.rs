//! The service's configuration, read once from the environment at start-up.
//!
//! Every variable is documented in README.md with its default. A value that does not parse stops
//! start-up with an error naming the variable. Any librdkafka property can be passed through:
//! `RDKAFKA_<NAME>` sets it on every client, `RDKAFKA_PRODUCER_<NAME>` / `RDKAFKA_CONSUMER_<NAME>`
//! on one kind only; `<NAME>` is the property upper-cased with dots as underscores
//! (`RDKAFKA_SASL_MECHANISMS=PLAIN` sets `sasl.mechanisms`).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};

/// Everything the service needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub kafka: KafkaConfig,
    /// `LOG_LEVEL`: a tracing filter such as `info` or `events_service=debug,rdkafka=warn`.
    pub log_level: String,
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
    /// `SHUTDOWN_TIMEOUT_MS`: how long shutdown may take in all (default 20 s).
    pub shutdown_timeout: Duration,
    /// `HTTP_MAX_CONCURRENT_REQUESTS`: event requests served at once; more are answered 503 at
    /// once (default 1024).
    pub max_concurrent_requests: usize,
    /// `BATCH_MAX_EVENTS`: the most events one batch request may hold (default 1000).
    pub batch_max_events: usize,
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `KAFKA_BROKERS`: comma-separated bootstrap servers (default `localhost:9092`).
    pub brokers: String,
    /// `KAFKA_TOPIC_PREFIX`: prepended to the topic names, e.g. `staging.` (default empty).
    pub topic_prefix: String,
    /// `KAFKA_TOPIC_PARTITIONS`: partitions of topics the service creates (default 1).
    pub topic_partitions: i32,
    /// `KAFKA_TOPIC_REPLICATION_FACTOR`: replicas of topics the service creates (default 1).
    pub topic_replication_factor: i32,
    /// `KAFKA_DELIVERY_TIMEOUT_MS`: how long the producer tries to deliver an event before the
    /// request fails with 500 (librdkafka's `message.timeout.ms`; default 5 s).
    pub delivery_timeout: Duration,
    /// `KAFKA_MAX_QUEUED_EVENTS`: events the producer holds at most while they await the
    /// broker's acknowledgement; beyond it requests are answered 503 (default 100000).
    pub max_queued_events: usize,
    /// `KAFKA_LINGER_MS`: how long the producer waits to fill a batch (default 1 ms). 0 answers
    /// an idle request about 1.5 ms sooner but sends so many small requests under load that the
    /// broker's and librdkafka's CPU turns into tail latency (see BENCHMARKS.md).
    pub linger_ms: u32,
    /// `KAFKA_GROUP_ID`: the built-in consumers' group (default `events-service-group`).
    pub group_id: String,
    /// `KAFKA_AUTO_OFFSET_RESET`: where a new group starts, `earliest` or `latest` (default
    /// `earliest`).
    pub auto_offset_reset: String,
    /// `KAFKA_CONSUMERS_ENABLED`: run the built-in consumers (default true).
    pub consumers_enabled: bool,
    /// `KAFKA_HEALTH_INTERVAL_MS`: how often the broker's reachability is checked (default 1 s).
    pub health_interval: Duration,
    /// `RDKAFKA_*`: librdkafka properties for every client.
    pub client_options: BTreeMap<String, String>,
    /// `RDKAFKA_PRODUCER_*`: librdkafka properties for the producer only.
    pub producer_options: BTreeMap<String, String>,
    /// `RDKAFKA_CONSUMER_*`: librdkafka properties for the consumers only.
    pub consumer_options: BTreeMap<String, String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the given variables; tests use it instead of mutating the process environment.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let env = Env(vars.into_iter().collect());
        let delivery_timeout = env.millis("KAFKA_DELIVERY_TIMEOUT_MS", 5_000)?;
        let request_timeout = env.millis("HTTP_REQUEST_TIMEOUT_MS", 15_000)?;
        let shutdown_timeout = env.millis("SHUTDOWN_TIMEOUT_MS", 20_000)?;
        let linger_ms: u32 = env.get("KAFKA_LINGER_MS", 1)?;
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
        let brokers = env.get("KAFKA_BROKERS", "localhost:9092".to_owned())?;
        if brokers.split(',').any(|b| b.trim().is_empty()) {
            bail!("KAFKA_BROKERS must be a comma-separated list of host:port, not {brokers:?}");
        }
        Ok(Self {
            http: HttpConfig {
                host: env.get("HOST", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?,
                port: env.get("PORT", 8082)?,
                body_limit_bytes: env.positive("HTTP_BODY_LIMIT_BYTES", 1024 * 1024)?,
                request_timeout,
                shutdown_timeout,
                max_concurrent_requests: env.positive("HTTP_MAX_CONCURRENT_REQUESTS", 1024)?,
                batch_max_events: env.positive("BATCH_MAX_EVENTS", 1000)?,
            },
            kafka: KafkaConfig {
                brokers,
                topic_prefix: env.get("KAFKA_TOPIC_PREFIX", String::new())?,
                topic_partitions: env.positive("KAFKA_TOPIC_PARTITIONS", 1)?,
                topic_replication_factor: env.positive("KAFKA_TOPIC_REPLICATION_FACTOR", 1)?,
                delivery_timeout,
                max_queued_events: env.positive("KAFKA_MAX_QUEUED_EVENTS", 100_000)?,
                linger_ms,
                group_id: env.get("KAFKA_GROUP_ID", "events-service-group".to_owned())?,
                auto_offset_reset,
                consumers_enabled: env.get("KAFKA_CONSUMERS_ENABLED", true)?,
                health_interval: env.millis("KAFKA_HEALTH_INTERVAL_MS", 1_000)?,
                client_options: env.rdkafka_options("RDKAFKA_", &["PRODUCER_", "CONSUMER_"])?,
                producer_options: env.rdkafka_options("RDKAFKA_PRODUCER_", &[])?,
                consumer_options: env.rdkafka_options("RDKAFKA_CONSUMER_", &[])?,
            },
            log_level: env.get("LOG_LEVEL", "info".to_owned())?,
        })
    }
}

/// How much longer than the delivery timeout a request waits for the delivery report.
pub const DELIVERY_REPORT_GRACE: Duration = Duration::from_secs(1);

/// librdkafka properties that pass-through variables may not set, and why.
const RESERVED_OPTIONS: &[(&str, &str)] = &[
    ("bootstrap.servers", "set by KAFKA_BROKERS"),
    ("group.id", "set by KAFKA_GROUP_ID"),
    ("auto.offset.reset", "set by KAFKA_AUTO_OFFSET_RESET"),
    ("message.timeout.ms", "set by KAFKA_DELIVERY_TIMEOUT_MS"),
    ("delivery.timeout.ms", "set by KAFKA_DELIVERY_TIMEOUT_MS"),
    ("linger.ms", "set by KAFKA_LINGER_MS"),
    ("queue.buffering.max.ms", "set by KAFKA_LINGER_MS"),
    (
        "queue.buffering.max.messages",
        "set by KAFKA_MAX_QUEUED_EVENTS",
    ),
    (
        "acks",
        "fixed to all: a 201 promises the event is replicated",
    ),
    (
        "request.required.acks",
        "fixed to all: a 201 promises the event is replicated",
    ),
    (
        "enable.idempotence",
        "fixed to true: retries must not duplicate or reorder",
    ),
    (
        "enable.auto.offset.store",
        "fixed to false: the consumers are at least once",
    ),
];

struct Env(BTreeMap<String, String>);

impl Env {
    fn get<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.0.get(name).map(|v| v.trim()) {
            None | Some("") => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("invalid value {raw:?} for {name}")),
        }
    }

    fn positive<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr + PartialOrd + Default + Display,
        T::Err: Display,
    {
        let value = self.get(name, default)?;
        if value <= T::default() {
            bail!("{name} must be greater than zero, not {value}");
        }
        Ok(value)
    }

    fn millis(&self, name: &str, default: u64) -> anyhow::Result<Duration> {
        self.positive(name, default).map(Duration::from_millis)
    }

    /// librdkafka properties from variables starting with `prefix` (but not with `prefix`
    /// followed by one of `excluded`, which belong to a narrower scope). Properties the service
    /// sets from its own variables, or relies on for its guarantees, are refused.
    fn rdkafka_options(
        &self,
        prefix: &str,
        excluded: &[&str],
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let mut options = BTreeMap::new();
        for (name, value) in &self.0 {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            if rest.is_empty() || excluded.iter().any(|e| rest.starts_with(e)) {
                continue;
            }
            let property = rest.to_ascii_lowercase().replace('_', ".");
            if let Some((_, instead)) = RESERVED_OPTIONS.iter().find(|(p, _)| *p == property) {
                bail!("{name} cannot be set: {property} is {instead}");
            }
            options.insert(property, value.clone());
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
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
        ] {
            let err = config(vars).unwrap_err().to_string();
            assert!(err.starts_with(named), "{vars:?}: {err}");
        }
    }

    #[test]
    fn pass_through_cannot_undo_the_guarantees_or_shadow_a_variable() {
        for name in [
            "RDKAFKA_PRODUCER_ACKS",
            "RDKAFKA_ENABLE_IDEMPOTENCE",
            "RDKAFKA_CONSUMER_ENABLE_AUTO_OFFSET_STORE",
            "RDKAFKA_BOOTSTRAP_SERVERS",
            "RDKAFKA_PRODUCER_LINGER_MS",
        ] {
            let err = config(&[(name, "1")]).unwrap_err().to_string();
            assert!(err.starts_with(name), "{name}: {err}");
        }
    }

    #[test]
    fn librdkafka_options_pass_through_by_scope() {
        let c = config(&[
            ("RDKAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("RDKAFKA_PRODUCER_BATCH_SIZE", "7"),
            ("RDKAFKA_CONSUMER_FETCH_WAIT_MAX_MS", "50"),
        ])
        .unwrap();
        assert_eq!(
            c.kafka.client_options.into_iter().collect::<Vec<_>>(),
            [(
                "security.protocol".to_string(),
                "SASL_PLAINTEXT".to_string()
            )]
        );
        assert_eq!(c.kafka.producer_options["batch.size"], "7");
        assert_eq!(c.kafka.consumer_options["fetch.wait.max.ms"], "50");
    }
}
