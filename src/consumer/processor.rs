//! What the built-in consumers do with each record: read the event and log it in the seed's
//! words, then report it to the live view (the stream, the statistics).

use std::borrow::Cow;
use std::sync::Arc;

use rdkafka::Message;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::live::{LiveEvent, LiveView};
use crate::telemetry::untrusted;

/// The most bytes of a payload an event of the live view keeps; a larger one is kept cut short
/// and marked so (records written by other producers may hold megabytes).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// What is kept of a payload cut short, as a JSON string.
const PAYLOAD_PREVIEW_BYTES: usize = 1024;
/// The most bytes kept of each of an event's strings (key, id, type, timestamp, action).
const MAX_FIELD_BYTES: usize = 256;

/// An event the consumers have processed, with where it was read from. Every part is bounded in
/// size, whoever wrote the record.
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
    /// The event's payload as stored, unparsed (processing does not need its fields); when it
    /// was larger than [`MAX_PAYLOAD_BYTES`], a JSON string with its first bytes.
    pub payload: Box<RawValue>,
    /// Present, and true, when `payload` is cut short.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// The payload's size in bytes, when it is cut short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<usize>,
    /// A payment's amount, for the statistics.
    #[serde(skip)]
    pub amount: Option<f64>,
}

impl ProcessedEvent {
    /// Where it was read from, `<topic>-<partition>-<offset>`: its id in the event stream.
    pub fn stream_id(&self) -> String {
        format!("{}-{}-{}", self.topic, self.partition, self.offset)
    }

    /// About how many bytes the event takes in memory.
    pub fn size(&self) -> usize {
        self.topic.len()
            + self.key.as_ref().map_or(0, String::len)
            + self.id.len()
            + self.event_type.len()
            + self.timestamp.len()
            + self.action.len()
            + self.payload.get().len()
            + std::mem::size_of::<Self>()
    }
}

/// The part of a record's value the processing needs, borrowed from the record.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
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
        let envelope: Envelope =
            serde_json::from_slice(record.payload().ok_or(ProcessError::Empty)?)?;
        tracing::info!(
            "[EVENT PROCESSED] Type: {}, ID: {}, Timestamp: {}",
            untrusted(&envelope.event_type),
            untrusted(&envelope.id),
            untrusted(&envelope.timestamp)
        );
        // A payload that is not an object still is an event: it just has no action.
        let facts: Facts = serde_json::from_str(envelope.payload.get()).unwrap_or_default();
        let (payload, payload_bytes) = bounded_payload(envelope.payload);
        let event = ProcessedEvent {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            key: key.as_deref().map(bounded),
            id: bounded(&envelope.id),
            event_type: bounded(&envelope.event_type),
            timestamp: bounded(&envelope.timestamp),
            action: bounded(facts.action.or(facts.status).as_deref().unwrap_or_default()),
            amount: facts.amount,
            truncated: payload_bytes.is_some(),
            payload_bytes,
            payload,
        };
        Ok(self.live.report(event))
    }
}

/// `value`, or its first [`MAX_FIELD_BYTES`] (cut at a character's end).
fn bounded(value: &str) -> String {
    prefix(value, MAX_FIELD_BYTES).to_owned()
}

fn prefix(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// The payload as kept, and its size when it is cut short.
fn bounded_payload(payload: &RawValue) -> (Box<RawValue>, Option<usize>) {
    let raw = payload.get();
    if raw.len() <= MAX_PAYLOAD_BYTES {
        return (payload.to_owned(), None);
    }
    let preview = serde_json::to_string(prefix(raw, PAYLOAD_PREVIEW_BYTES))
        .and_then(RawValue::from_string)
        .unwrap_or_else(|_| payload_placeholder());
    (preview, Some(raw.len()))
}

fn payload_placeholder() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
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

    #[test]
    fn a_huge_record_from_another_producer_is_kept_cut_short_and_marked_so() {
        let live = Arc::new(LiveView::new(8, 4));
        let big = format!(
            r#"{{"id":"{}","type":"movie","timestamp":"t","payload":{{"action":"viewed","x":"{}"}}}}"#,
            "i".repeat(10_000),
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
        assert_eq!(event.id.len(), MAX_FIELD_BYTES);
        assert_eq!(event.action, "viewed");
        assert!(event.size() < MAX_PAYLOAD_BYTES);
        let json = serde_json::to_value(&*event).unwrap();
        assert_eq!(json["truncated"], true);
        assert!(json["payload"].is_string());
    }

    #[test]
    fn an_ordinary_event_is_not_marked() {
        let live = Arc::new(LiveView::new(8, 4));
        let value = br#"{"id":"abc","type":"movie","timestamp":"t","payload":{"action":"viewed"}}"#;
        let event = Processor::new(live).process(&record(Some(value))).unwrap();
        let json = serde_json::to_value(&*event).unwrap();
        assert!(json.get("truncated").is_none() && json.get("payload_bytes").is_none());
    }
}
