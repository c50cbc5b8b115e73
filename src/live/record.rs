//! Reading a record as an event of the service's: its envelope (README, "Kafka") into a
//! [`ProcessedEvent`], bounded in size whoever wrote it, in the wire format or not. The built-in
//! consumers read each record so to process it, the live view's reader so to show it.

use std::borrow::Cow;

use rdkafka::Message;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::event::{MAX_KEY_BYTES, ProcessedEvent, bounded_payload, prefix};
use crate::domain::{EventAction, EventType, Timestamp};
use crate::kafka::wire;

/// The envelope. Its type and the payload's action are read as strings first, so that ones
/// this version does not know are counted as `other` rather than refused: a newer producer may
/// write them. The id and the time are the envelope's own: without them it is no event.
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

/// Why a record is not an event.
#[derive(Debug, thiserror::Error)]
pub enum NotAnEvent {
    #[error("the record has no value")]
    Empty,
    #[error("the record is not an event: {0}")]
    Unreadable(#[from] serde_json::Error),
}

/// `record` as an event, and the type its envelope names (for the log line: one this version
/// does not know is `other` in the event).
pub fn read(record: &impl Message) -> Result<(ProcessedEvent, String), NotAnEvent> {
    let value = record.payload().ok_or(NotAnEvent::Empty)?;
    // A value in the wire format (SCHEMA_REGISTRY_WIRE_FORMAT) is its JSON after the schema id.
    let envelope: Envelope = serde_json::from_slice(wire::data(value))?;
    let event_type = EventType::from_name(&envelope.event_type);
    // A payload that is not an object still is an event: it just has no action.
    let facts: Facts = serde_json::from_str(envelope.payload.get()).unwrap_or_default();
    let action = event_type
        .zip(facts.action.or(facts.status))
        .and_then(|(event_type, name)| EventAction::parse(event_type, &name));
    let (payload, payload_bytes) = bounded_payload(envelope.payload);
    let key = record.key().map(String::from_utf8_lossy);
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
    Ok((event, envelope.event_type.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{MAX_PAYLOAD_BYTES, PAYLOAD_PREVIEW_BYTES};
    use rdkafka::Timestamp as RecordTime;
    use rdkafka::message::OwnedMessage;

    fn record(value: &[u8]) -> OwnedMessage {
        OwnedMessage::new(
            Some(value.to_vec()),
            Some(b"7".to_vec()),
            "movie-events".into(),
            RecordTime::NotAvailable,
            0,
            42,
            None,
        )
    }

    #[test]
    fn an_event_of_the_service_is_read_typed() {
        let value = br#"{"id":"3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77","type":"payment","timestamp":"2025-01-01T10:00:00Z","payload":{"payment_id":7,"status":"completed","amount":9.5}}"#;
        let (event, type_name) = read(&record(value)).unwrap();
        assert_eq!(type_name, "payment");
        assert_eq!(
            (event.type_name(), event.action_name()),
            ("payment", "completed")
        );
        assert_eq!(event.amount, Some(9.5));
        assert_eq!(
            event.payload.get(),
            r#"{"payment_id":7,"status":"completed","amount":9.5}"#
        );
        assert_eq!(
            (event.topic.as_str(), event.partition, event.offset),
            ("movie-events", 0, 42)
        );
    }

    #[test]
    fn a_record_in_the_wire_format_is_read_after_its_schema_id() {
        let value = br#"{"id":"3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77","type":"movie","timestamp":"2025-01-01T10:00:00Z","payload":{"action":"viewed"}}"#;
        let (event, type_name) = read(&record(&wire::frame(7, value))).unwrap();
        assert_eq!(
            (type_name.as_str(), event.action_name()),
            ("movie", "viewed")
        );
        assert_eq!(event.payload.get(), r#"{"action":"viewed"}"#);
    }

    #[test]
    fn a_huge_record_from_another_producer_is_kept_cut_short_and_marked_so() {
        let big = format!(
            r#"{{"id":"3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77","type":"movie","timestamp":"2025-01-01T10:00:00Z","payload":{{"action":"viewed","x":"{}"}}}}"#,
            "y".repeat(1_000_000)
        );
        let (event, _) = read(&record(big.as_bytes())).unwrap();
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
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["truncated"], true);
        assert!(json["payload"].is_string());
    }

    #[test]
    fn an_ordinary_event_is_not_marked_and_an_unknown_type_is_other() {
        let value = br#"{"id":"3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77","type":"shown","timestamp":"2025-01-01T10:00:00Z","payload":{"action":"viewed"}}"#;
        let (event, type_name) = read(&record(value)).unwrap();
        assert_eq!(type_name, "shown");
        let json = serde_json::to_value(&event).unwrap();
        assert!(json.get("truncated").is_none() && json.get("payload_bytes").is_none());
        assert_eq!(
            (&json["type"], &json["action"]),
            (&serde_json::json!("other"), &serde_json::json!("other"))
        );
    }
}
