//! What the built-in consumers do with each record: read the event and log it in the seed's
//! words, then report it to the live view (the stream, the statistics).

use rdkafka::Message;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::live::{LiveEvent, LiveView};

/// An event the consumers have processed, with where it was read from.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessedEvent {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: String,
    /// The payload's `action`, or a payment's `status`; empty when it has neither.
    pub action: String,
    /// The event's payload as stored, unparsed: processing does not need its fields.
    pub payload: Box<RawValue>,
    /// A payment's amount, for the statistics.
    #[serde(skip)]
    pub amount: Option<f64>,
}

impl ProcessedEvent {
    /// Where it was read from, `<topic>-<partition>-<offset>`: its id in the event stream.
    pub fn stream_id(&self) -> String {
        format!("{}-{}-{}", self.topic, self.partition, self.offset)
    }
}

/// The part of a record's value the processing needs; the payload is kept as raw JSON.
#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    timestamp: String,
    payload: Box<RawValue>,
}

/// The payload fields the live view needs, read without copying.
#[derive(Deserialize, Default)]
struct Facts<'a> {
    #[serde(borrow)]
    action: Option<&'a str>,
    #[serde(borrow)]
    status: Option<&'a str>,
    amount: Option<f64>,
}

/// Why a record could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("the record has no value")]
    Empty,
    #[error("the record is not an event: {0}")]
    Unreadable(#[from] serde_json::Error),
}

/// Processes records and reports each processed event to the live view.
#[derive(Clone)]
pub struct Processor {
    live: Arc<LiveView>,
}

impl Processor {
    pub fn new(live: Arc<LiveView>) -> Self {
        Self { live }
    }

    pub fn process(&self, record: &impl Message) -> Result<LiveEvent, ProcessError> {
        let key = record
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        tracing::info!(
            "[CONSUMER] Topic: {}, Partition: {}, Offset: {}, Key: {}",
            record.topic(),
            record.partition(),
            record.offset(),
            key.as_deref().unwrap_or("")
        );
        let envelope: Envelope =
            serde_json::from_slice(record.payload().ok_or(ProcessError::Empty)?)?;
        tracing::info!(
            "[EVENT PROCESSED] Type: {}, ID: {}, Timestamp: {}",
            envelope.event_type,
            envelope.id,
            envelope.timestamp
        );
        // A payload that is not an object still is an event: it just has no action.
        let facts: Facts = serde_json::from_str(envelope.payload.get()).unwrap_or_default();
        let event = ProcessedEvent {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            key,
            id: envelope.id,
            event_type: envelope.event_type,
            timestamp: envelope.timestamp,
            action: facts.action.or(facts.status).unwrap_or_default().to_owned(),
            amount: facts.amount,
            payload: envelope.payload,
        };
        Ok(self.live.report(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    fn record(value: Option<&[u8]>) -> OwnedMessage {
        OwnedMessage::new(
            value.map(<[u8]>::to_vec),
            Some(b"7".to_vec()),
            "movie-events".into(),
            Timestamp::NotAvailable,
            0,
            42,
            None,
        )
    }

    #[test]
    fn an_event_is_processed_counted_and_announced() {
        let live = Arc::new(LiveView::new(8, 4));
        let mut announced = live.subscribe();
        let value = br#"{"id":"abc","type":"payment","timestamp":"2025-01-01T10:00:00Z","payload":{"payment_id":7,"status":"completed","amount":9.5}}"#;
        let event = Processor::new(live.clone())
            .process(&record(Some(value)))
            .unwrap();
        assert_eq!(
            (event.id.as_str(), event.offset, event.key.as_deref()),
            ("abc", 42, Some("7"))
        );
        assert_eq!(
            (event.action.as_str(), event.amount),
            ("completed", Some(9.5))
        );
        assert_eq!(
            event.payload.get(),
            r#"{"payment_id":7,"status":"completed","amount":9.5}"#
        );
        assert_eq!(event.stream_id(), "movie-events-0-42");
        let announced = announced.try_recv().unwrap();
        assert_eq!((&announced.id, announced.offset), (&event.id, event.offset));
        let stats = live.stats();
        assert_eq!(stats.payments["completed"].amount, 9.5);
    }

    #[test]
    fn unreadable_records_are_errors_not_panics() {
        let live = Arc::new(LiveView::new(8, 4));
        let mut announced = live.subscribe();
        let processor = Processor::new(live.clone());
        assert!(matches!(
            processor.process(&record(None)),
            Err(ProcessError::Empty)
        ));
        assert!(matches!(
            processor.process(&record(Some(b"{not json"))),
            Err(ProcessError::Unreadable(_))
        ));
        assert!(matches!(
            processor.process(&record(Some(br#"{"id":"x"}"#))),
            Err(ProcessError::Unreadable(_))
        ));
        assert!(
            announced.try_recv().is_err(),
            "nothing is announced for a skipped record"
        );
        assert_eq!(live.stats().processed_total, 0);
    }
}
