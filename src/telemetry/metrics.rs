//! The metrics registry: the name and description of everything the service exports, and the
//! Prometheus recorder that `GET /metrics` renders (README, Observability).
//!
//! Each [`crate::startup::Application`] has a registry of its own, handed to the layers that
//! record into it, which register their instruments once (when their label values are known in
//! advance) and keep the handles: registering costs more than recording. There is no global
//! recorder, so applications built in the same process (as the tests build them) count apart, and
//! a test can assert exact counts. Every label value is bounded: routes are the router's
//! patterns, methods and event types come from known sets (anything else is `other`), and topics,
//! partitions and brokers are those of the cluster. Never a raw path, an event id or anything
//! else a client chooses.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, IntoLabels, Key, KeyName, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use metrics_util::MetricKindMask;

pub const HTTP_REQUESTS: &str = "events_service_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "events_service_http_request_duration_seconds";
pub const KAFKA_PRODUCE: &str = "events_service_kafka_produce_total";
pub const KAFKA_PRODUCE_DURATION: &str = "events_service_kafka_produce_duration_seconds";
pub const KAFKA_PRODUCER_QUEUE: &str = "events_service_kafka_producer_queue_events";
pub const EVENTS_PROCESSED: &str = "events_service_events_processed_total";
pub const DEAD_LETTERS: &str = "events_service_dead_letters_total";
pub const CONSUMER_LAG: &str = "events_service_consumer_lag";
pub const CONSUMER_HELD_PARTITIONS: &str = "events_service_consumer_held_partitions";
pub const DEAD_LETTERS_TRUNCATED: &str = "events_service_dead_letters_truncated_total";
pub const HTTP_CONNECTIONS: &str = "events_service_http_connections";
pub const HTTP_CONNECTIONS_CLOSED: &str = "events_service_http_connections_closed_total";
pub const HTTP_PANICS: &str = "events_service_http_panics_total";
pub const REDIS_FAILURES: &str = "events_service_redis_failures_total";
pub const RATE_LIMIT_FALLBACKS: &str = "events_service_rate_limit_fallbacks_total";
pub const IDEMPOTENCY_UNAVAILABLE: &str = "events_service_idempotency_unavailable_total";

/// librdkafka's statistics (`KAFKA_STATISTICS_INTERVAL_MS`), per client (`client` label:
/// `producer`, or `consumer:<topic>`), and per broker of each client.
pub mod librdkafka {
    pub const QUEUE_MESSAGES: &str = "events_service_librdkafka_queue_messages";
    pub const QUEUE_BYTES: &str = "events_service_librdkafka_queue_bytes";
    pub const REPLY_QUEUE: &str = "events_service_librdkafka_reply_queue_ops";
    pub const TX_MESSAGES: &str = "events_service_librdkafka_tx_messages_total";
    pub const RX_MESSAGES: &str = "events_service_librdkafka_rx_messages_total";
    pub const BROKER_UP: &str = "events_service_librdkafka_broker_up";
    pub const BROKER_RTT_AVG: &str = "events_service_librdkafka_broker_rtt_avg_seconds";
    pub const BROKER_RTT_P99: &str = "events_service_librdkafka_broker_rtt_p99_seconds";
    pub const BROKER_OUTBUF: &str = "events_service_librdkafka_broker_outbuf_requests";
    pub const BROKER_WAITRESP: &str = "events_service_librdkafka_broker_waitresp_requests";
    pub const BROKER_TX_ERRORS: &str = "events_service_librdkafka_broker_tx_errors_total";
    pub const BROKER_RX_ERRORS: &str = "events_service_librdkafka_broker_rx_errors_total";
    pub const BROKER_REQUEST_TIMEOUTS: &str =
        "events_service_librdkafka_broker_request_timeouts_total";
    pub const BROKER_DISCONNECTS: &str = "events_service_librdkafka_broker_disconnects_total";
}

/// Upper bounds of the latency histograms' buckets, in seconds: from a fraction of a millisecond
/// (an answer that touches nothing) to the request timeout's default of 15 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 15.0,
];

