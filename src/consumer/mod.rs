//! The built-in consumers: one per topic, all in the service's group, running in parallel.
//!
//! Delivery guarantee: at least once. A record's offset is stored only after it was processed,
//! or after a record that cannot be processed was written to its dead-letter topic; only stored
//! offsets are committed: periodically by librdkafka, on partition revocation, and once more at
//! shutdown. A crash can therefore repeat records processed since the last commit, but never
//! skip one. While a dead letter cannot be written its partition is held ([`hold`]); the
//! consumer's other partitions go on.

mod dead_letter;
mod hold;
mod metrics;
mod processor;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::Message;
use rdkafka::Statistics;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

pub use dead_letter::{DeadLetters, letter_headers};
pub use hold::{HeldPartition, HeldPartitions};
pub use processor::{ProcessError, Processor};

use crate::config::KafkaConfig;
use crate::kafka::{StatsContext, client};
use crate::telemetry::Metrics;
use hold::Holds;
use metrics::ConsumerMetrics;

/// How often a consumer thread looks up from polling to see whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often it looks up while it holds a partition, to see whether the letter is written.
const HOLD_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A consumer's context: librdkafka's statistics as metrics, and word of each rebalance.
pub struct GroupContext {
    stats: StatsContext,
    revoked: AtomicBool,
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        self.stats.stats(statistics);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Revoke(_)) {
            self.revoked.store(true, Ordering::Relaxed);
        }
    }
}

/// One consumer per topic, created (so that a bad configuration stops start-up) but not yet
/// subscribed: they join the group once the topics exist.
pub struct Consumers {
    consumers: Vec<(String, BaseConsumer<GroupContext>)>,
    metrics: Metrics,
}

impl Consumers {
    pub fn new(kafka: &KafkaConfig, topics: &[String], metrics: &Metrics) -> anyhow::Result<Self> {
        let consumers = topics
            .iter()
            .map(|topic| {
                let context = GroupContext {
                    stats: StatsContext::consumer(topic, metrics),
                    revoked: AtomicBool::new(false),
                };
                let consumer = client::consumer(kafka)
                    .create_with_context(context)
                    .context(
                        "librdkafka rejected the consumer configuration (check the RDKAFKA_* variables)",
                    )?;
                Ok((topic.clone(), consumer))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            consumers,
            metrics: metrics.clone(),
        })
    }

    /// Subscribes each consumer to its topic and runs them all until `stop` is cancelled; each
    /// then commits what it processed. Partitions held for want of a dead letter are reported
    /// in `held`.
    pub async fn run(
        self,
        processor: Processor,
        dead_letters: DeadLetters,
        held: HeldPartitions,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Handle::current();
        let mut running = Vec::with_capacity(self.consumers.len());
        for (topic, consumer) in self.consumers {
            consumer
                .subscribe(&[&topic])
                .with_context(|| format!("could not subscribe to {topic}"))?;
            tracing::info!("[CONSUMER] Started consumer for topic {topic}");
            let processor = processor.clone();
            let metrics = Arc::new(ConsumerMetrics::new(&self.metrics, &topic));
            let (held, dead_letters) = (held.clone(), dead_letters.clone());
            let holds = Holds::new(&topic, held, dead_letters, metrics.clone(), runtime.clone());
            let stop = stop.clone();
            running.push(tokio::task::spawn_blocking(move || {
                consume(&consumer, &processor, holds, &metrics, &stop);
                commit_and_close(consumer, &topic);
            }));
        }
        for consumer in running {
            consumer.await.context("a consumer thread failed")?;
        }
        Ok(())
    }
}

/// Polls and processes records until `stop`, on a thread of its own: processing is synchronous,
/// and off the async workers it cannot delay the HTTP answers they are busy with.
fn consume(
    consumer: &BaseConsumer<GroupContext>,
    processor: &Processor,
    mut holds: Holds,
    metrics: &ConsumerMetrics,
    stop: &CancellationToken,
) {
    while !stop.is_cancelled() {
        holds.tick(consumer);
        let wait = if holds.is_empty() {
            POLL_INTERVAL
        } else {
            HOLD_POLL_INTERVAL
        };
        let polled = consumer.poll(wait);
        if consumer.context().revoked.swap(false, Ordering::Relaxed) {
            holds.forget(consumer);
        }
        match polled {
            None => {}
            // Fetched before its partition was paused: it comes again once the hold ends.
            Some(Ok(record)) if holds.holds(record.partition()) => {}
            Some(Ok(record)) => {
                let _span = crate::kafka::trace::process_span(&record).entered();
                match processor.process(&record) {
                    Ok(event) => {
                        metrics.processed(event.event_type);
                        if let Err(error) = consumer.store_offset_from_message(&record) {
                            tracing::warn!("[CONSUMER] Could not store offset: {error}");
                        }
                    }
                    // Its offset is stored once its dead letter is.
                    Err(error) => holds.hold(consumer, record.detach(), &error),
                }
            }
            // Errors here (a broker going away, a rebalance in progress) are reported by
            // librdkafka, which keeps retrying on its own.
            Some(Err(error)) => tracing::warn!("[CONSUMER] Error: {error}"),
        }
    }
}

/// Commits the stored offsets and leaves the group. Both may wait on the broker (on a group
/// coordinator that died, until the cluster moves the group); the shutdown deadline bounds how
/// long the service waits for them.
fn commit_and_close(consumer: BaseConsumer<GroupContext>, topic: &str) {
    let started = Instant::now();
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => {}
        Err(e) => tracing::warn!("[CONSUMER] Final commit failed: {e}"),
    }
    drop(consumer);
    let took = started.elapsed().as_millis();
    tracing::info!("[CONSUMER] Stopped consumer for topic {topic} (commit and close: {took} ms)");
}
