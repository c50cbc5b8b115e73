//! What the HTTP edge needs from Kafka, as a trait: the rdkafka producer implements it for real,
//! and router tests use an in-memory fake.

use std::borrow::Cow;

use async_trait::async_trait;
use chrono::SecondsFormat;

use crate::domain::{Event, EventPayload, MovieAction, PaymentStatus, UserAction};

/// One record ready to be produced.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRecord {
    pub topic: String,
    /// The entity id, so that one entity's events share a partition and keep their order.
    pub key: Option<Vec<u8>>,
    /// The event JSON, byte for byte as returned to the client.
    pub value: Vec<u8>,
    /// The service's own headers. Fixed values are borrowed, not copied for every record.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// Headers taken over from another record, byte for byte (a value may be null), written
    /// before `headers`: a dead letter keeps those of the record it stands for.
    pub copied_headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The header names every record carries: the service's own, and the CloudEvents attributes of
/// the Kafka protocol binding's binary mode (`ce_` and the attribute's name; `content-type` is
/// `datacontenttype`).
pub mod headers {
    pub const EVENT_ID: &str = "event-id";
    pub const EVENT_TYPE: &str = "event-type";
    pub const EVENT_ACTION: &str = "event-action";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const CE_SPECVERSION: &str = "ce_specversion";
    pub const CE_ID: &str = "ce_id";
    pub const CE_SOURCE: &str = "ce_source";
    pub const CE_TYPE: &str = "ce_type";
    pub const CE_TIME: &str = "ce_time";
}

/// The version of the CloudEvents specification the `ce_*` headers follow.
pub const CLOUDEVENTS_SPEC_VERSION: &str = "1.0";

impl OutgoingRecord {
    /// The record for `event`, whose serialised form is `value`, on the topic for its type. It is
    /// also a CloudEvent from `source` in binary mode: the headers carry its attributes and the
    /// value, the whole envelope, is its data.
    pub fn for_event(event: &Event, value: Vec<u8>, topic: String, source: &'static str) -> Self {
        let id = event.id.to_string();
        // Written as serde writes the envelope's `timestamp`, so the two strings are equal.
        let time = event
            .timestamp
            .get()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true);
        Self {
            topic,
            key: Some(event.payload.entity_id().to_string().into_bytes()),
            value,
            headers: vec![
                (headers::EVENT_ID, Cow::Owned(id.clone())),
                (
                    headers::EVENT_TYPE,
                    Cow::Borrowed(event.event_type.as_str()),
                ),
                (headers::EVENT_ACTION, Cow::Borrowed(event.payload.action())),
                (headers::CONTENT_TYPE, Cow::Borrowed("application/json")),
                (
                    headers::CE_SPECVERSION,
                    Cow::Borrowed(CLOUDEVENTS_SPEC_VERSION),
                ),
                (headers::CE_ID, Cow::Owned(id)),
                (headers::CE_SOURCE, Cow::Borrowed(source)),
                (
                    headers::CE_TYPE,
                    Cow::Borrowed(cloudevents_type(&event.payload)),
                ),
                (headers::CE_TIME, Cow::Owned(time)),
            ],
            copied_headers: Vec::new(),
        }
    }
}

