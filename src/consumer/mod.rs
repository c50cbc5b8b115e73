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
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

pub use dead_letter::DeadLetters;
pub use processor::{ProcessError, ProcessedEvent, Processor};

use crate::config::KafkaConfig;
use crate::kafka::client;

/// How long the final commit at shutdown may take.
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// One consumer per topic, created (so that a bad configuration stops start-up) but not yet
/// subscribed: they join the group once the topics exist.
pub struct Consumers(Vec<(String, StreamConsumer)>);

impl Consumers {
    pub fn new(kafka: &KafkaConfig, topics: &[String]) -> anyhow::Result<Self> {
        topics
            .iter()
            .map(|topic| {
                let consumer = client::consumer(kafka).create().context(
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
        let mut running = Vec::with_capacity(self.0.len());
        for (topic, consumer) in self.0 {
            consumer
                .subscribe(&[&topic])
                .with_context(|| format!("could not subscribe to {topic}"))?;
            tracing::info!("[CONSUMER] Started consumer for topic {topic}");
            running.push(tokio::spawn(consume(
                consumer,
                processor.clone(),
                dead_letters.clone(),
                stop.clone(),
            )));
        }
        for consumer in running {
            consumer.await.context("a consumer task failed")?;
        }
        Ok(())
    }
}

async fn consume(
    consumer: StreamConsumer,
    processor: Processor,
    dead_letters: DeadLetters,
    stop: CancellationToken,
) {
    loop {
        let record = tokio::select! {
            _ = stop.cancelled() => break,
            record = consumer.recv() => record,
        };
        match record {
            Ok(record) => {
                if let Err(error) = processor.process(&record) {
                    if !dead_letters.divert(&record, &error, &stop).await {
                        break; // Stopping before the dead letter was stored: keep the offset.
                    }
                }
                if let Err(error) = consumer.store_offset_from_message(&record) {
                    tracing::warn!("[CONSUMER] Could not store offset: {error}");
                }
            }
            // Errors here (a broker going away, a rebalance in progress) are reported by
            // librdkafka, which keeps retrying on its own.
            Err(error) => tracing::warn!("[CONSUMER] Error: {error}"),
        }
    }
    // Committing and closing block the thread, and may wait on the broker.
    let closing = tokio::task::spawn_blocking(move || {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(e)
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::NoOffset) => {}
            Err(e) => tracing::warn!("[CONSUMER] Final commit failed: {e}"),
        }
        drop(consumer);
    });
    if tokio::time::timeout(FINAL_COMMIT_TIMEOUT, closing)
        .await
        .is_err()
    {
        tracing::warn!("[CONSUMER] Final commit did not finish within {FINAL_COMMIT_TIMEOUT:?}");
    }
}
