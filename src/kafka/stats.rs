//! librdkafka's statistics as metrics. Every client of the service (the producer and each
//! consumer) has a [`StatsContext`]; librdkafka hands it its statistics every
//! `KAFKA_STATISTICS_INTERVAL_MS`, on the thread that polls the client (the producer's polling
//! thread, a consumer's own thread between two records), parsed by rdkafka into
//! [`Statistics`]. The callback only sets the few series exported.

use metrics::SharedString;
use rdkafka::Statistics;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;

use crate::telemetry::Metrics;
use crate::telemetry::metrics::{CONSUMER_LAG, librdkafka::*};

/// The context of every Kafka client of the service: librdkafka's statistics become metrics
/// labelled with the client's name. Logs and errors go where rdkafka's default context sends
/// them.
#[derive(Clone)]
pub struct StatsContext {
    client: SharedString,
    metrics: Metrics,
}

impl StatsContext {
    /// The context of a client named `name` (`client="<name>"`: `producer`, `producer:prompt`).
    pub fn named(name: &'static str, metrics: &Metrics) -> Self {
        Self {
            client: SharedString::const_str(name),
            metrics: metrics.clone(),
        }
    }

    /// The context of the consumer of `topic` (`client="consumer:<topic>"`).
    pub fn consumer(topic: &str, metrics: &Metrics) -> Self {
        Self {
            client: SharedString::from(format!("consumer:{topic}")),
            metrics: metrics.clone(),
        }
    }

    fn record(&self, stats: &Statistics) {
        let m = &self.metrics;
        let client = [("client", self.client.clone())];
        m.gauge(QUEUE_MESSAGES, &client).set(stats.msg_cnt as f64);
        m.gauge(QUEUE_BYTES, &client).set(stats.msg_size as f64);
        m.gauge(REPLY_QUEUE, &client).set(stats.replyq as f64);
        m.counter(TX_MESSAGES, &client)
            .absolute(stats.txmsgs.max(0) as u64);
        m.counter(RX_MESSAGES, &client)
            .absolute(stats.rxmsgs.max(0) as u64);
        // Brokers with a node id only: the bootstrap entries and the logical ones (the group
        // coordinator) stand for connections that the node's own entry also counts.
        for (name, broker) in stats.brokers.iter().filter(|(_, b)| b.nodeid >= 0) {
            let labels = [
                ("client", self.client.clone()),
                ("broker", SharedString::from(name.clone())),
            ];
            let up = if broker.state == "UP" { 1.0 } else { 0.0 };
            m.gauge(BROKER_UP, &labels).set(up);
            m.gauge(BROKER_OUTBUF, &labels)
                .set(broker.outbuf_cnt as f64);
            m.gauge(BROKER_WAITRESP, &labels)
                .set(broker.waitresp_cnt as f64);
            m.counter(BROKER_TX_ERRORS, &labels).absolute(broker.txerrs);
            m.counter(BROKER_RX_ERRORS, &labels).absolute(broker.rxerrs);
            m.counter(BROKER_REQUEST_TIMEOUTS, &labels)
                .absolute(broker.req_timeouts);
            let disconnects = broker.disconnects.unwrap_or(0).max(0) as u64;
            m.counter(BROKER_DISCONNECTS, &labels).absolute(disconnects);
            // Without a request in the interval there is no round trip to report: the gauges
            // keep their last value until they go stale.
            if let Some(rtt) = broker.rtt.as_ref().filter(|rtt| rtt.cnt > 0) {
                m.gauge(BROKER_RTT_AVG, &labels).set(micros(rtt.avg));
                m.gauge(BROKER_RTT_P99, &labels).set(micros(rtt.p99));
            }
        }
        for (topic, partitions) in &stats.topics {
            for partition in partitions.partitions.values() {
                // Only the partitions this client consumes right now, and once librdkafka knows
                // both ends: -1 means not known (yet). A revoked partition's lag would stay
                // frozen at its last value; not setting it lets it go stale.
                if partition.fetch_state == "active" && partition.consumer_lag >= 0 {
                    let labels = [
                        ("topic", SharedString::from(topic.clone())),
                        (
                            "partition",
                            SharedString::from(partition.partition.to_string()),
                        ),
                    ];
                    m.gauge(CONSUMER_LAG, &labels)
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
    fn stats(&self, statistics: Statistics) {
        self.record(&statistics);
    }
}

impl ConsumerContext for StatsContext {}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::statistics::{Broker, Partition, Topic, Window};

    /// A consumer's statistics as librdkafka reports them: partition 1 is known but not fetched
    /// by this consumer (as after a revocation), with a lag from earlier.
    fn consumer_stats() -> Statistics {
        let partition = |partition, fetch_state: &str, consumer_lag| Partition {
            partition,
            fetch_state: fetch_state.into(),
            consumer_lag,
            ..Default::default()
        };
        let topic = Topic {
            topic: "movie-events".into(),
            partitions: [
                (0, partition(0, "active", 3)),
                (1, partition(1, "none", 5)),
                (-1, partition(-1, "none", -1)),
            ]
            .into(),
            ..Default::default()
        };
        let broker = Broker {
            name: "127.0.0.1:9092/1".into(),
            nodeid: 1,
            state: "UP".into(),
            waitresp_cnt: 1,
            rtt: Some(Window {
                avg: 350,
                p99: 900,
                cnt: 4,
                ..Default::default()
            }),
            ..Default::default()
        };
        let coordinator = Broker {
            name: "GroupCoordinator".into(),
            nodeid: -1,
            state: "UP".into(),
            ..Default::default()
        };
        Statistics {
            client_type: "consumer".into(),
            rxmsgs: 7,
            brokers: [
                ("127.0.0.1:9092/1".to_owned(), broker),
                ("GroupCoordinator".to_owned(), coordinator),
            ]
            .into(),
            topics: [("movie-events".to_owned(), topic)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_consumed_partitions_and_real_brokers_are_exported() {
        let metrics = Metrics::new();
        StatsContext::consumer("movie-events", &metrics).stats(consumer_stats());
        let text = metrics.render();
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
}
