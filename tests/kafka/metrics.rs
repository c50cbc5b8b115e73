use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::helpers::{DEADLINE, TestApp, brokers, isolated_vars, with};

/// The value of the series `name` with (at least) `labels` in Prometheus text, if it is there.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels.iter().all(|(k, v)| {
                    let label = format!("{k}=\"{v}\"");
                    series_labels.starts_with(&label)
                        || series_labels.contains(&format!(",{label}"))
                })
        })
        .map(|(_, value)| value.parse().expect("a sample's value is a number"))
}

/// A series, by name and labels, and what its value should be.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], Want);

/// What a sample should be.
#[derive(Debug, Clone, Copy)]
enum Want {
    Exactly(f64),
    AtLeast(f64),
}

impl Want {
    fn matches(self, value: f64) -> bool {
        match self {
            Want::Exactly(wanted) => value == wanted,
            Want::AtLeast(least) => value >= least,
        }
    }
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn metrics_show_what_was_produced_processed_and_dead_lettered_and_librdkafka_statistics() {
    let brokers = brokers();
    let vars = with(
        isolated_vars(&brokers),
        // One producer (no idle lane): its statistics are all under client="producer".
        &[
            ("KAFKA_STATISTICS_INTERVAL_MS", "200"),
            ("KAFKA_IDLE_LINGER_MS", "1"),
        ],
    );
    let app = TestApp::spawn(vars).await;
    app.wait_until_healthy().await;
    let topic = app.topic("movie-events");
    let dead_letters = format!("{topic}.dlq");

    let (status, response) = app
        .post(
            "movie",
            &json!({"movie_id": 3, "title": "Counted", "action": "viewed"}),
        )
        .await;
    assert_eq!(status, 201, "{response}");
    // A record the consumers cannot read, written by someone else: it goes to the dead letters.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::<(), _>::to(&topic).payload("not json"),
            DEADLINE,
        )
        .await
        .expect("the junk record is stored");

    let consumer = format!("consumer:{topic}");
    use Want::{AtLeast, Exactly};
    let expected: [Expected; 23] = [
        (
            "events_service_kafka_produce_total",
            &[("topic", &topic), ("result", "stored")],
            Exactly(1.0),
        ),
        (
            "events_service_kafka_produce_duration_seconds_count",
            &[("topic", &topic)],
            Exactly(1.0),
        ),
        (
            "events_service_events_processed_total",
            &[("topic", &topic), ("type", "movie")],
            Exactly(1.0),
        ),
        (
            "events_service_dead_letters_total",
            &[("topic", &topic)],
            Exactly(1.0),
        ),
        (
            "events_service_kafka_produce_total",
            &[("topic", &dead_letters), ("result", "stored")],
            Exactly(1.0),
        ),
        // Nothing is left unacknowledged once both are stored.
        (
            "events_service_kafka_producer_queue_events",
            &[],
            Exactly(0.0),
        ),
        // Both records read, processed and committed: no lag left.
        (
            "events_service_consumer_lag",
            &[("topic", &topic), ("partition", "0")],
            Exactly(0.0),
        ),
        (
            "events_service_librdkafka_rx_messages_total",
            &[("client", &consumer)],
            AtLeast(2.0),
        ),
        (
            "events_service_librdkafka_broker_up",
            &[("client", &consumer)],
            Exactly(1.0),
        ),
        (
            "events_service_librdkafka_broker_up",
            &[("client", "producer")],
            Exactly(1.0),
        ),
        // Every one of librdkafka's series, for the producer (which sent two records: the event
        // and the dead letter) and the consumer.
        (
            "events_service_librdkafka_tx_messages_total",
            &[("client", "producer")],
            AtLeast(2.0),
        ),
        (
            "events_service_librdkafka_queue_messages",
            &[("client", "producer")],
            Exactly(0.0),
        ),
        (
            "events_service_librdkafka_queue_bytes",
            &[("client", "producer")],
            Exactly(0.0),
        ),
        (
            "events_service_librdkafka_reply_queue_ops",
            &[("client", &consumer)],
            AtLeast(0.0),
        ),
        (
            "events_service_librdkafka_broker_rtt_avg_seconds",
            &[("client", "producer")],
            AtLeast(1e-6),
        ),
        (
            "events_service_librdkafka_broker_rtt_p99_seconds",
            &[("client", "producer")],
            AtLeast(1e-6),
        ),
        (
            "events_service_librdkafka_broker_outbuf_requests",
            &[("client", &consumer)],
            AtLeast(0.0),
        ),
        (
            "events_service_librdkafka_broker_waitresp_requests",
            &[("client", &consumer)],
            AtLeast(0.0),
        ),
        (
            "events_service_librdkafka_broker_tx_errors_total",
            &[("client", "producer")],
            Exactly(0.0),
        ),
        (
            "events_service_librdkafka_broker_rx_errors_total",
            &[("client", "producer")],
            Exactly(0.0),
        ),
        (
            "events_service_librdkafka_broker_request_timeouts_total",
            &[("client", "producer")],
            Exactly(0.0),
        ),
        (
            "events_service_librdkafka_broker_disconnects_total",
            &[("client", "producer")],
            Exactly(0.0),
        ),
        ("events_service_http_connections", &[], AtLeast(1.0)),
    ];

    // The statistics arrive every 200 ms and the consumers commit every second.
    let started = Instant::now();
    loop {
        let text = app
            .client
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .expect("the service answers")
            .text()
            .await
            .expect("the metrics are text");
        let missing: Vec<String> = expected
            .iter()
            .filter_map(|(name, labels, wanted)| {
                let found = sample(&text, name, labels);
                (!found.is_some_and(|v| wanted.matches(v)))
                    .then(|| format!("{name}{labels:?} = {found:?}, wanted {wanted:?}"))
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "after {DEADLINE:?}:\n{}\n\n{text}",
            missing.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
