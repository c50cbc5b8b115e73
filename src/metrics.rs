//! Prometheus metrics: the name of everything the service exports, in one place, and the
//! recorder that `GET /metrics` renders (README, Observability).
//!
//! The `metrics` facade records into one recorder per process, installed on first use: the
//! request path, the consumer threads and librdkafka's statistics callbacks record wherever they
//! run, without a handle passed down to each. A process is one scrape target, so applications
//! built in the same process (as the tests build them) share the recorder; their topics (each
//! test has a prefix of its own) keep their series apart.
//!
//! Every label value is bounded: routes are the router's patterns, methods and event types come
//! from known sets (anything else is `other`), and topics, partitions and brokers are those of
//! the cluster. Never a raw path, an event id or anything else a client chooses.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{LazyLock, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use metrics::{
    Counter, Histogram, SharedString, Unit, describe_counter, describe_gauge, describe_histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tokio_util::sync::CancellationToken;

use crate::domain::EventType;
use crate::kafka::{Delivery, PublishError};

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
/// consumes (after a rebalance) stops showing a lag frozen at its last value.
pub const STALE_GAUGES_AFTER: Duration = Duration::from_secs(60);

/// How often histogram samples are folded into their buckets between scrapes, bounding the
/// memory they take when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The route label of a request that matched no route: its path is the client's choice.
const UNMATCHED_ROUTE: &str = "unmatched";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder on first use and returns the handle that renders it.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(SECONDS_BUCKETS)
            .expect("the buckets are not empty")
            .idle_timeout(MetricKindMask::GAUGE, Some(STALE_GAUGES_AFTER))
            .build_recorder();
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => describe(),
            // Only a program embedding the service would have installed one.
            Err(error) => tracing::warn!("Another metrics recorder is installed: {error}"),
        }
        handle
    })
}

/// Folds histogram samples into their buckets every few seconds until `stop`.
pub async fn keep_up(stop: CancellationToken) {
    let handle = install();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(UPKEEP_EVERY) => handle.run_upkeep(),
        }
    }
}

/// An answered HTTP request. `route` is the pattern of the route it matched, if any.
pub fn http_request(route: Option<&str>, method: &Method, status: StatusCode, took: Duration) {
    static REQUESTS: Handles<(&str, &str, u16), Counter> = Handles::new();
    static DURATIONS: Handles<(&str, &str), Histogram> = Handles::new();
    let route = route.map_or(UNMATCHED_ROUTE, intern);
    let method = method_label(method);
    REQUESTS.record(
        (route, method, status.as_u16()),
        || {
            let status = SharedString::from(status.as_u16().to_string());
            metrics::counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        },
        |requests| requests.increment(1),
    );
    DURATIONS.record(
        (route, method),
        || metrics::histogram!(HTTP_REQUEST_DURATION, "route" => route, "method" => method),
        |durations| durations.record(took),
    );
}

/// A record the producer was asked for, with its outcome and (for an acknowledged one) the time
/// from enqueueing to the broker's acknowledgement.
pub fn produced(topic: &str, result: &Result<Delivery, PublishError>, took: Duration) {
    static RECORDS: Handles<(&str, &str), Counter> = Handles::new();
    static DURATIONS: Handles<&str, Histogram> = Handles::new();
    let outcome = match result {
        Ok(_) => "stored",
        Err(PublishError::QueueFull) => "queue_full",
        Err(PublishError::TimedOut(_)) => "timed_out",
        Err(PublishError::Failed(_) | PublishError::Rejected { .. }) => "failed",
    };
    let topic = intern(topic);
    RECORDS.record(
        (topic, outcome),
        || metrics::counter!(KAFKA_PRODUCE, "topic" => topic, "result" => outcome),
        |records| records.increment(1),
    );
    if result.is_ok() {
        DURATIONS.record(
            topic,
            || metrics::histogram!(KAFKA_PRODUCE_DURATION, "topic" => topic),
            |durations| durations.record(took),
        );
    }
}

/// Records awaiting the broker's acknowledgement, sampled when the metrics are scraped.
pub fn producer_queue(events: u64) {
    metrics::gauge!(KAFKA_PRODUCER_QUEUE).set(events as f64);
}

