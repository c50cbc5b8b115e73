//! The Kafka section: brokers, topics, the producer's and consumers' settings, and the librdkafka
//! properties passed through from `RDKAFKA_*` variables.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::bail;

use super::env::Env;

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
    /// `CLOUDEVENTS_SOURCE`: the `ce_source` header of every record, a URI-reference naming this
    /// producer (default [`DEFAULT_CLOUDEVENTS_SOURCE`]).
    pub cloudevents_source: String,
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
    /// `KAFKA_IDLE_LINGER_MS`: the linger of a record that finds no other in flight (default 0):
    /// an idle request is sent at once, and batching starts only when requests overlap. Equal
    /// to `KAFKA_LINGER_MS`, one producer takes every record.
    pub idle_linger_ms: u32,
    /// `KAFKA_GROUP_ID`: the built-in consumers' group (default `events-service-group`).
    pub group_id: String,
    /// `KAFKA_AUTO_OFFSET_RESET`: where a new group starts, `earliest` or `latest` (default
    /// `earliest`).
    pub auto_offset_reset: String,
    /// `KAFKA_CONSUMERS_ENABLED`: run the built-in consumers (default true).
    pub consumers_enabled: bool,
    /// `KAFKA_HEALTH_INTERVAL_MS`: how often the broker's reachability is checked (default 1 s).
    pub health_interval: Duration,
    /// `KAFKA_DLQ_MAX_HOLD_MS`: how long a consumer may hold a partition because a record's dead
    /// letter cannot be written, before health turns 503 to page an operator (default 60 s).
    pub dlq_max_hold: Duration,
    /// `KAFKA_STATISTICS_INTERVAL_MS`: how often every Kafka client reports librdkafka's
    /// statistics, which `/metrics` exports (consumer lag among them); zero turns them off
    /// (default 5 s, at most [`MAX_STATISTICS_INTERVAL`]).
    pub statistics_interval: Duration,
    /// `RDKAFKA_*`: librdkafka properties for every client.
    pub client_options: LibrdkafkaOptions,
    /// `RDKAFKA_PRODUCER_*`: librdkafka properties for the producer only.
    pub producer_options: LibrdkafkaOptions,
    /// `RDKAFKA_CONSUMER_*`: librdkafka properties for the consumers only.
    pub consumer_options: LibrdkafkaOptions,
}

/// How much longer than the delivery timeout (librdkafka's `message.timeout.ms`) a request waits
/// for the delivery report, in case the report itself is late; the request timeout must leave
/// room for both.
pub const DELIVERY_REPORT_GRACE: Duration = Duration::from_secs(1);

/// librdkafka properties by name, from `RDKAFKA_*` variables. Their `Debug` hides the values of
/// credentials (`sasl.password` and the like), as librdkafka's own configuration dump does.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LibrdkafkaOptions(BTreeMap<String, String>);

impl LibrdkafkaOptions {
    /// Whether `property` holds a credential.
    fn is_secret(property: &str) -> bool {
        property.contains("password")
            || property.contains("secret")
            || ["sasl.username", "ssl.key.pem", "sasl.oauthbearer.config"].contains(&property)
    }
}

impl std::ops::Deref for LibrdkafkaOptions {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl IntoIterator for LibrdkafkaOptions {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Debug for LibrdkafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.0.iter().map(|(property, value)| {
            let value = if Self::is_secret(property) {
                "[redacted]"
            } else {
                value.as_str()
            };
            (property, value)
        });
        f.debug_map().entries(shown).finish()
    }
}

/// The `ce_source` of records when `CLOUDEVENTS_SOURCE` is not set.
pub const DEFAULT_CLOUDEVENTS_SOURCE: &str = "/cinemaabyss/events-service";

/// `CLOUDEVENTS_SOURCE`, checked to be a URI-reference as far as its characters go: RFC 3986
/// leaves out spaces, controls, non-ASCII (percent-encode it) and `"<>\^`{|}`. Blank means the
/// default, as for every variable, so the source is never empty.
pub(super) fn cloudevents_source(env: &Env) -> anyhow::Result<String> {
    let source = env.get("CLOUDEVENTS_SOURCE", DEFAULT_CLOUDEVENTS_SOURCE.to_owned())?;
    if !source
        .chars()
        .all(|c| c.is_ascii_graphic() && !"\"<>\\^`{|}".contains(c))
    {
        bail!(
            "CLOUDEVENTS_SOURCE must be a URI-reference such as {DEFAULT_CLOUDEVENTS_SOURCE} or \
             https://cinemaabyss.example/events (no spaces, percent-encoded non-ASCII), not {source:?}"
        );
    }
    Ok(source)
}