/// A gauge not set for this long is dropped from the output: a partition this instance no longer
/// consumes (after a rebalance) stops showing a lag frozen at its last value. Gauges are
/// therefore looked up each time they are set, never kept: a kept handle would set a series no
/// longer rendered.
pub const STALE_GAUGES_AFTER: Duration = Duration::from_secs(60);

/// How often histogram samples are folded into their buckets between scrapes, bounding the
/// memory they take when nobody scrapes.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

enum Kind {
    Counter,
    Gauge,
    Histogram,
}

use librdkafka::*;

/// What each metric is, for the `# HELP` and `# TYPE` lines.
const DESCRIPTIONS: &[(Kind, &str, Option<Unit>, &str)] = &[
    (
        Kind::Counter,
        REDIS_FAILURES,
        None,
        "Redis operations that failed or got no answer within REDIS_TIMEOUT_MS",
    ),
    (
        Kind::Counter,
        RATE_LIMIT_FALLBACKS,
        None,
        "Requests rate limited by the instance's own buckets because Redis was unavailable",
    ),
    (
        Kind::Counter,
        IDEMPOTENCY_UNAVAILABLE,
        None,
        "Requests with an Idempotency-Key answered 503 because Redis was unavailable",
    ),
    (
        Kind::Counter,
        HTTP_REQUESTS,
        None,
        "HTTP requests answered, by route pattern (`unmatched` for none), method and status",
    ),
    (
        Kind::Histogram,
        HTTP_REQUEST_DURATION,
        Some(Unit::Seconds),
        "Time from a request reaching the router to its answer, by route pattern and method",
    ),
    (
        Kind::Counter,
        KAFKA_PRODUCE,
        None,
        "Records handed to the Kafka producer, by topic and result (stored, queue_full, timed_out, failed)",
    ),
    (
        Kind::Histogram,
        KAFKA_PRODUCE_DURATION,
        Some(Unit::Seconds),
        "Time from enqueueing a record to the broker's acknowledgement (acks=all), by topic",
    ),
    (
        Kind::Gauge,
        KAFKA_PRODUCER_QUEUE,
        None,
        "Records in the producer awaiting the broker's acknowledgement, when scraped",
    ),
    (
        Kind::Counter,
        EVENTS_PROCESSED,
        None,
        "Events the built-in consumers processed, by topic and event type",
    ),
    (
        Kind::Counter,
        DEAD_LETTERS,
        None,
        "Unprocessable records written to their dead-letter topic, by the topic they came from",
    ),
    (
        Kind::Gauge,
        CONSUMER_HELD_PARTITIONS,
        None,
        "Partitions the consumers hold because a record's dead letter cannot be written, by topic",
    ),
    (
        Kind::Counter,
        DEAD_LETTERS_TRUNCATED,
        None,
        "Dead letters written cut short because the record was too large for Kafka, by source topic",
    ),
    (
        Kind::Gauge,
        HTTP_CONNECTIONS,
        None,
        "HTTP connections open, when scraped",
    ),
    (
        Kind::Counter,
        HTTP_CONNECTIONS_CLOSED,
        None,
        "HTTP connections the service closed, by reason (header_timeout, idle_timeout, write_timeout, limit)",
    ),
    (
        Kind::Counter,
        HTTP_PANICS,
        None,
        "Requests whose handler panicked; each was answered 500",
    ),
    (
        Kind::Gauge,
        CONSUMER_LAG,
        None,
        "Records between a partition's end and the group's committed offset, per partition this instance consumes (librdkafka statistics)",
    ),
    (
        Kind::Gauge,
        QUEUE_MESSAGES,
        None,
        "Messages in the client's producer queues (librdkafka msg_cnt)",
    ),
    (
        Kind::Gauge,
        QUEUE_BYTES,
        Some(Unit::Bytes),
        "Size of the messages in the client's producer queues (librdkafka msg_size)",
    ),
    (
        Kind::Gauge,
        REPLY_QUEUE,
        None,
        "Operations (callbacks, events) waiting to be served by the client (librdkafka replyq)",
    ),
    (
        Kind::Counter,
        TX_MESSAGES,
        None,
        "Messages the client sent to brokers (librdkafka txmsgs)",
    ),
    (
        Kind::Counter,
        RX_MESSAGES,
        None,
        "Messages the client received from brokers (librdkafka rxmsgs)",
    ),
    (
        Kind::Gauge,
        BROKER_UP,
        None,
        "1 while the client's connection to the broker is up, else 0",
    ),
    (
        Kind::Gauge,
        BROKER_RTT_AVG,
        Some(Unit::Seconds),
        "Mean request round-trip time to the broker over the last statistics interval",
    ),
    (
        Kind::Gauge,
        BROKER_RTT_P99,
        Some(Unit::Seconds),
        "99th percentile request round-trip time to the broker over the last statistics interval",
    ),
    (
        Kind::Gauge,
        BROKER_OUTBUF,
        None,
        "Requests waiting to be sent to the broker (librdkafka outbuf_cnt)",
    ),
    (
        Kind::Gauge,
        BROKER_WAITRESP,
        None,
        "Requests sent to the broker and awaiting its response (librdkafka waitresp_cnt)",
    ),
    (
        Kind::Counter,
        BROKER_TX_ERRORS,
        None,
        "Transmission errors to the broker (librdkafka txerrs)",
    ),
    (
        Kind::Counter,
        BROKER_RX_ERRORS,
        None,
        "Reception errors from the broker (librdkafka rxerrs)",
    ),
    (
        Kind::Counter,
        BROKER_REQUEST_TIMEOUTS,
        None,
        "Requests to the broker that timed out (librdkafka req_timeouts)",
    ),
    (
        Kind::Counter,
        BROKER_DISCONNECTS,
        None,
        "Times the connection to the broker was lost (librdkafka disconnects)",
    ),
];

