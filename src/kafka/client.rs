//! librdkafka client configurations, built in one place so that every client sees the same
//! brokers and pass-through options, and so that the producer's guarantees are explicit.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

fn with_options(mut config: ClientConfig, options: &BTreeMap<String, String>) -> ClientConfig {
    for (name, value) in options {
        config.set(name, value);
    }
    config
}

/// The producer queue's size limit in KiB (librdkafka's default is 1 GiB).
const QUEUE_MAX_KBYTES: u32 = 64 * 1024;

/// The longest pause between attempts to reach a broker that is away.
const RECONNECT_BACKOFF_MAX_MS: u32 = 1000;

/// The settings every client shares: brokers, then the `RDKAFKA_*` pass-through options.
pub fn common(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        // librdkafka doubles the pause between attempts to reach a broker up to 10 s: a broker
        // back after an outage of a few delivery timeouts waited up to that long for the service
        // to come back to it (RELIABILITY.md, scenario 5), answering 500s meanwhile.
        .set(
            "reconnect.backoff.max.ms",
            RECONNECT_BACKOFF_MAX_MS.to_string(),
        );
    with_options(config, &kafka.client_options)
}

/// The producer: acknowledged by all in-sync replicas, idempotent (no duplicates or reordering
/// on retry), bounded in time, and batching only briefly so that a single request is fast.
/// `RDKAFKA_PRODUCER_*` options come last and may override these.
pub fn producer(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = common(kafka);
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "message.timeout.ms",
            kafka.delivery_timeout.as_millis().to_string(),
        )
        .set("linger.ms", kafka.linger_ms.to_string())
        .set("socket.nagle.disable", "true")
        // The queue bounds the events in flight, and so the memory they take: a request that
        // finds it full is answered 503 at once.
        .set(
            "queue.buffering.max.messages",
            kafka.max_queued_events.to_string(),
        )
        .set("queue.buffering.max.kbytes", QUEUE_MAX_KBYTES.to_string());
    with_statistics(&mut config, kafka);
    with_options(config, &kafka.producer_options)
}

/// A consumer in the service's group, at least once: offsets are stored by hand after an event
/// is processed, and only stored offsets are committed (automatically, and at shutdown).
pub fn consumer(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = common(kafka);
    config
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "true")
        // librdkafka's default is 5 s: a crash would make the group process again up to five
        // seconds of events (RELIABILITY.md, scenario 4). A commit a second is cheap.
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", &kafka.auto_offset_reset)
        .set("enable.partition.eof", "false");
    with_full_fetches(&mut config);
    with_statistics(&mut config, kafka);
    with_options(config, &kafka.consumer_options)
}

/// A fetch waits at the broker for this much data, or [`FETCH_WAIT_MS`].
const FETCH_MIN_BYTES: u32 = 64 * 1024;
const FETCH_WAIT_MS: u32 = 100;

/// Fetches that wait for 64 KiB or 100 ms, for the group's consumers and the live view's
/// reader. librdkafka's default (`fetch.min.bytes` 1) has the broker, on the same cores as
/// everything else, answer a fetch the moment each record lands: at concurrency 1 that was one
/// fetch, two thread wake-ups and a lone record processed per request, 0.05 to 0.1 ms of each
/// request's time; under load, many small fetches (BENCHMARKS.md, "Consumers that fetched every
/// record"). Idle, a record is read within 100 ms. `RDKAFKA_CONSUMER_*` may set either.
fn with_full_fetches(config: &mut ClientConfig) {
    config
        .set("fetch.min.bytes", FETCH_MIN_BYTES.to_string())
        .set("fetch.wait.max.ms", FETCH_WAIT_MS.to_string());
}

/// A reader outside the group: assigned its partitions with explicit offsets, never joining the
/// group (it does not subscribe) nor committing. It names the group all the same, as
/// librdkafka's consumers must, so it needs no ACL beyond the group's. `RDKAFKA_CONSUMER_*`
/// options apply to it as to the group's consumers, but they cannot make it join or commit. The
/// searches for earlier attempts' records ([`super::Lookup`]) use it as it is.
pub fn reader(kafka: &KafkaConfig) -> ClientConfig {
    reader_with(common(kafka), kafka)
}

/// The live view's reader ([`crate::live`]), a [`reader`] of every partition, with full
/// fetches as the group's consumers: it then costs the broker few fetches, and the service 10%
/// more requests a second at c64 (BENCHMARKS.md). `RDKAFKA_CONSUMER_*` may set either.
pub fn live_reader(kafka: &KafkaConfig) -> ClientConfig {
    let mut base = common(kafka);
    with_full_fetches(&mut base);
    reader_with(base, kafka)
}

fn reader_with(base: ClientConfig, kafka: &KafkaConfig) -> ClientConfig {
    let mut config = with_options(base, &kafka.consumer_options);
    config
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    config
}

/// librdkafka's statistics, for the clients whose context exports them
/// ([`StatsContext`](super::StatsContext)): the default context would log them instead.
fn with_statistics(config: &mut ClientConfig, kafka: &KafkaConfig) {
    config.set(
        "statistics.interval.ms",
        kafka.statistics_interval.as_millis().to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    fn kafka(vars: &[(&str, &str)]) -> KafkaConfig {
        config(vars).unwrap().kafka
    }

    #[test]
    fn every_client_tries_a_broker_that_is_away_again_within_a_second_unless_told_otherwise() {
        let default = kafka(&[]);
        for config in [producer(&default), consumer(&default), reader(&default)] {
            assert_eq!(config.get("reconnect.backoff.max.ms"), Some("1000"));
        }
        let told = kafka(&[("RDKAFKA_RECONNECT_BACKOFF_MAX_MS", "5000")]);
        assert_eq!(
            producer(&told).get("reconnect.backoff.max.ms"),
            Some("5000")
        );
    }

    #[test]
    fn the_groups_consumers_and_the_live_reader_fetch_in_full_unless_told_otherwise() {
        let default = kafka(&[]);
        for config in [consumer(&default), live_reader(&default)] {
            assert_eq!(config.get("fetch.min.bytes"), Some("65536"));
            assert_eq!(config.get("fetch.wait.max.ms"), Some("100"));
        }
        // The searches for earlier attempts answer a request: they never wait for more.
        assert_eq!(reader(&default).get("fetch.wait.max.ms"), None);
        let told = kafka(&[("RDKAFKA_CONSUMER_FETCH_WAIT_MAX_MS", "10")]);
        for config in [consumer(&told), live_reader(&told)] {
            assert_eq!(config.get("fetch.wait.max.ms"), Some("10"));
        }
    }
}
