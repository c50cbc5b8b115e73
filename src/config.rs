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
    /// `KAFKA_LINGER_MS`: how long the producer waits to fill a batch (default 0: send at once;
    /// under load, records still batch up behind the requests in flight).
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
        if request_timeout <= delivery_timeout {
            bail!(
                "HTTP_REQUEST_TIMEOUT_MS ({} ms) must be longer than KAFKA_DELIVERY_TIMEOUT_MS ({} ms)",
                request_timeout.as_millis(),
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
                shutdown_timeout: env.millis("SHUTDOWN_TIMEOUT_MS", 20_000)?,
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
                linger_ms: env.get("KAFKA_LINGER_MS", 0)?,
                group_id: env.get("KAFKA_GROUP_ID", "events-service-group".to_owned())?,
                auto_offset_reset,
                consumers_enabled: env.get("KAFKA_CONSUMERS_ENABLED", true)?,
                health_interval: env.millis("KAFKA_HEALTH_INTERVAL_MS", 1_000)?,
                client_options: env.rdkafka_options("RDKAFKA_", &["PRODUCER_", "CONSUMER_"]),
                producer_options: env.rdkafka_options("RDKAFKA_PRODUCER_", &[]),
                consumer_options: env.rdkafka_options("RDKAFKA_CONSUMER_", &[]),
            },
            log_level: env.get("LOG_LEVEL", "info".to_owned())?,
        })
    }
}

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
    /// followed by one of `excluded`, which belong to a narrower scope).
    fn rdkafka_options(&self, prefix: &str, excluded: &[&str]) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix(prefix)?;
                if rest.is_empty() || excluded.iter().any(|e| rest.starts_with(e)) {
                    return None;
                }
                Some((rest.to_ascii_lowercase().replace('_', "."), value.clone()))
            })
            .collect()
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
    fn the_request_timeout_must_outlast_the_delivery_timeout() {
        let err = config(&[("KAFKA_DELIVERY_TIMEOUT_MS", "20000")]).unwrap_err();
        assert!(err.to_string().contains("HTTP_REQUEST_TIMEOUT_MS"));
    }

    #[test]
    fn librdkafka_options_pass_through_by_scope() {
        let c = config(&[
            ("RDKAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("RDKAFKA_PRODUCER_LINGER_MS", "7"),
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
        assert_eq!(c.kafka.producer_options["linger.ms"], "7");
        assert_eq!(c.kafka.consumer_options["fetch.wait.max.ms"], "50");
    }
}
