//! What the built-in consumers do with each record: read the event and log it in the seed's
//! words, then tell any listeners (tests today, live views later).

use rdkafka::Message;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::broadcast;

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
    /// The event's payload as stored, unparsed: processing does not need its fields.
    pub payload: Box<RawValue>,
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

/// Why a record could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("the record has no value")]
    Empty,
    #[error("the record is not an event: {0}")]
    Unreadable(#[from] serde_json::Error),
}

/// Processes records and announces each processed event.
#[derive(Clone)]
pub struct Processor {
    processed: broadcast::Sender<ProcessedEvent>,
}

impl Processor {
    pub fn new(processed: broadcast::Sender<ProcessedEvent>) -> Self {
        Self { processed }
    }

    pub fn process(&self, record: &impl Message) -> Result<ProcessedEvent, ProcessError> {
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
        let event = ProcessedEvent {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            key,
            id: envelope.id,
            event_type: envelope.event_type,
            timestamp: envelope.timestamp,
            payload: envelope.payload,
        };
        // Nobody listening is the usual case: then there is nothing to copy.
        if self.processed.receiver_count() > 0 {
            let _ = self.processed.send(event.clone());
        }
        Ok(event)
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
    fn an_event_is_processed_and_announced() {
        let (tx, mut rx) = broadcast::channel(4);
        let value = br#"{"id":"abc","type":"movie","timestamp":"2025-01-01T10:00:00Z","payload":{"movie_id":7}}"#;
        let event = Processor::new(tx).process(&record(Some(value))).unwrap();
        assert_eq!(
            (event.id.as_str(), event.offset, event.key.as_deref()),
            ("abc", 42, Some("7"))
        );
        assert_eq!(event.payload.get(), r#"{"movie_id":7}"#);
        let announced = rx.try_recv().unwrap();
        assert_eq!((announced.id, announced.offset), (event.id, event.offset));
    }

    #[test]
    fn unreadable_records_are_errors_not_panics() {
        let (tx, mut rx) = broadcast::channel(4);
        let processor = Processor::new(tx);
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
            rx.try_recv().is_err(),
            "nothing is announced for a skipped record"
        );
    }
}
