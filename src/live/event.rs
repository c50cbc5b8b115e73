//! An event as the consumers processed it and the live view keeps and streams it: typed where
//! the service's envelope is (id, type, time, action), bounded in size whoever wrote the record.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::domain::{EventAction, EventType, Timestamp};

/// What a type or an action this version does not know is called: a newer producer may write
/// them, and they are counted and shown as such.
pub const OTHER: &str = "other";

/// An event the consumers have processed, with where it was read from.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessedEvent {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's key, at most 256 bytes of it.
    pub key: Option<String>,
    pub id: Uuid,
    /// `None` for a type this version does not know (written `other`).
    #[serde(rename = "type", serialize_with = "type_name")]
    pub event_type: Option<EventType>,
    pub timestamp: Timestamp,
    /// The payload's `action`, or a payment's `status`; `None` when it has neither or one of
    /// another type (written `other`).
    #[serde(serialize_with = "action_name")]
    pub action: Option<EventAction>,
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

/// The most bytes of a payload an event of the live view keeps; a larger one is kept cut short
/// and marked so (records written by other producers may hold megabytes).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// What is kept of a payload cut short, as a JSON string.
pub const PAYLOAD_PREVIEW_BYTES: usize = 1024;
/// The most bytes kept of a record's key.
pub const MAX_KEY_BYTES: usize = 256;

impl ProcessedEvent {
    /// The type's name, or [`OTHER`].
    pub fn type_name(&self) -> &'static str {
        self.event_type.map_or(OTHER, EventType::as_str)
    }

    /// The action's name, or [`OTHER`].
    pub fn action_name(&self) -> &'static str {
        self.action.map_or(OTHER, EventAction::as_str)
    }

    /// About how many bytes the event takes in memory.
    pub fn size(&self) -> usize {
        self.topic.len()
            + self.key.as_ref().map_or(0, String::len)
            + self.payload.get().len()
            + std::mem::size_of::<Self>()
    }
}

fn type_name<S: Serializer>(event_type: &Option<EventType>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(event_type.map_or(OTHER, EventType::as_str))
}

fn action_name<S: Serializer>(action: &Option<EventAction>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(action.map_or(OTHER, EventAction::as_str))
}

/// `value`, or its first `max` bytes (cut at a character's end).
pub fn prefix(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// `payload` as the live view keeps it, and its size when it is cut short.
pub fn bounded_payload(payload: &RawValue) -> (Box<RawValue>, Option<usize>) {
    let raw = payload.get();
    if raw.len() <= MAX_PAYLOAD_BYTES {
        return (payload.to_owned(), None);
    }
    let preview = serde_json::to_string(prefix(raw, PAYLOAD_PREVIEW_BYTES))
        .and_then(RawValue::from_string)
        .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("null is JSON"));
    (preview, Some(raw.len()))
}
