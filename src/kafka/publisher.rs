//! What the HTTP edge needs from Kafka, as a trait: the rdkafka producer implements it for real,
//! and router tests use an in-memory fake.

use async_trait::async_trait;

use crate::domain::Event;

/// One record ready to be produced.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRecord {
    pub topic: String,
    /// The entity id, so that one entity's events share a partition and keep their order.
    pub key: Option<Vec<u8>>,
    /// The event JSON, byte for byte as returned to the client.
    pub value: Vec<u8>,
    /// The service's own headers.
    pub headers: Vec<(&'static str, String)>,
    /// Headers taken over from another record, byte for byte (a value may be null), written
    /// before `headers`: a dead letter keeps those of the record it stands for.
    pub copied_headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The header names every record carries.
pub mod headers {
    pub const EVENT_ID: &str = "event-id";
    pub const EVENT_TYPE: &str = "event-type";
    pub const EVENT_ACTION: &str = "event-action";
    pub const CONTENT_TYPE: &str = "content-type";
}

impl OutgoingRecord {
    /// The record for `event`, whose serialised form is `value`, on the topic for its type.
    pub fn for_event(event: &Event, value: Vec<u8>, topic: String) -> Self {
        Self {
            topic,
            key: Some(event.payload.entity_id().to_string().into_bytes()),
            value,
            headers: vec![
                (headers::EVENT_ID, event.id.to_string()),
                (headers::EVENT_TYPE, event.event_type.as_str().to_owned()),
                (headers::EVENT_ACTION, event.payload.action().to_owned()),
                (headers::CONTENT_TYPE, "application/json".to_owned()),
            ],
            copied_headers: Vec::new(),
        }
    }
}

/// Where Kafka stored a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// Why a record was not stored. Whether it may have been stored anyway is said per variant.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The producer's queue is full: nothing was sent; the client may retry later.
    #[error("the Kafka producer's queue is full")]
    QueueFull,
    /// No acknowledgement within the delivery timeout. With idempotence the record may still have
    /// been written, so the client should treat it as not stored and may retry.
    #[error("Kafka did not acknowledge the event within {0} ms")]
    TimedOut(u128),
    /// The broker or the client refused the record.
    #[error("Kafka refused the event: {0}")]
    Failed(String),
}

/// Publishes records and reports where they were stored.
#[async_trait]
pub trait EventPublisher: Send + Sync + 'static {
    /// Resolves once the broker has acknowledged the record (acks=all) or it has failed; never
    /// later than the configured delivery timeout.
    async fn publish(&self, record: OutgoingRecord) -> Result<Delivery, PublishError>;

    /// Publishes `records` concurrently, with one result per record in their order. Fails as a
    /// whole, publishing nothing, only when the batch cannot be taken on now
    /// ([`PublishError::QueueFull`]).
    async fn publish_batch(
        &self,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<Result<Delivery, PublishError>>, PublishError> {
        Ok(futures::future::join_all(records.into_iter().map(|r| self.publish(r))).await)
    }
}
