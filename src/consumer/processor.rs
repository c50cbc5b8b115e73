//! What the built-in consumers do with each record: read it as an event and log it in the
//! seed's words. (The live view reads the topics itself; see [`crate::live`].) Processed events
//! are also announced, to whoever listens (the tests do).

use std::sync::Arc;

use rdkafka::Message;
use tokio::sync::broadcast;

use crate::live::{LiveEvent, NotAnEvent, read};
use crate::telemetry::untrusted;

/// Why a record could not be processed.
pub type ProcessError = NotAnEvent;

/// How many processed events a listener may fall behind before it misses some.
const ANNOUNCE_BACKLOG: usize = 1024;

/// Processes records.
#[derive(Clone)]
pub struct Processor {
    announce: broadcast::Sender<LiveEvent>,
}

impl Default for Processor {
    fn default() -> Self {
        Self::new()
    }
}

impl Processor {
    pub fn new() -> Self {
        Self {
            announce: broadcast::channel(ANNOUNCE_BACKLOG).0,
        }
    }

    /// Every event processed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.announce.subscribe()
    }

    pub fn process(&self, record: &impl Message) -> Result<LiveEvent, ProcessError> {
        let key = record.key().map(String::from_utf8_lossy);
        tracing::info!(
            "[CONSUMER] Topic: {}, Partition: {}, Offset: {}, Key: {}",
            record.topic(),
            record.partition(),
            record.offset(),
            untrusted(key.as_deref().unwrap_or(""))
        );
        let (event, type_name) = read(record)?;
        tracing::info!(
            "[EVENT PROCESSED] Type: {}, ID: {}, Timestamp: {}",
            untrusted(&type_name),
            event.id,
            event.timestamp
        );
        let event = Arc::new(event);
        if self.announce.receiver_count() > 0 {
            let _ = self.announce.send(event.clone());
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
        let processor = Processor::new();
        let mut announced = processor.subscribe();
        let value = br#"{"id":"3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77","type":"payment","timestamp":"2025-01-01T10:00:00Z","payload":{"payment_id":7,"status":"completed","amount":9.5}}"#;
        let event = processor.process(&record(Some(value))).unwrap();
        assert_eq!(
            (
                event.id.to_string().as_str(),
                event.offset,
                event.key.as_deref()
            ),
            ("3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77", 42, Some("7"))
        );
        assert_eq!(
            (event.action_name(), event.amount),
            ("completed", Some(9.5))
        );
        let announced = announced.try_recv().unwrap();
        assert_eq!((&announced.id, announced.offset), (&event.id, event.offset));
    }

    #[test]
    fn unreadable_records_are_errors_not_panics_and_are_not_announced() {
        let processor = Processor::new();
        let mut announced = processor.subscribe();
        assert!(matches!(
            processor.process(&record(None)),
            Err(ProcessError::Empty)
        ));
        for not_ours in [
            &b"{not json"[..],
            br#"{"id":"x"}"#,
            br#"{"id":"not-a-uuid","type":"movie","timestamp":"2025-01-01T10:00:00Z","payload":{}}"#,
            br#"{"id":"3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77","type":"movie","timestamp":"yesterday","payload":{}}"#,
        ] {
            assert!(matches!(
                processor.process(&record(Some(not_ours))),
                Err(ProcessError::Unreadable(_))
            ));
        }
        assert!(
            announced.try_recv().is_err(),
            "nothing is announced for a skipped record"
        );
    }
}