/// An event the consumers processed. Its `type` is whatever the record said: one that is not an
/// event type of the service's counts as `other`.
pub fn event_processed(topic: &str, event_type: &str) {
    static EVENTS: Handles<(&str, &str), Counter> = Handles::new();
    let event_type = EventType::ALL
        .into_iter()
        .map(EventType::as_str)
        .find(|known| *known == event_type)
        .unwrap_or("other");
    let topic = intern(topic);
    EVENTS.record(
        (topic, event_type),
        || metrics::counter!(EVENTS_PROCESSED, "topic" => topic, "type" => event_type),
        |events| events.increment(1),
    );
}

/// A record from `topic` the consumers could not process, now stored in its dead-letter topic
/// (cut short, when it was too large for Kafka).
pub fn dead_lettered(topic: &str, truncated: bool) {
    metrics::counter!(DEAD_LETTERS, "topic" => topic.to_owned()).increment(1);
    if truncated {
        metrics::counter!(DEAD_LETTERS_TRUNCATED, "topic" => topic.to_owned()).increment(1);
    }
}

/// Partitions of `topic` held now because a dead letter could not be written.
pub fn held_partitions(topic: &str, held: usize) {
    metrics::gauge!(CONSUMER_HELD_PARTITIONS, "topic" => topic.to_owned()).set(held as f64);
}

/// Connections open now, sampled when the metrics are scraped.
pub fn open_connections(open: i64) {
    metrics::gauge!(HTTP_CONNECTIONS).set(open as f64);
}

/// A connection the service closed, and why (`header_timeout`, `idle_timeout`, `write_timeout`,
/// `limit`).
pub fn connection_closed(reason: &'static str) {
    metrics::counter!(HTTP_CONNECTIONS_CLOSED, "reason" => reason).increment(1);
}

/// A handler that panicked (answered 500).
pub fn panicked() {
    metrics::counter!(HTTP_PANICS).increment(1);
}

/// The handles of series registered so far, by their label values. Registering a series (building
/// its key, hashing it, finding it in the recorder) costs several allocations and more time than
/// recording into it, and every request records several series: each is registered once. Only
/// for counters and histograms: the recorder drops stale gauges, and a kept handle would then
/// record into a series no longer rendered.
struct Handles<K, H>(LazyLock<RwLock<HashMap<K, H>>>);

impl<K: Eq + Hash, H> Handles<K, H> {
    const fn new() -> Self {
        Self(LazyLock::new(|| RwLock::new(HashMap::new())))
    }

    /// Records into the series `key`, registering it with `register` the first time.
    fn record(&self, key: K, register: impl FnOnce() -> H, record: impl FnOnce(&H)) {
        if let Some(handle) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return record(handle);
        }
        // Before the recorder is installed, a handle would record nowhere, and would be kept.
        install();
        let mut handles = self.0.write().unwrap_or_else(PoisonError::into_inner);
        record(handles.entry(key).or_insert_with(register));
    }
}

/// `value` for the rest of the process, so that it can label series without a copy each time.
/// Only for values from bounded sets (route patterns, topic names): each is kept once, forever.
fn intern(value: &str) -> &'static str {
    static INTERNED: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(Default::default);
    if let Some(interned) = INTERNED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(value)
    {
        return interned;
    }
    let mut interned = INTERNED.write().unwrap_or_else(PoisonError::into_inner);
    match interned.get(value) {
        Some(value) => value,
        None => {
            let value: &'static str = Box::leak(value.into());
            interned.insert(value);
            value
        }
    }
}