/// The CloudEvents `type` of an event, `com.cinemaabyss.<type>.<action>`. Spelled out rather
/// than formatted per record; the compiler sees that every action has one, a test that each is
/// spelled right.
fn cloudevents_type(payload: &EventPayload) -> &'static str {
    match payload {
        EventPayload::Movie(e) => match e.action {
            MovieAction::Viewed => "com.cinemaabyss.movie.viewed",
            MovieAction::Rated => "com.cinemaabyss.movie.rated",
            MovieAction::Added => "com.cinemaabyss.movie.added",
            MovieAction::Updated => "com.cinemaabyss.movie.updated",
            MovieAction::Deleted => "com.cinemaabyss.movie.deleted",
        },
        EventPayload::User(e) => match e.action {
            UserAction::Registered => "com.cinemaabyss.user.registered",
            UserAction::LoggedIn => "com.cinemaabyss.user.logged_in",
            UserAction::UpdatedProfile => "com.cinemaabyss.user.updated_profile",
            UserAction::Deleted => "com.cinemaabyss.user.deleted",
        },
        EventPayload::Payment(e) => match e.status {
            PaymentStatus::Completed => "com.cinemaabyss.payment.completed",
            PaymentStatus::Failed => "com.cinemaabyss.payment.failed",
            PaymentStatus::Pending => "com.cinemaabyss.payment.pending",
            PaymentStatus::Refunded => "com.cinemaabyss.payment.refunded",
        },
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

    /// Records awaiting the broker's acknowledgement now, when the publisher knows (for
    /// `/metrics`).
    fn queued(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventType, Timestamp};
    use serde_json::{Value, json};

    const SOURCE: &str = "/cinemaabyss/test";

    fn event(event_type: EventType, body: Value) -> Event {
        let received = chrono::DateTime::parse_from_rfc3339("2025-01-01T10:00:00.25Z")
            .unwrap()
            .to_utc();
        let payload = EventPayload::parse(event_type, body.as_object().unwrap(), received.into())
            .expect("a valid event");
        Event::new(payload, received.into())
    }

    fn header<'a>(record: &'a OutgoingRecord, name: &str) -> &'a Cow<'static, str> {
        let mut found = record.headers.iter().filter(|(k, _)| *k == name);
        let (_, value) = found.next().unwrap_or_else(|| panic!("no {name} header"));
        assert!(found.next().is_none(), "{name} appears twice");
        value
    }

    #[test]
    fn an_event_record_is_a_cloudevent_in_binary_mode() {
        let body = json!({"payment_id": 456, "user_id": 123, "amount": 99.99,
                          "status": "completed", "timestamp": "2024-12-31T23:00:00+01:00"});
        let event = event(EventType::Payment, body);
        let value = serde_json::to_vec(&event).unwrap();
        let record = OutgoingRecord::for_event(&event, value.clone(), "t".into(), SOURCE);

        assert_eq!(record.value, value, "the data is the envelope, unchanged");
        assert_eq!(header(&record, "ce_specversion"), "1.0");
        assert_eq!(header(&record, "ce_id"), &event.id.to_string());
        assert_eq!(header(&record, "ce_source"), SOURCE);
        assert_eq!(
            header(&record, "ce_type"),
            "com.cinemaabyss.payment.completed"
        );
        assert_eq!(header(&record, "content-type"), "application/json");
        let envelope: Value = serde_json::from_slice(&value).unwrap();
        let time = header(&record, "ce_time");
        assert_eq!(time, envelope["timestamp"].as_str().unwrap());
        assert_eq!(
            time, "2025-01-01T10:00:00.250Z",
            "the envelope's time of receipt"
        );
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(time).unwrap(),
            event.timestamp.get()
        );
        // The service's own headers stay as they were.
        assert_eq!(header(&record, "event-id"), &event.id.to_string());
        assert_eq!(header(&record, "event-type"), "payment");
        assert_eq!(header(&record, "event-action"), "completed");
    }

    #[test]
    fn only_the_id_and_time_headers_are_allocated_per_record() {
        let event = event(
            EventType::Movie,
            json!({"movie_id": 1, "title": "The Matrix", "action": "viewed"}),
        );
        let record = OutgoingRecord::for_event(&event, Vec::new(), "t".into(), SOURCE);
        let owned: Vec<_> = record
            .headers
            .iter()
            .filter(|(_, v)| matches!(v, Cow::Owned(_)))
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(owned, ["event-id", "ce_id", "ce_time"]);
    }

    #[test]
    fn every_action_has_its_cloudevents_type() {
        let bodies = [
            (EventType::Movie, &MovieAction::NAMES[..], "action"),
            (EventType::User, &UserAction::NAMES[..], "action"),
            (EventType::Payment, &PaymentStatus::NAMES[..], "status"),
        ];
        for (event_type, actions, field) in bodies {
            for action in actions {
                let mut body = json!({"movie_id": 1, "title": "t", "rating": 5, "user_id": 2,
                                      "payment_id": 3, "amount": 1});
                body[field] = json!(action);
                let received = Timestamp::now();
                let payload = EventPayload::parse(event_type, body.as_object().unwrap(), received)
                    .expect("a valid event");
                assert_eq!(
                    cloudevents_type(&payload),
                    format!("com.cinemaabyss.{event_type}.{action}")
                );
            }
        }
    }
}
