//! The rdkafka producers, as the [`Sink`] that publishing queues records in: a batching one
//! (`KAFKA_LINGER_MS`) and a prompt one (`KAFKA_IDLE_LINGER_MS`, 0) that takes a record when no other is in
//! flight, so that an idle request pays no linger and a loaded service still batches (linger 0
//! under load halves the throughput: BENCHMARKS.md).
//!
//! Both are idempotent and acknowledged by all in-sync replicas. Records of one key keep their
//! order within each producer, and a batch goes to one producer whole. Two requests are ordered
//! only when the client waits for the first's answer before it sends the second (HTTP has no
//! other way), and then the first is stored before the second is sent, whichever producer
//! takes either.
//!
//! An idempotent producer that hits a fatal error (an out-of-order sequence, an unknown producer
//! id) refuses every record from then on, and librdkafka cannot recover it: the service replaces
//! it with a new one ([`KafkaSink::replace_if_fatal`], from the health check). Records still in
//! the old producer fail with the fatal error, so their requests are answered 5xx: nothing
//! acknowledged is lost, and the new producer takes the next records.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::client;
use super::lookup::Lookup;
use super::publisher::{
    Delivery, PendingDelivery, PendingLookup, PublishError, QueueLevel, Rejection, Sink,
};
use super::record::OutgoingRecord;
use super::reports::{PendingReport, ReportingProducer};
use super::stats::StatsContext;
use crate::config::{DELIVERY_REPORT_GRACE, KafkaConfig};
use crate::domain::Timestamp;
use crate::support::{lock_read, lock_write};
use crate::telemetry::Metrics;

pub type KafkaProducer = ReportingProducer;

/// A fatal error of the producer, and whether a new producer took over.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Replacement {
    /// librdkafka's error code and reason.
    pub error: String,
    /// False when no new producer could be made: the service cannot publish, and liveness
    /// fails so that it is restarted.
    pub replaced: bool,
    pub at: Timestamp,
}

pub struct KafkaSink {
    /// The producer that batches (`KAFKA_LINGER_MS`): most records under load, metadata, health.
    batching: Lane,
    /// The producer that sends at once (`KAFKA_IDLE_LINGER_MS`), for a record that finds none
    /// in flight; none when both lingers are the same.
    prompt: Option<Lane>,
    metrics: Metrics,
    delivery_timeout: Duration,
    /// The producer queue's capacity in records (`queue.buffering.max.messages`).
    capacity: usize,
    /// Finds what earlier attempts stored.
    lookup: Arc<Lookup>,
}

/// One producer, replaced when it hits a fatal error.
struct Lane {
    /// For log lines: the prompt or the batching producer.
    name: &'static str,
    /// Its `client` label in the librdkafka metrics.
    client: &'static str,
    config: ClientConfig,
    producer: RwLock<Arc<KafkaProducer>>,
}

impl Lane {
    fn new(
        name: &'static str,
        client: &'static str,
        config: ClientConfig,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let producer = create(client, &config, metrics)?;
        Ok(Self {
            name,
            client,
            config,
            producer: RwLock::new(Arc::new(producer)),
        })
    }

    fn producer(&self) -> Arc<KafkaProducer> {
        lock_read(&self.producer).clone()
    }

    fn in_flight(&self) -> usize {
        usize::try_from(lock_read(&self.producer).in_flight_count()).unwrap_or(0)
    }

    fn replace_if_fatal(&self, metrics: &Metrics) -> Option<Replacement> {
        let current = self.producer();
        let (code, reason) = current.client().fatal_error()?;
        let error = format!("{code}: {reason}");
        let name = self.name;
        let replaced = match create(self.client, &self.config, metrics) {
            Ok(fresh) => {
                *lock_write(&self.producer) = Arc::new(fresh);
                tracing::error!(
                    "[PRODUCER] The {name} producer hit a fatal error ({error}); a new one took over"
                );
                true
            }
            Err(create_error) => {
                tracing::error!(
                    "[PRODUCER] The {name} producer hit a fatal error ({error}) and could not be replaced: {create_error:#}"
                );
                false
            }
        };
        Some(Replacement {
            error,
            replaced,
            at: Timestamp::now(),
        })
    }
}

