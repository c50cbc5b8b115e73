//! The built-in consumers: one per topic, all in the service's group, running in parallel.
//!
//! Delivery guarantee: at least once. A record's offset is stored only after it was processed,
//! or after a record that cannot be processed was written to its dead-letter topic; only stored
//! offsets are committed: periodically by librdkafka, on partition revocation, and once more at
//! shutdown. A crash can therefore repeat records processed since the last commit, but never
//! skip one.

mod dead_letter;
mod processor;

use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

pub use dead_letter::DeadLetters;
pub use processor::{ProcessError, ProcessedEvent, Processor};

use crate::config::KafkaConfig;
use crate::kafka::{StatsContext, client};
use crate::metrics;

/// How often a consumer thread looks up from polling to see whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// One consumer per topic, created (so that a bad configuration stops start-up) but not yet
/// subscribed: they join the group once the topics exist.
pub struct Consumers(Vec<(String, BaseConsumer<StatsContext>)>);

impl Consumers {
    pub fn new(kafka: &KafkaConfig, topics: &[String]) -> anyhow::Result<Self> {
        topics
            .iter()
            .map(|topic| {
                let consumer = client::consumer(kafka)
                    .create_with_context(StatsContext::consumer(topic))
                    .context(
                        "librdkafka rejected the consumer configuration (check the RDKAFKA_* variables)",
                    )?;
                Ok((topic.clone(), consumer))
            })
            .collect::<anyhow::Result<_>>()
            .map(Consumers)
    }

    /// Subscribes each consumer to its topic and runs them all until `stop` is cancelled; each
    /// then commits what it processed.
    pub async fn run(
        self,
        processor: Processor,
        dead_letters: DeadLetters,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Handle::current();
        let mut running = Vec::with_capacity(self.0.len());
        for (topic, consumer) in self.0 {
            consumer
                .subscribe(&[&topic])
                .with_context(|| format!("could not subscribe to {topic}"))?;
            tracing::info!("[CONSUMER] Started consumer for topic {topic}");
            let (processor, dead_letters) = (processor.clone(), dead_letters.clone());
            let (stop, runtime) = (stop.clone(), runtime.clone());
            running.push(tokio::task::spawn_blocking(move || {
                consume(&consumer, &processor, &dead_letters, &stop, &runtime);
                commit_and_close(consumer);
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
    consumer: &BaseConsumer<StatsContext>,
    processor: &Processor,
    dead_letters: &DeadLetters,
    stop: &CancellationToken,
    runtime: &tokio::runtime::Handle,
) {
    while !stop.is_cancelled() {
        match consumer.poll(POLL_INTERVAL) {
            None => {}
            Some(Ok(record)) => {
                let _span = crate::trace::process_span(&record).entered();
                match processor.process(&record) {
                    Ok(event) => metrics::event_processed(&event.topic, &event.event_type),
                    Err(error) => {
                        if !runtime.block_on(dead_letters.divert(&record, &error, stop)) {
                            return; // Stopping before the dead letter was stored: keep the offset.
                        }
                    }
                }
                if let Err(error) = consumer.store_offset_from_message(&record) {
                    tracing::warn!("[CONSUMER] Could not store offset: {error}");
                }
            }
            // Errors here (a broker going away, a rebalance in progress) are reported by
            // librdkafka, which keeps retrying on its own.
            Some(Err(error)) => tracing::warn!("[CONSUMER] Error: {error}"),
        }
    }
}

/// Commits the stored offsets and leaves the group. Both may wait on the broker; the shutdown
/// deadline bounds how long the service waits for them.
fn commit_and_close(consumer: BaseConsumer<StatsContext>) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => {}
        Err(e) => tracing::warn!("[CONSUMER] Final commit failed: {e}"),
    }
    drop(consumer);
}
