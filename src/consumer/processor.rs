//! What the built-in consumers do with each record: read the event and log it in the seed's
//! words, then report it to the live view (the stream, the statistics).

use std::borrow::Cow;
use std::sync::Arc;

use rdkafka::Message;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::domain::{EventAction, EventType, Timestamp};
use crate::live::{LiveEvent, LiveView, MAX_KEY_BYTES, ProcessedEvent, bounded_payload, prefix};
use crate::telemetry::untrusted;

/// The part of a record's value the processing needs: the service's envelope (README, "Kafka").
/// Its type and the payload's action are read as strings first, so that ones this version does
/// not know are counted as `other` rather than refused: a newer producer may write them.
#[derive(Deserialize)]
struct Envelope<'a> {
    id: Uuid,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    timestamp: Timestamp,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// The payload fields the live view needs, read without copying.
#[derive(Deserialize, Default)]
struct Facts<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
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
        let key = record.key().map(String::from_utf8_lossy);
        tracing::info!(
            "[CONSUMER] Topic: {}, Partition: {}, Offset: {}, Key: {}",
            record.topic(),
            record.partition(),
            record.offset(),
            untrusted(key.as_deref().unwrap_or(""))
        );
        let value = record.payload().ok_or(ProcessError::Empty)?;
        let envelope: Envelope = serde_json::from_slice(value)?;
        tracing::info!(
            "[EVENT PROCESSED] Type: {}, ID: {}, Timestamp: {}",
            untrusted(&envelope.event_type),
            envelope.id,
            envelope.timestamp
        );
        let event_type = EventType::from_name(&envelope.event_type);
        // A payload that is not an object still is an event: it just has no action.
        let facts: Facts = serde_json::from_str(envelope.payload.get()).unwrap_or_default();
        let action = event_type
            .zip(facts.action.or(facts.status))
            .and_then(|(event_type, name)| EventAction::parse(event_type, &name));
        let (payload, payload_bytes) = bounded_payload(envelope.payload);
        let event = ProcessedEvent {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            key: key
                .as_deref()
                .map(|key| prefix(key, MAX_KEY_BYTES).to_owned()),
            id: envelope.id,
            event_type,
            timestamp: envelope.timestamp,
            action,
            amount: facts.amount,
            truncated: payload_bytes.is_some(),
            payload_bytes,
            payload,
        };
        Ok(self.live.report(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{MAX_PAYLOAD_BYTES, PAYLOAD_PREVIEW_BYTES};
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
        let value = br#"{"id":"3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77","type":"payment","timestamp":"2025-01-01T10:00:00Z","payload":{"payment_id":7,"status":"completed","amount":9.5}}"#;
        let event = Processor::new(live.clone())
            .process(&record(Some(value)))
            .unwrap();
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
        for not_ours in [
            &br#"{"id":"x"}"#[..],
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
        assert_eq!(live.stats().processed_total, 0);
    }

    #[test]
    fn a_huge_record_from_another_producer_is_kept_cut_short_and_marked_so() {
        let live = Arc::new(LiveView::new(8, 4));
        let big = format!(
            r#"{{"id":"3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77","type":"movie","timestamp":"2025-01-01T10:00:00Z","payload":{{"action":"viewed","x":"{}"}}}}"#,
            "y".repeat(1_000_000)
        );
        let event = Processor::new(live)
            .process(&record(Some(big.as_bytes())))
            .unwrap();
        assert!(event.truncated);
        assert_eq!(event.payload_bytes, Some(1_000_026));
        assert!(
            event
                .payload
                .get()
                .starts_with(r#""{\"action\":\"viewed\""#)
        );
        assert!(event.payload.get().len() < 2 * PAYLOAD_PREVIEW_BYTES);
        assert_eq!(event.action_name(), "viewed");
        assert!(event.size() < MAX_PAYLOAD_BYTES);
        let json = serde_json::to_value(&*event).unwrap();
        assert_eq!(json["truncated"], true);
        assert!(json["payload"].is_string());
    }

    #[test]
    fn an_ordinary_event_is_not_marked_and_an_unknown_type_is_other() {
        let live = Arc::new(LiveView::new(8, 4));
        let value = br#"{"id":"3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77","type":"shown","timestamp":"2025-01-01T10:00:00Z","payload":{"action":"viewed"}}"#;
        let event = Processor::new(live).process(&record(Some(value))).unwrap();
        let json = serde_json::to_value(&*event).unwrap();
        assert!(json.get("truncated").is_none() && json.get("payload_bytes").is_none());
        assert_eq!(
            (&json["type"], &json["action"]),
            (&serde_json::json!("other"), &serde_json::json!("other")),
            "a type this version does not know"
        );
    }
}
