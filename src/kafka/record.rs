//! A record ready to be produced, and the record for an event: key, value and headers, which make
//! it a CloudEvent in the Kafka binding's binary mode too.

use std::fmt;
use std::sync::Arc;

use chrono::SecondsFormat;

use super::headers::{self, CopiedHeaders};
use crate::domain::Event;

/// One record ready to be produced.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRecord {
    pub topic: Arc<str>,
    /// The entity id, so that one entity's events share a partition and keep their order.
    pub key: Option<Vec<u8>>,
    /// The event JSON, byte for byte as returned to the client; in the wire format
    /// (`SCHEMA_REGISTRY_WIRE_FORMAT`), after the 5 bytes of the schema's id.
    pub value: Vec<u8>,
    /// The service's own headers. Fixed values are borrowed or shared, not copied per record.
    pub headers: Vec<(&'static str, HeaderText)>,
    /// Headers taken over from another record, byte for byte (a value may be null), written
    /// before `headers`: a dead letter keeps those of the record it stands for.
    pub copied_headers: CopiedHeaders,
    /// The record's Kafka timestamp (ms since the epoch); none, the producer's clock at send.
    /// An attempt under an `Idempotency-Key` times its records so, to find them again.
    pub timestamp: Option<i64>,
}

/// A header's value: fixed, shared by every record (the configured source), or its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderText {
    Fixed(&'static str),
    Shared(Arc<str>),
    Owned(String),
}

impl HeaderText {
    pub fn as_str(&self) -> &str {
        match self {
            HeaderText::Fixed(text) => text,
            HeaderText::Shared(text) => text,
            HeaderText::Owned(text) => text,
        }
    }
}

impl fmt::Display for HeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for HeaderText {
    fn from(text: &'static str) -> Self {
        HeaderText::Fixed(text)
    }
}

impl From<String> for HeaderText {
    fn from(text: String) -> Self {
        HeaderText::Owned(text)
    }
}

/// The version of the CloudEvents specification the `ce_*` headers follow.
pub const CLOUDEVENTS_SPEC_VERSION: &str = "1.0";

impl OutgoingRecord {
    /// The record for `event`, whose serialised form is `value`, on `topic`. It is also a
    /// CloudEvent from `source` in binary mode: the headers carry its attributes and the value,
    /// the whole envelope, is its data.
    pub fn for_event(event: &Event, value: Vec<u8>, topic: Arc<str>, source: Arc<str>) -> Self {
        let id = event.id.to_string();
        // Written as serde writes the envelope's `timestamp`, so the two strings are equal.
        let time = event
            .timestamp
            .get()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let action = event.payload.action();
        Self {
            topic,
            key: Some(event.payload.entity_id().to_string().into_bytes()),
            value,
            headers: vec![
                (headers::EVENT_ID, HeaderText::Owned(id.clone())),
                (headers::EVENT_TYPE, event.event_type.as_str().into()),
                (headers::EVENT_ACTION, action.as_str().into()),
                (headers::CONTENT_TYPE, "application/json".into()),
                (headers::CE_SPECVERSION, CLOUDEVENTS_SPEC_VERSION.into()),
                (headers::CE_ID, HeaderText::Owned(id)),
                (headers::CE_SOURCE, HeaderText::Shared(source)),
                (headers::CE_TYPE, action.cloudevents_type().into()),
                (headers::CE_TIME, HeaderText::Owned(time)),
            ],
            copied_headers: Vec::new(),
            timestamp: None,
        }
    }

    /// The value of the service's own header `name`, if the record has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventPayload, EventType};
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

    fn record(event: &Event, value: Vec<u8>) -> OutgoingRecord {
        OutgoingRecord::for_event(event, value, "t".into(), SOURCE.into())
    }

    fn header<'a>(record: &'a OutgoingRecord, name: &str) -> &'a str {
        let mut found = record.headers.iter().filter(|(k, _)| *k == name);
        let (_, value) = found.next().unwrap_or_else(|| panic!("no {name} header"));
        assert!(found.next().is_none(), "{name} appears twice");
        value.as_str()
    }

    #[test]
    fn an_event_record_is_a_cloudevent_in_binary_mode() {
        let body = json!({"payment_id": 456, "user_id": 123, "amount": 99.99,
                          "status": "completed", "timestamp": "2024-12-31T23:00:00+01:00"});
        let event = event(EventType::Payment, body);
        let value = serde_json::to_vec(&event).unwrap();
        let record = record(&event, value.clone());

        assert_eq!(record.value, value, "the data is the envelope, unchanged");
        assert_eq!(header(&record, "ce_specversion"), "1.0");
        assert_eq!(header(&record, "ce_id"), event.id.to_string());
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
        assert_eq!(header(&record, "event-id"), event.id.to_string());
        assert_eq!(header(&record, "event-type"), "payment");
        assert_eq!(header(&record, "event-action"), "completed");
        assert_eq!(record.key.as_deref(), Some(&b"456"[..]));
    }

    #[test]
    fn only_the_id_and_time_headers_are_allocated_per_record() {
        let event = event(
            EventType::Movie,
            json!({"movie_id": 1, "title": "The Matrix", "action": "viewed"}),
        );
        let record = record(&event, Vec::new());
        let owned: Vec<_> = record
            .headers
            .iter()
            .filter(|(_, v)| matches!(v, HeaderText::Owned(_)))
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(owned, ["event-id", "ce_id", "ce_time"]);
    }
}
