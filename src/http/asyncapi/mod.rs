//! The AsyncAPI 3.0 document: the records the service writes to Kafka and reads back, one channel
//! per topic with its message (key, headers, value), the operations (the service's sending, the
//! consumer group's receiving, the dead letters), and Kafka's bindings. The value schemas are the
//! records' contract ([`crate::contract`]), the same components the OpenAPI document has; the
//! topics, partitions, replicas, group and source are this configuration's, so the document
//! describes the deployment that serves it.

mod headers;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

use super::AppState;

use crate::config::KafkaConfig;
use crate::contract;
use crate::domain::EventType;
use crate::kafka::topics::Topics;

/// The AsyncAPI version the document follows.
pub const ASYNCAPI_VERSION: &str = "3.0.0";
/// The version of the Kafka bindings it uses.
const KAFKA_BINDING_VERSION: &str = "0.5.0";

/// The names a document uses for one event type's parts.
struct Names {
    /// `movie`, `user`, `payment`.
    kind: &'static str,
    /// `Movie`, ...
    title: &'static str,
    /// The entity the record key is the id of.
    key_field: &'static str,
}

fn names(event_type: EventType) -> Names {
    match event_type {
        EventType::Movie => Names {
            kind: "movie",
            title: "Movie",
            key_field: "movie_id",
        },
        EventType::User => Names {
            kind: "user",
            title: "User",
            key_field: "user_id",
        },
        EventType::Payment => Names {
            kind: "payment",
            title: "Payment",
            key_field: "payment_id",
        },
    }
}

/// The AsyncAPI document of the records this service writes and reads.
#[utoipa::path(
    get, path = "/api/events/asyncapi.json", tag = "documents",
    responses((
        status = 200, description = "The AsyncAPI 3.0 document: the Kafka topics, their records \
            (key, headers, value) and the operations on them, for this deployment's configuration",
        body = Object, content_type = "application/json"
    ))
)]
pub async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.asyncapi.clone(),
    )
}

/// The document of a service with `kafka`'s topics and group; with `wire_format`, values carry
/// the registered schema's id before their JSON.
pub fn document(kafka: &KafkaConfig, wire_format: bool) -> Value {
    let topics = Topics::new(&kafka.topic_prefix);
    let topic_binding = |topic: &str| {
        json!({"kafka": {
            "topic": topic,
            "partitions": kafka.topic_partitions,
            "replicas": kafka.topic_replication_factor,
            "bindingVersion": KAFKA_BINDING_VERSION,
        }})
    };
    let (mut channels, mut operations, mut messages) = (Map::new(), Map::new(), Map::new());
    messages.insert("deadLetter".to_owned(), dead_letter_message());
    for event_type in EventType::ALL {
        let Names { kind, title, .. } = names(event_type);
        let topic = topics.topic(event_type).to_string();
        let dead_letters = Topics::dead_letter(&topic);
        let (channel, letters) = (format!("{kind}Events"), format!("{kind}DeadLetters"));
        let message = format!("{kind}Event");
        messages.insert(
            message.clone(),
            event_message(event_type, &kafka.cloudevents_source, wire_format),
        );
        channels.insert(
            channel.clone(),
            json!({
                "address": topic,
                "title": format!("{title} events"),
                "description": format!(
                    "Every {kind} event the service accepted, in the order Kafka acknowledged \
                     them per {}. Created by the service when missing, with the partitions and \
                     replicas below (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION_FACTOR); an \
                     existing topic is left as it is.",
                    names(event_type).key_field
                ),
                "messages": {&message: {"$ref": format!("#/components/messages/{message}")}},
                "bindings": topic_binding(&topic),
            }),
        );
        channels.insert(
            letters.clone(),
            json!({
                "address": dead_letters,
                "title": format!("{title} dead letters"),
                "description": format!(
                    "The records of {topic} that the service's consumers could not process, \
                     each once, with the reason and where it came from."
                ),
                "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
                "bindings": topic_binding(&dead_letters),
            }),
        );
        let in_channel = |channel: &str, message: &str| json!([{"$ref": format!("#/channels/{channel}/messages/{message}")}]);
        operations.insert(
            format!("publish{title}Events"),
            json!({
                "action": "send",
                "channel": {"$ref": format!("#/channels/{channel}")},
                "title": format!("Publish {kind} events"),
                "summary": format!(
                    "Each event accepted by POST /api/events/{kind} (or in a batch), once Kafka \
                     acknowledged it (acks=all, idempotent producer)."
                ),
                "messages": in_channel(&channel, &message),
            }),
        );
        operations.insert(
            format!("process{title}Events"),
            json!({
                "action": "receive",
                "channel": {"$ref": format!("#/channels/{channel}")},
                "title": format!("Process {kind} events"),
                "summary": "The service's built-in consumers, one consumer group: at least once, \
                            an offset committed only after its record was processed or dead-lettered. \
                            Each instance also reads every partition outside the group for its \
                            live view.",
                "messages": in_channel(&channel, &message),
                "bindings": {"kafka": {
                    "groupId": {"type": "string", "enum": [kafka.group_id]},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }},
            }),
        );
        operations.insert(
            format!("deadLetter{title}Events"),
            json!({
                "action": "send",
                "channel": {"$ref": format!("#/channels/{letters}")},
                "title": format!("Dead-letter unprocessable {kind} records"),
                "summary": format!(
                    "A record of {topic} the consumers cannot read as an event, before its offset \
                     is committed; its partition waits while the letter cannot be written."
                ),
                "messages": in_channel(&letters, "deadLetter"),
            }),
        );
    }
    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "CinemaAbyss Events Service",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Kafka records of the CinemaAbyss Events Service: each movie, user \
                            and payment event it accepts over HTTP is a record of its type's topic \
                            (key: the entity's id; value: the event's envelope, as the HTTP answer \
                            returns it; headers: the event's id, type and action, and the \
                            CloudEvents attributes in binary mode), and the records its consumers \
                            cannot process go to the topic's dead-letter topic. The payload \
                            schemas are the OpenAPI document's (/api/events/openapi.json).",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": contract::components(),
            "messages": messages,
        },
    })
}