impl KafkaSink {
    /// Creates the producers. They connect lazily: this succeeds while the broker is down, and
    /// fails only on a configuration librdkafka rejects (for example a bad `RDKAFKA_*` option).
    pub fn new(kafka: &KafkaConfig, metrics: &Metrics) -> anyhow::Result<Self> {
        let config = client::producer(kafka);
        let capacity = config
            .get("queue.buffering.max.messages")
            .and_then(|n| n.parse().ok())
            .context("queue.buffering.max.messages must be a number")?;
        let prompt = match kafka.idle_linger_ms {
            idle if idle == kafka.linger_ms => None,
            idle => {
                let mut prompt = config.clone();
                prompt.set("linger.ms", idle.to_string());
                Some(Lane::new("prompt", "producer:prompt", prompt, metrics)?)
            }
        };
        Ok(Self {
            batching: Lane::new("batching", "producer", config, metrics)?,
            prompt,
            metrics: metrics.clone(),
            delivery_timeout: kafka.delivery_timeout,
            capacity,
            lookup: Arc::new(Lookup::new(kafka)),
        })
    }

    /// The batching producer, for metadata requests and the health check.
    pub fn producer(&self) -> Arc<KafkaProducer> {
        self.batching.producer()
    }

    /// The prompt producer, if there is one (tests reach it to inject a fatal error).
    pub fn prompt_producer(&self) -> Option<Arc<KafkaProducer>> {
        self.prompt.as_ref().map(Lane::producer)
    }

    /// When a producer has hit a fatal error, replaces it with a new one and says what the
    /// error was. The old one is dropped once its last records have failed.
    pub fn replace_if_fatal(&self) -> Option<Replacement> {
        let prompt = self.prompt.as_ref();
        let replaced = prompt.and_then(|lane| lane.replace_if_fatal(&self.metrics));
        self.batching.replace_if_fatal(&self.metrics).or(replaced)
    }

    /// Waits until every queued record is delivered or has failed. Blocks the calling thread.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let started = std::time::Instant::now();
        if let Some(prompt) = &self.prompt {
            prompt.producer().flush(timeout)?;
        }
        let left = timeout.saturating_sub(started.elapsed());
        self.batching.producer().flush(left)
    }

    /// The producer a record goes to now: the prompt one when nothing is in flight (no other
    /// record could join it within the linger), else the batching one.
    fn lane(&self) -> &Lane {
        let Some(prompt) = &self.prompt else {
            return &self.batching;
        };
        match prompt.in_flight() + self.batching.in_flight() {
            0 => prompt,
            _ => &self.batching,
        }
    }

    fn classify(&self, error: KafkaError) -> PublishError {
        classify(error, self.delivery_timeout)
    }
}

fn create(
    client: &'static str,
    config: &ClientConfig,
    metrics: &Metrics,
) -> anyhow::Result<KafkaProducer> {
    ReportingProducer::new(config, StatsContext::named(client, metrics))
}

impl KafkaSink {
    /// Hands `record` to `producer` without waiting.
    fn enqueue_to(
        &self,
        producer: &KafkaProducer,
        record: &OutgoingRecord,
    ) -> Result<PendingDelivery, PublishError> {
        let copied = record.copied_headers.iter().map(|(key, value)| Header {
            key: key.as_str(),
            value: value.as_deref(),
        });
        let own = record.headers.iter().map(|(key, value)| Header {
            key,
            value: Some(value.as_str().as_bytes()),
        });
        let headers = copied.chain(own).fold(
            OwnedHeaders::new_with_capacity(record.copied_headers.len() + record.headers.len()),
            |h, header| h.insert(header),
        );
        let to_send = BaseRecord {
            key: record.key.as_deref(),
            timestamp: record.timestamp,
            headers: Some(headers),
            ..BaseRecord::to(&record.topic).payload(&record.value[..])
        };
        // A full queue comes back at once, as a 503.
        let report = producer
            .send(to_send)
            .map_err(|error| self.classify(error))?;
        Ok(delivered(report, self.delivery_timeout).boxed())
    }
}

impl Sink for KafkaSink {
    fn enqueue(&self, record: &OutgoingRecord) -> Result<PendingDelivery, PublishError> {
        self.enqueue_to(&self.lane().producer(), record)
    }

    fn enqueue_all(
        &self,
        records: &[OutgoingRecord],
    ) -> Vec<Result<PendingDelivery, PublishError>> {
        let producer = self.lane().producer();
        records
            .iter()
            .map(|record| self.enqueue_to(&producer, record))
            .collect()
    }

    fn queue(&self) -> QueueLevel {
        QueueLevel {
            queued: self.batching.in_flight() + self.prompt.as_ref().map_or(0, Lane::in_flight),
            capacity: self.capacity,
        }
    }

    fn find(&self, topic: Arc<str>, ids: Vec<Uuid>, attempts: Vec<i64>) -> PendingLookup {
        let lookup = self.lookup.clone();
        async move {
            let search = move || lookup.find(&topic, &ids, &attempts);
            match tokio::task::spawn_blocking(search).await {
                Ok(Ok(found)) => Ok(found),
                Ok(Err(error)) => Err(PublishError::Failed(format!(
                    "could not look for the earlier attempt's records: {error:#}"
                ))),
                Err(_) => Err(PublishError::Failed(
                    "the search for earlier records failed".into(),
                )),
            }
        }
        .boxed()
    }
}