/// One application's metrics.
#[derive(Clone)]
pub struct Metrics(Arc<Registry>);

struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

/// Where registrations say they come from; the Prometheus recorder ignores it.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(SECONDS_BUCKETS)
            .expect("the buckets are not empty")
            .idle_timeout(MetricKindMask::GAUGE, Some(STALE_GAUGES_AFTER))
            .build_recorder();
        for (kind, name, unit, text) in DESCRIPTIONS {
            let (name, text) = (KeyName::from_const_str(name), (*text).into());
            match kind {
                Kind::Counter => recorder.describe_counter(name, *unit, text),
                Kind::Gauge => recorder.describe_gauge(name, *unit, text),
                Kind::Histogram => recorder.describe_histogram(name, *unit, text),
            }
        }
        let handle = recorder.handle();
        Self(Arc::new(Registry { recorder, handle }))
    }

    pub fn counter(&self, name: &'static str, labels: impl IntoLabels) -> Counter {
        self.0
            .recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: impl IntoLabels) -> Gauge {
        self.0
            .recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, labels: impl IntoLabels) -> Histogram {
        self.0
            .recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// Everything recorded, in Prometheus' text format.
    pub fn render(&self) -> String {
        self.0.handle.render()
    }

    /// Folds histogram samples into their buckets (and drops stale gauges).
    pub fn upkeep(&self) {
        self.0.handle.run_upkeep();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buckets_grow_from_under_a_millisecond_to_the_request_timeout() {
        assert!(SECONDS_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(SECONDS_BUCKETS[0] < 0.001);
        assert_eq!(SECONDS_BUCKETS.last(), Some(&15.0));
    }

    #[test]
    fn two_registries_count_apart_and_describe_what_they_export() {
        let (one, other) = (Metrics::new(), Metrics::new());
        one.counter(HTTP_PANICS, &[] as &[(&str, &str)])
            .increment(2);
        other
            .counter(HTTP_PANICS, &[] as &[(&str, &str)])
            .increment(5);
        let text = one.render();
        assert!(
            text.contains("events_service_http_panics_total 2"),
            "{text}"
        );
        assert!(
            text.contains("# HELP events_service_http_panics_total "),
            "{text}"
        );
        assert!(
            other
                .render()
                .contains("events_service_http_panics_total 5")
        );
    }
}
