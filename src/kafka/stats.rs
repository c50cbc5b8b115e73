//! librdkafka's statistics as metrics. Every client of the service (the producer and each
//! consumer) has a [`StatsContext`]; librdkafka hands it a JSON document every
//! `KAFKA_STATISTICS_INTERVAL_MS`, on the thread that polls the client (the producer's polling
//! thread, a consumer's own thread between two records). So the callback reads only the few
//! fields exported, and sets gauges: nothing else.

use std::collections::HashMap;

use metrics::SharedString;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use serde::Deserialize;

use crate::metrics::{CONSUMER_LAG, librdkafka::*};

/// The context of every Kafka client of the service: librdkafka's statistics become metrics
/// labelled with the client's name. Logs and errors go where rdkafka's default context sends
/// them.
#[derive(Clone)]
pub struct StatsContext {
    client: SharedString,
}

impl StatsContext {
    /// The context of the producer (`client="producer"`).
    pub fn producer() -> Self {
        Self {
            client: SharedString::const_str("producer"),
        }
    }

    /// The context of the consumer of `topic` (`client="consumer:<topic>"`).
    pub fn consumer(topic: &str) -> Self {
        Self {
            client: SharedString::from(format!("consumer:{topic}")),
        }
    }

    fn record(&self, stats: &Statistics) {
        let client = || self.client.clone();
        metrics::gauge!(QUEUE_MESSAGES, "client" => client()).set(stats.msg_cnt as f64);
        metrics::gauge!(QUEUE_BYTES, "client" => client()).set(stats.msg_size as f64);
        metrics::gauge!(REPLY_QUEUE, "client" => client()).set(stats.replyq as f64);
        metrics::counter!(TX_MESSAGES, "client" => client()).absolute(stats.txmsgs);
        metrics::counter!(RX_MESSAGES, "client" => client()).absolute(stats.rxmsgs);
        // Brokers with a node id only: the bootstrap entries and the logical ones (the group
        // coordinator) stand for connections that the node's own entry also counts.
        for (name, broker) in stats.brokers.iter().filter(|(_, b)| b.nodeid >= 0) {
            let labels = || [("client", client()), ("broker", name.clone().into())];
            let up = if broker.state == "UP" { 1.0 } else { 0.0 };
            metrics::gauge!(BROKER_UP, &labels()).set(up);
            metrics::gauge!(BROKER_OUTBUF, &labels()).set(broker.outbuf_cnt as f64);
            metrics::gauge!(BROKER_WAITRESP, &labels()).set(broker.waitresp_cnt as f64);
            metrics::counter!(BROKER_TX_ERRORS, &labels()).absolute(broker.txerrs);
            metrics::counter!(BROKER_RX_ERRORS, &labels()).absolute(broker.rxerrs);
            metrics::counter!(BROKER_REQUEST_TIMEOUTS, &labels()).absolute(broker.req_timeouts);
            metrics::counter!(BROKER_DISCONNECTS, &labels()).absolute(broker.disconnects);
            // Without a request in the interval there is no round trip to report: the gauges
            // keep their last value until they go stale.
            if broker.rtt.cnt > 0 {
                metrics::gauge!(BROKER_RTT_AVG, &labels()).set(micros(broker.rtt.avg));
                metrics::gauge!(BROKER_RTT_P99, &labels()).set(micros(broker.rtt.p99));
            }
        }
        for (topic, partitions) in &stats.topics {
            for partition in partitions.partitions.values() {
                // Only the partitions this client consumes right now, and once librdkafka knows
                // both ends: -1 means not known (yet). A revoked partition's lag would stay
                // frozen at its last value; not setting it lets it go stale.
                if partition.fetch_state == "active" && partition.consumer_lag >= 0 {
                    metrics::gauge!(
                        CONSUMER_LAG,
                        "topic" => topic.clone(),
                        "partition" => partition.partition.to_string(),
                    )
                    .set(partition.consumer_lag as f64);
                }
            }
        }
    }
}

fn micros(value: i64) -> f64 {
    value as f64 / 1e6
}

impl ClientContext for StatsContext {
    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<Statistics>(statistics) {
            Ok(stats) => self.record(&stats),
            Err(error) => tracing::warn!("librdkafka statistics not understood: {error}"),
        }
    }
}

