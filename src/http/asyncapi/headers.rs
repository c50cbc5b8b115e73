//! What each record header means, as the AsyncAPI document says it: the headers of an event's
//! record (the service's own, the CloudEvents attributes, the trace context) and those a dead
//! letter adds. The names are the constants the code writes; `tests/contract.rs` fails when a
//! record carries a header this file does not describe.

use serde_json::{Map, Value, json};

use crate::consumer::letter_headers;
use crate::domain::{EventAction, EventType};
use crate::kafka::{CLOUDEVENTS_SPEC_VERSION, headers};
use crate::telemetry::trace::{TRACEPARENT, TRACESTATE};

/// A record's header values are bytes; every one the service writes is UTF-8 text.
fn text(description: &str, extra: Value) -> Value {
    let mut schema = json!({"type": "string", "description": description});
    if let (Value::Object(schema), Value::Object(extra)) = (&mut schema, extra) {
        schema.extend(extra);
    }
    schema
}

/// The headers of every record of `event_type`'s topic, written by a service whose `ce_source`
/// is `source`.
pub fn event_headers(event_type: EventType, source: &str, wire_format: bool) -> Value {
    let actions: Vec<EventAction> = EventAction::all()
        .filter(|action| action.event_type() == event_type)
        .collect();
    let action_names: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
    let ce_types: Vec<&str> = actions.iter().map(|a| a.cloudevents_type()).collect();
    let what = match event_type {
        EventType::Payment => "The payment's status (`payload.status`)",
        EventType::Movie | EventType::User => "The event's action (`payload.action`)",
    };
    let content_type = if wire_format {
        "The value's media type, and the CloudEvent's `datacontenttype`: JSON, after the wire \
         format's 5-byte prefix (a CloudEvents SDK must be handed the value without it)."
    } else {
        "The value's media type, and the CloudEvent's `datacontenttype`."
    };
    let described = [
        (
            headers::EVENT_ID,
            text(
                "The event's id, the envelope's `id`.",
                json!({"format": "uuid"}),
            ),
        ),
        (
            headers::EVENT_TYPE,
            text(
                "The event's type, the envelope's `type`.",
                json!({"const": event_type.as_str()}),
            ),
        ),
        (
            headers::EVENT_ACTION,
            text(&format!("{what}."), json!({"enum": action_names})),
        ),
        (
            headers::CONTENT_TYPE,
            text(content_type, json!({"const": "application/json"})),
        ),
        (
            headers::CE_SPECVERSION,
            text(
                "CloudEvents (binary content mode of the Kafka protocol binding): the \
                 specification's version.",
                json!({"const": CLOUDEVENTS_SPEC_VERSION}),
            ),
        ),
        (
            headers::CE_ID,
            text(
                "CloudEvents: the event's id, as in `event-id`.",
                json!({"format": "uuid"}),
            ),
        ),
        (
            headers::CE_SOURCE,
            text(
                "CloudEvents: the producer, `CLOUDEVENTS_SOURCE`.",
                json!({"const": source}),
            ),
        ),
        (
            headers::CE_TYPE,
            text(
                "CloudEvents: `com.cinemaabyss.<type>.<action>`, a payment's status as its action.",
                json!({"enum": ce_types}),
            ),
        ),
        (
            headers::CE_TIME,
            text(
                "CloudEvents: when the service received the event, the envelope's `timestamp` \
                 (the same string, RFC 3339, UTC).",
                json!({"format": "date-time"}),
            ),
        ),
        (
            TRACEPARENT,
            text(
                "W3C trace context: the span of the request that published the event, for a \
                 consumer to continue the trace. The service traces every request, so its \
                 records carry it.",
                json!({"pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"}),
            ),
        ),
        (
            TRACESTATE,
            text(
                "W3C trace context: the vendors' trace state, when the request carried one.",
                json!({}),
            ),
        ),
    ];
    let optional = [TRACEPARENT, TRACESTATE];
    object(&described, &optional, None)
}

/// The headers of a dead letter: those of the record it stands for, then its own.
pub fn letter_headers() -> Value {
    let digits = json!({"pattern": "^[0-9]+$"});
    let described = [
        (
            letter_headers::ERROR,
            text("Why the record could not be processed.", json!({})),
        ),
        (
            letter_headers::SOURCE_TOPIC,
            text("The topic the record came from.", json!({})),
        ),
        (
            letter_headers::SOURCE_PARTITION,
            text("Its partition there.", digits.clone()),
        ),
        (
            letter_headers::SOURCE_OFFSET,
            text("Its offset there.", digits),
        ),
        (
            letter_headers::TRUNCATED,
            text(
                "Only on a letter cut short, because Kafka refused the whole record as too \
                 large: why, and to how many bytes (the value is cut to its first 64 KiB, the \
                 key to its first KiB, and the record's headers dropped when over 16 KiB).",
                json!({}),
            ),
        ),
        (
            letter_headers::ORIGINAL_SIZE,
            text(
                "Only on a letter cut short: the record's sizes in bytes.",
                json!({"pattern": "^value=[0-9]+ key=[0-9]+ headers=[0-9]+$"}),
            ),
        ),
    ];
    let optional = [letter_headers::TRUNCATED, letter_headers::ORIGINAL_SIZE];
    object(
        &described,
        &optional,
        Some(
            "Before these, the headers of the record the letter stands for, names and values as \
             they were: for a record of the service's, those of its event message.",
        ),
    )
}

/// An object schema of `described` headers, all required but the `optional` ones; `others`,
/// when some, says what other headers there may be (and lets them be).
fn object(described: &[(&str, Value)], optional: &[&str], others: Option<&str>) -> Value {
    let properties: Map<String, Value> = described
        .iter()
        .map(|(name, schema)| ((*name).to_owned(), schema.clone()))
        .collect();
    let required: Vec<&str> = described
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !optional.contains(name))
        .collect();
    let mut schema = json!({"type": "object", "properties": properties, "required": required});
    if let (Some(others), Value::Object(schema)) = (others, &mut schema) {
        schema.insert("description".to_owned(), json!(others));
        schema.insert("additionalProperties".to_owned(), json!(true));
    }
    schema
}