fn method_label(method: &Method) -> &'static str {
    // Clients may send any token as a method; only the standard ones become label values.
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route pattern (`unmatched` for none), method and status"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time from a request reaching the router to its answer, by route pattern and method"
    );
    describe_counter!(
        KAFKA_PRODUCE,
        "Records handed to the Kafka producer, by topic and result (stored, queue_full, timed_out, failed)"
    );
    describe_histogram!(
        KAFKA_PRODUCE_DURATION,
        Unit::Seconds,
        "Time from enqueueing a record to the broker's acknowledgement (acks=all), by topic"
    );
    describe_gauge!(
        KAFKA_PRODUCER_QUEUE,
        "Records in the producer awaiting the broker's acknowledgement, when scraped"
    );
    describe_counter!(
        EVENTS_PROCESSED,
        "Events the built-in consumers processed, by topic and event type"
    );
    describe_counter!(
        DEAD_LETTERS,
        "Unprocessable records written to their dead-letter topic, by the topic they came from"
    );
    describe_gauge!(
        CONSUMER_HELD_PARTITIONS,
        "Partitions the consumers hold because a record's dead letter cannot be written, by topic"
    );
    describe_counter!(
        DEAD_LETTERS_TRUNCATED,
        "Dead letters written cut short because the record was too large for Kafka, by source topic"
    );
    describe_gauge!(HTTP_CONNECTIONS, "HTTP connections open, when scraped");
    describe_counter!(
        HTTP_CONNECTIONS_CLOSED,
        "HTTP connections the service closed, by reason (header_timeout, idle_timeout, write_timeout, limit)"
    );
    describe_counter!(
        HTTP_PANICS,
        "Requests whose handler panicked; each was answered 500"
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Records between a partition's end and the group's committed offset, per partition this instance consumes (librdkafka statistics)"
    );
    use librdkafka::*;
    describe_gauge!(
        QUEUE_MESSAGES,
        "Messages in the client's producer queues (librdkafka msg_cnt)"
    );
    describe_gauge!(
        QUEUE_BYTES,
        Unit::Bytes,
        "Size of the messages in the client's producer queues (librdkafka msg_size)"
    );
    describe_gauge!(
        REPLY_QUEUE,
        "Operations (callbacks, events) waiting to be served by the client (librdkafka replyq)"
    );
    describe_counter!(
        TX_MESSAGES,
        "Messages the client sent to brokers (librdkafka txmsgs)"
    );
    describe_counter!(
        RX_MESSAGES,
        "Messages the client received from brokers (librdkafka rxmsgs)"
    );
    describe_gauge!(
        BROKER_UP,
        "1 while the client's connection to the broker is up, else 0"
    );
    describe_gauge!(
        BROKER_RTT_AVG,
        Unit::Seconds,
        "Mean request round-trip time to the broker over the last statistics interval"
    );
    describe_gauge!(
        BROKER_RTT_P99,
        Unit::Seconds,
        "99th percentile request round-trip time to the broker over the last statistics interval"
    );
    describe_gauge!(
        BROKER_OUTBUF,
        "Requests waiting to be sent to the broker (librdkafka outbuf_cnt)"
    );
    describe_gauge!(
        BROKER_WAITRESP,
        "Requests sent to the broker and awaiting its response (librdkafka waitresp_cnt)"
    );
    describe_counter!(
        BROKER_TX_ERRORS,
        "Transmission errors to the broker (librdkafka txerrs)"
    );
    describe_counter!(
        BROKER_RX_ERRORS,
        "Reception errors from the broker (librdkafka rxerrs)"
    );
    describe_counter!(
        BROKER_REQUEST_TIMEOUTS,
        "Requests to the broker that timed out (librdkafka req_timeouts)"
    );
    describe_counter!(
        BROKER_DISCONNECTS,
        "Times the connection to the broker was lost (librdkafka disconnects)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_methods_are_not_label_values() {
        assert_eq!(method_label(&Method::POST), "POST");
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
    }

    #[test]
    fn a_value_is_interned_once() {
        let first = intern(&String::from("test-intern.movie-events"));
        let second = intern(&String::from("test-intern.movie-events"));
        assert!(std::ptr::eq(first, second));
        assert_eq!(first, "test-intern.movie-events");
    }

    #[test]
    fn the_buckets_grow_from_under_a_millisecond_to_the_request_timeout() {
        assert!(SECONDS_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(SECONDS_BUCKETS[0] < 0.001);
        assert_eq!(SECONDS_BUCKETS.last(), Some(&15.0));
    }
}