/// The message of `event_type`'s topic.
fn event_message(event_type: EventType, source: &str, wire_format: bool) -> Value {
    let Names {
        kind,
        title,
        key_field,
    } = names(event_type);
    let mut binding = json!({
        "key": {
            "type": "string",
            "pattern": "^[1-9][0-9]*$",
            "description": format!(
                "The event's `{key_field}`, in decimal: one {kind}'s events share a partition and \
                 keep their order."
            ),
        },
        "bindingVersion": KAFKA_BINDING_VERSION,
    });
    let mut description = format!(
        "A {kind} event. The value is the event's envelope as JSON, byte for byte the `event` the \
         HTTP answer returned."
    );
    if wire_format {
        if let Value::Object(binding) = &mut binding {
            binding.insert("schemaIdLocation".to_owned(), json!("payload"));
            binding.insert("schemaIdPayloadEncoding".to_owned(), json!("confluent"));
            binding.insert("schemaLookupStrategy".to_owned(), json!("TopicIdStrategy"));
        }
        description = format!(
            "A {kind} event. The value is in the Confluent wire format (SCHEMA_REGISTRY_WIRE_FORMAT): \
             a zero byte, the id of the schema registered under the subject `<topic>-value` (4 \
             bytes, big-endian), then the event's envelope as JSON, byte for byte the `event` the \
             HTTP answer returned."
        );
    }
    json!({
        "name": format!("{kind}Event"),
        "title": format!("{title} event"),
        "summary": format!("A {kind} event the service accepted."),
        "description": description,
        "contentType": "application/json",
        "headers": headers::event_headers(event_type, source, wire_format),
        "payload": {"$ref": format!("#/components/schemas/{}", contract::envelope_name(event_type))},
        "correlationId": {
            "description": "The event's id: the same on every retry of a request with an Idempotency-Key.",
            "location": "$message.header#/event-id",
        },
        "bindings": {"kafka": binding},
    })
}

/// The message of every dead-letter topic.
fn dead_letter_message() -> Value {
    json!({
        "name": "deadLetter",
        "title": "Dead letter",
        "summary": "A record the consumers could not process.",
        "description": "The unprocessable record's key, value and headers as they were (a value \
                        in the wire format keeps its 5-byte prefix), and headers saying why and \
                        where it came from. A letter Kafka refuses as too large is written cut \
                        short, and says so.",
        "contentType": "application/octet-stream",
        "headers": headers::letter_headers(),
        "payload": {
            "description": "The record's value, byte for byte: anything another producer wrote.",
        },
        "bindings": {"kafka": {
            "key": {"type": "string", "description": "The record's key, as it was."},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }},
    })
}
