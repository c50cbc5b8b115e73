//! Publishing records and learning where they were stored. [`Publisher`] holds what every way of
//! publishing shares: the batch rules, the produce metrics. Beneath it a [`Sink`] queues records:
//! the rdkafka producer for real ([`super::KafkaSink`]), an in-memory fake in tests, so that
//! router tests run the same batch and metrics code as the service.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, join_all};
use uuid::Uuid;

use super::lookup::Found;
use super::metrics::ProduceMetrics;
use super::record::OutgoingRecord;

/// Where Kafka stored a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// Why a record was not stored. Whether it may have been stored anyway is said per variant.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The producer's queue is full: nothing was sent; the client may retry later.
    #[error("the Kafka producer's queue is full")]
    QueueFull,
    /// No acknowledgement within the delivery timeout. With idempotence the record may still have
    /// been written, so the client should treat it as not stored and may retry.
    #[error("Kafka did not acknowledge the event within {0} ms")]
    TimedOut(u128),
    /// The broker or the client refused the record for good: sending it again unchanged cannot
    /// succeed until an operator changes something (its size, a permission, the topic).
    #[error("Kafka refused the event: {message}")]
    Rejected { reason: Rejection, message: String },
    /// The broker or the client failed; a retry may succeed.
    #[error("Kafka refused the event: {0}")]
    Failed(String),
}

/// Why Kafka refused a record for good (Vector's Kafka sink tells these apart the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Larger than the client's or the topic's `message.max.bytes`.
    TooLarge,
    /// The service's principal may not write to the topic.
    NotAuthorized,
    /// The topic does not exist (and the broker will not create it).
    UnknownTopic,
    /// The broker found the record itself invalid (its key, say, for a compacted topic).
    Invalid,
}

impl PublishError {
    /// Whether sending the same record again may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, PublishError::Rejected { .. })
    }

    /// The `result` label of the produce counter.
    pub fn label(&self) -> &'static str {
        match self {
            PublishError::QueueFull => "queue_full",
            PublishError::TimedOut(_) => "timed_out",
            PublishError::Failed(_) | PublishError::Rejected { .. } => "failed",
        }
    }
}

/// The broker's acknowledgement of an enqueued record, or its failure; never later than the
/// delivery timeout.
pub type PendingDelivery = BoxFuture<'static, Result<Delivery, PublishError>>;

/// A queue of records on their way to Kafka.
pub trait Sink: Send + Sync + 'static {
    /// Hands `record` over without waiting for anything; [`PublishError::QueueFull`] at once
    /// when there is no room.
    fn enqueue(&self, record: &OutgoingRecord) -> Result<PendingDelivery, PublishError>;

    /// Hands `records` over together, in their order, as [`Sink::enqueue`] does one: a sink
    /// with several producers puts them all in the same one, so that a batch keeps its order.
    fn enqueue_all(
        &self,
        records: &[OutgoingRecord],
    ) -> Vec<Result<PendingDelivery, PublishError>> {
        records.iter().map(|record| self.enqueue(record)).collect()
    }

    /// Records awaiting the broker's acknowledgement now, and the most the queue holds.
    fn queue(&self) -> QueueLevel;

    /// The records of `topic` with one of `ids` as event id that the attempts made at
    /// `attempts` (ms since the epoch, the records' timestamps) stored ([`super::Lookup`]).
    fn find(&self, topic: Arc<str>, ids: Vec<Uuid>, attempts: Vec<i64>) -> PendingLookup;
}

/// The records found, or why they could not be looked for.
pub type PendingLookup = BoxFuture<'static, Result<HashMap<Uuid, Found>, PublishError>>;

/// How full a sink's queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLevel {
    pub queued: usize,
    pub capacity: usize,
}

/// Publishes records through a sink, counting every outcome.
#[derive(Clone)]
pub struct Publisher {
    sink: Arc<dyn Sink>,
    metrics: Arc<ProduceMetrics>,
}

impl Publisher {
    pub fn new(sink: Arc<dyn Sink>, metrics: ProduceMetrics) -> Self {
        Self {
            sink,
            metrics: Arc::new(metrics),
        }
    }

    /// Resolves once the broker has acknowledged the record (acks=all) or it has failed.
    pub async fn publish(&self, record: OutgoingRecord) -> Result<Delivery, PublishError> {
        let started = Instant::now();
        let topic = record.topic.clone();
        let result = match self.sink.enqueue(&record) {
            // Only the topic is needed while Kafka is awaited; the sink has its own copy.
            Ok(pending) => {
                drop(record);
                pending.await
            }
            Err(error) => Err(error),
        };
        self.metrics.record(&topic, &result, started.elapsed());
        result
    }

    /// Publishes `records` concurrently, with one result per record in their order. Every record
    /// is queued before any is awaited, so that the batch travels together. Fails as a whole,
    /// publishing nothing, only when the queue has no room for all of them now
    /// ([`PublishError::QueueFull`]); other requests may still fill the queue meanwhile, and
    /// those records then fail one by one.
    pub async fn publish_batch(
        &self,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<Result<Delivery, PublishError>>, PublishError> {
        let level = self.sink.queue();
        if level.queued + records.len() > level.capacity {
            for record in &records {
                self.metrics
                    .record(&record.topic, &Err(PublishError::QueueFull), Duration::ZERO);
            }
            return Err(PublishError::QueueFull);
        }
        let started = Instant::now();
        let pending = self.sink.enqueue_all(&records);
        let outcomes = pending.into_iter().zip(records).map(|(pending, record)| {
            let topic = record.topic;
            async move {
                let result = match pending {
                    Ok(delivery) => delivery.await,
                    Err(error) => Err(error),
                };
                self.metrics.record(&topic, &result, started.elapsed());
                result
            }
        });
        Ok(join_all(outcomes).await)
    }

    /// The records among `ids` that earlier attempts, made at `attempts`, stored in `topic`.
    pub async fn find(
        &self,
        topic: Arc<str>,
        ids: Vec<Uuid>,
        attempts: Vec<i64>,
    ) -> Result<HashMap<Uuid, Found>, PublishError> {
        if ids.is_empty() || attempts.is_empty() {
            return Ok(HashMap::new());
        }
        self.sink.find(topic, ids, attempts).await
    }

    /// Records awaiting the broker's acknowledgement now.
    pub fn queued(&self) -> usize {
        self.sink.queue().queued
    }

    /// Sets the queue gauge to the records awaiting acknowledgement now (when scraped).
    pub fn sample_queue(&self) {
        self.metrics.queued(self.queued());
    }
}