impl ConsumerContext for StatsContext {}

/// The part of librdkafka's statistics that is exported
/// (<https://github.com/confluentinc/librdkafka/blob/master/STATISTICS.md>); the rest of the
/// document is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Statistics {
    msg_cnt: u64,
    msg_size: u64,
    replyq: i64,
    txmsgs: u64,
    rxmsgs: u64,
    brokers: HashMap<String, Broker>,
    topics: HashMap<String, Topic>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Broker {
    nodeid: i32,
    state: String,
    outbuf_cnt: i64,
    waitresp_cnt: i64,
    txerrs: u64,
    rxerrs: u64,
    req_timeouts: u64,
    disconnects: u64,
    /// In microseconds.
    rtt: Window,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Window {
    avg: i64,
    p99: i64,
    cnt: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Topic {
    partitions: HashMap<String, Partition>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Partition {
    partition: i32,
    fetch_state: String,
    consumer_lag: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A consumer's statistics, cut down from a real document (librdkafka 2.12). Partition 1 is known
    /// but not fetched by this consumer (as after a revocation), with a lag from earlier.
    const CONSUMER_STATS: &str = r#"{
        "name": "rdkafka#consumer-2", "type": "consumer", "ts": 1, "msg_cnt": 0, "msg_size": 0,
        "replyq": 0, "txmsgs": 0, "rxmsgs": 7,
        "brokers": {
            "127.0.0.1:9092/1": {"name": "127.0.0.1:9092/1", "nodeid": 1, "state": "UP",
                "outbuf_cnt": 0, "waitresp_cnt": 1, "txerrs": 0, "rxerrs": 0,
                "req_timeouts": 0, "disconnects": 0,
                "rtt": {"min": 100, "max": 900, "avg": 350, "p99": 900, "cnt": 4}},
            "GroupCoordinator": {"name": "GroupCoordinator", "nodeid": -1, "state": "UP",
                "rtt": {"avg": 0, "p99": 0, "cnt": 0}}
        },
        "topics": {"movie-events": {"topic": "movie-events", "partitions": {
            "0": {"partition": 0, "fetch_state": "active", "consumer_lag": 3,
                  "consumer_lag_stored": 1},
            "1": {"partition": 1, "fetch_state": "none", "consumer_lag": 5},
            "-1": {"partition": -1, "fetch_state": "none", "consumer_lag": -1}
        }}},
        "cgrp": {"state": "up"}
    }"#;

    #[test]
    fn the_exported_fields_are_read_and_the_rest_skipped() {
        let stats: Statistics = serde_json::from_str(CONSUMER_STATS).unwrap();
        assert_eq!((stats.rxmsgs, stats.brokers.len()), (7, 2));
        let broker = &stats.brokers["127.0.0.1:9092/1"];
        assert_eq!((broker.nodeid, broker.rtt.avg, broker.rtt.cnt), (1, 350, 4));
        let partitions = &stats.topics["movie-events"].partitions;
        assert_eq!(partitions["0"].consumer_lag, 3);
        assert_eq!(partitions["-1"].fetch_state, "none");
    }

    #[test]
    fn only_consumed_partitions_and_real_brokers_are_exported() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            StatsContext::consumer("movie-events").stats_raw(CONSUMER_STATS.as_bytes())
        });
        let text = handle.render();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let lag: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(CONSUMER_LAG))
            .collect();
        assert_eq!(
            lag,
            [r#"events_service_consumer_lag{topic="movie-events",partition="0"} 3"#]
        );
        assert!(lines.contains(
            &r#"events_service_librdkafka_broker_rtt_avg_seconds{client="consumer:movie-events",broker="127.0.0.1:9092/1"} 0.00035"#
        ), "{text}");
        assert!(
            lines.contains(
                &r#"events_service_librdkafka_rx_messages_total{client="consumer:movie-events"} 7"#
            ),
            "{text}"
        );
        assert!(!text.contains("GroupCoordinator"), "{text}");
    }

    #[test]
    fn a_document_without_the_optional_parts_is_read() {
        let stats: Statistics = serde_json::from_str(r#"{"type": "producer"}"#).unwrap();
        assert!(stats.brokers.is_empty() && stats.topics.is_empty());
    }
}