/// The longest `KAFKA_STATISTICS_INTERVAL_MS`: a gauge not refreshed for
/// the metrics registry's `STALE_GAUGES_AFTER` (60 s) is dropped, so at least two reports
/// must fit in that time.
pub const MAX_STATISTICS_INTERVAL: Duration = Duration::from_secs(30);

pub(super) fn statistics_interval(env: &Env) -> anyhow::Result<Duration> {
    let interval = Duration::from_millis(env.get("KAFKA_STATISTICS_INTERVAL_MS", 5_000)?);
    if interval > MAX_STATISTICS_INTERVAL {
        bail!(
            "KAFKA_STATISTICS_INTERVAL_MS must be at most {} (0 turns statistics off), not {}",
            MAX_STATISTICS_INTERVAL.as_millis(),
            interval.as_millis()
        );
    }
    Ok(interval)
}

/// librdkafka properties that pass-through variables may not set, and why.
const RESERVED_OPTIONS: &[(&str, &str)] = &[
    ("bootstrap.servers", "set by KAFKA_BROKERS"),
    ("group.id", "set by KAFKA_GROUP_ID"),
    ("auto.offset.reset", "set by KAFKA_AUTO_OFFSET_RESET"),
    ("message.timeout.ms", "set by KAFKA_DELIVERY_TIMEOUT_MS"),
    ("delivery.timeout.ms", "set by KAFKA_DELIVERY_TIMEOUT_MS"),
    (
        "linger.ms",
        "set by KAFKA_LINGER_MS and KAFKA_IDLE_LINGER_MS",
    ),
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
    (
        "statistics.interval.ms",
        "set by KAFKA_STATISTICS_INTERVAL_MS",
    ),
];

/// librdkafka properties from variables starting with `prefix` (but not with `prefix`
/// followed by one of `excluded`, which belong to a narrower scope). Properties the service
/// sets from its own variables, or relies on for its guarantees, are refused.
pub(super) fn rdkafka_options(
    env: &Env,
    prefix: &str,
    excluded: &[&str],
) -> anyhow::Result<LibrdkafkaOptions> {
    let mut options = BTreeMap::new();
    for (name, value) in env.vars() {
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
        options.insert(property, value.to_owned());
    }
    Ok(LibrdkafkaOptions(options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    #[test]
    fn the_cloudevents_source_is_a_uri_reference() {
        let source = |value: &str| config(&[("CLOUDEVENTS_SOURCE", value)]);
        assert_eq!(
            config(&[]).unwrap().kafka.cloudevents_source,
            "/cinemaabyss/events-service"
        );
        assert_eq!(
            source("  ").unwrap().kafka.cloudevents_source,
            DEFAULT_CLOUDEVENTS_SOURCE
        );
        for good in [
            "https://cinemaabyss.example/events?region=eu#1",
            "urn:cinemaabyss:events",
            "/caf%C3%A9",
        ] {
            assert_eq!(source(good).unwrap().kafka.cloudevents_source, good);
        }
        for bad in ["events service", "/café", "<events>", "/a\tb"] {
            let err = source(bad).unwrap_err().to_string();
            assert!(err.starts_with("CLOUDEVENTS_SOURCE"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn statistics_are_reported_every_five_seconds_unless_turned_off() {
        let c = config(&[]).unwrap();
        assert_eq!(c.kafka.statistics_interval, Duration::from_secs(5));
        let off = config(&[("KAFKA_STATISTICS_INTERVAL_MS", "0")]).unwrap();
        assert_eq!(off.kafka.statistics_interval, Duration::ZERO);
    }

    #[test]
    fn pass_through_cannot_undo_the_guarantees_or_shadow_a_variable_in_any_scope() {
        assert_eq!(RESERVED_OPTIONS.len(), 13);
        for (property, why) in RESERVED_OPTIONS {
            let name = property.to_ascii_uppercase().replace('.', "_");
            for scope in ["RDKAFKA_", "RDKAFKA_PRODUCER_", "RDKAFKA_CONSUMER_"] {
                let variable = format!("{scope}{name}");
                let err = config(&[(&variable, "1")]).unwrap_err().to_string();
                assert_eq!(
                    err,
                    format!("{variable} cannot be set: {property} is {why}")
                );
            }
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

    #[test]
    fn the_debug_output_hides_kafka_credentials() {
        let c = config(&[
            ("RDKAFKA_SASL_USERNAME", "events"),
            ("RDKAFKA_SASL_PASSWORD", "hunter2-sasl"),
            ("RDKAFKA_CONSUMER_SSL_KEY_PASSWORD", "hunter2-key"),
            ("RDKAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ])
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains(r#""sasl.password": "[redacted]""#),
            "{debug}"
        );
        assert!(
            debug.contains(r#""security.protocol": "SASL_SSL""#),
            "{debug}"
        );
        assert_eq!(c.kafka.client_options["sasl.password"], "hunter2-sasl");
    }
}
