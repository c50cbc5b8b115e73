//! The one shared rdkafka producer, as the [`Sink`] that publishing queues records in.
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
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::client;
use super::lookup::Lookup;
use super::publisher::{
    Delivery, PendingDelivery, PendingLookup, PublishError, QueueLevel, Rejection, Sink,
};
use super::record::OutgoingRecord;
use super::stats::StatsContext;
use crate::config::{DELIVERY_REPORT_GRACE, KafkaConfig};
use crate::domain::Timestamp;
use crate::support::{lock_read, lock_write};
use crate::telemetry::Metrics;

pub type KafkaProducer = FutureProducer<StatsContext>;

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
    producer: RwLock<Arc<KafkaProducer>>,
    config: ClientConfig,
    metrics: Metrics,
    delivery_timeout: Duration,
    /// The producer queue's capacity in records (`queue.buffering.max.messages`).
    capacity: usize,
    /// Finds what earlier attempts stored.
    lookup: Arc<Lookup>,
}

impl KafkaSink {
    /// Creates the producer. It connects lazily: this succeeds while the broker is down, and
    /// fails only on a configuration librdkafka rejects (for example a bad `RDKAFKA_*` option).
    pub fn new(kafka: &KafkaConfig, metrics: &Metrics) -> anyhow::Result<Self> {
        let config = client::producer(kafka);
        let capacity = config
            .get("queue.buffering.max.messages")
            .and_then(|n| n.parse().ok())
            .context("queue.buffering.max.messages must be a number")?;
        let producer = create(&config, metrics)?;
        Ok(Self {
            producer: RwLock::new(Arc::new(producer)),
            config,
            metrics: metrics.clone(),
            delivery_timeout: kafka.delivery_timeout,
            capacity,
            lookup: Arc::new(Lookup::new(kafka)),
        })
    }

    /// The producer in use now, for metadata requests and the health check.
    pub fn producer(&self) -> Arc<KafkaProducer> {
        lock_read(&self.producer).clone()
    }

    /// When the producer has hit a fatal error, replaces it with a new one and says what the
    /// error was. The old one is dropped once its last records have failed.
    pub fn replace_if_fatal(&self) -> Option<Replacement> {
        let current = self.producer();
        let (code, reason) = current.client().fatal_error()?;
        let error = format!("{code}: {reason}");
        let replaced = match create(&self.config, &self.metrics) {
            Ok(fresh) => {
                *lock_write(&self.producer) = Arc::new(fresh);
                tracing::error!(
                    "[PRODUCER] The producer hit a fatal error ({error}); a new one took over"
                );
                true
            }
            Err(create_error) => {
                tracing::error!(
                    "[PRODUCER] The producer hit a fatal error ({error}) and could not be replaced: {create_error:#}"
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

    /// Waits until every queued record is delivered or has failed. Blocks the calling thread.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer().flush(timeout)
    }

    fn classify(&self, error: KafkaError) -> PublishError {
        classify(error, self.delivery_timeout)
    }
}

fn create(config: &ClientConfig, metrics: &Metrics) -> anyhow::Result<KafkaProducer> {
    config
        .create_with_context(StatsContext::producer(metrics))
        .context("librdkafka rejected the producer configuration (check the RDKAFKA_* variables)")
}

impl Sink for KafkaSink {
    fn enqueue(&self, record: &OutgoingRecord) -> Result<PendingDelivery, PublishError> {
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
        let mut future_record = FutureRecord::to(&record.topic)
            .payload(&record.value)
            .headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key);
        }
        if let Some(timestamp) = record.timestamp {
            future_record = future_record.timestamp(timestamp);
        }
        // `send_result` hands a full queue back at once; `send` would sleep and retry.
        let delivery = self
            .producer()
            .send_result(future_record)
            .map_err(|(error, _)| self.classify(error))?;
        Ok(delivered(delivery, self.delivery_timeout).boxed())
    }

    fn queue(&self) -> QueueLevel {
        QueueLevel {
            queued: usize::try_from(self.producer().in_flight_count()).unwrap_or(0),
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
async fn delivered(delivery: DeliveryFuture, timeout: Duration) -> Result<Delivery, PublishError> {
    match tokio::time::timeout(timeout + DELIVERY_REPORT_GRACE, delivery).await {
        Ok(Ok(Ok(stored))) => Ok(Delivery {
            partition: stored.partition,
            offset: stored.offset,
        }),
        Ok(Ok(Err((error, _)))) => Err(classify(error, timeout)),
        Ok(Err(_canceled)) => Err(PublishError::Failed("the producer was shut down".into())),
        Err(_elapsed) => Err(PublishError::TimedOut(timeout.as_millis())),
    }
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