/// Waits for the broker's acknowledgement of an enqueued record, never past the timeout.
async fn delivered(report: PendingReport, timeout: Duration) -> Result<Delivery, PublishError> {
    match tokio::time::timeout(timeout + DELIVERY_REPORT_GRACE, report).await {
        Ok(Ok(Ok(stored))) => confirmed(stored),
        Ok(Ok(Err(error))) => Err(classify(error, timeout)),
        Ok(Err(_canceled)) => Err(PublishError::Failed("the producer was shut down".into())),
        Err(_elapsed) => Err(PublishError::TimedOut(timeout.as_millis())),
    }
}

/// A report of success names where the record is stored, or it is no proof that it is.
/// librdkafka reports a retried send that the broker answers DUPLICATE_SEQUENCE_NUMBER as
/// delivered, without an offset ("previous send succeeded but was not acknowledged"); one such
/// record, answered 201 with offset -1001, was not in its partition afterwards (fault scenario
/// 2, a three-node cluster in its first seconds). Answered as a failure that may have stored
/// the event, a retry under the same Idempotency-Key looks for it before publishing again.
fn confirmed(stored: Delivery) -> Result<Delivery, PublishError> {
    if stored.offset < 0 {
        return Err(PublishError::Failed(format!(
            "Kafka reported the event delivered to partition {} without its offset; it may not \
             be stored",
            stored.partition
        )));
    }
    Ok(stored)
}

/// Kafka's refusals, permanent or worth retrying.
fn classify(error: KafkaError, delivery_timeout: Duration) -> PublishError {
    use RDKafkaErrorCode as Code;
    let rejected = |reason| PublishError::Rejected {
        reason,
        message: error.to_string(),
    };
    match error.rdkafka_error_code() {
        Some(Code::QueueFull) => PublishError::QueueFull,
        Some(Code::MessageTimedOut) => PublishError::TimedOut(delivery_timeout.as_millis()),
        Some(Code::MessageSizeTooLarge | Code::MessageBatchTooLarge | Code::InvalidMessageSize) => {
            rejected(Rejection::TooLarge)
        }
        Some(Code::TopicAuthorizationFailed | Code::ClusterAuthorizationFailed) => {
            rejected(Rejection::NotAuthorized)
        }
        Some(Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::UnknownPartition) => {
            rejected(Rejection::UnknownTopic)
        }
        Some(
            Code::InvalidRecord | Code::InvalidMessage | Code::InvalidTopic | Code::PolicyViolation,
        ) => rejected(Rejection::Invalid),
        _ => PublishError::Failed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_without_an_offset_is_not_taken_for_a_stored_event() {
        let stored = Delivery {
            partition: 1,
            offset: 7,
        };
        assert_eq!(confirmed(stored).unwrap(), stored);
        // RD_KAFKA_OFFSET_INVALID, as a DUPLICATE_SEQUENCE_NUMBER "success" reports it.
        let unplaced = Delivery {
            partition: 1,
            offset: -1001,
        };
        match confirmed(unplaced) {
            Err(error @ PublishError::Failed(_)) => assert!(error.is_retryable(), "{error}"),
            other => panic!("expected a retryable failure, got {other:?}"),
        }
    }

    #[test]
    fn refusals_for_good_are_told_from_failures_worth_retrying() {
        let error = |code| KafkaError::MessageProduction(code);
        let timeout = Duration::from_secs(5);
        for (code, reason) in [
            (RDKafkaErrorCode::MessageSizeTooLarge, Rejection::TooLarge),
            (
                RDKafkaErrorCode::TopicAuthorizationFailed,
                Rejection::NotAuthorized,
            ),
            (
                RDKafkaErrorCode::UnknownTopicOrPartition,
                Rejection::UnknownTopic,
            ),
            (RDKafkaErrorCode::InvalidRecord, Rejection::Invalid),
        ] {
            match classify(error(code), timeout) {
                PublishError::Rejected { reason: found, .. } => assert_eq!(found, reason),
                other => panic!("{code:?}: {other:?}"),
            }
        }
        assert!(matches!(
            classify(error(RDKafkaErrorCode::QueueFull), timeout),
            PublishError::QueueFull
        ));
        assert!(matches!(
            classify(error(RDKafkaErrorCode::MessageTimedOut), timeout),
            PublishError::TimedOut(5000)
        ));
        let leader = classify(error(RDKafkaErrorCode::NotLeaderForPartition), timeout);
        assert!(leader.is_retryable(), "{leader:?}");
    }
}
