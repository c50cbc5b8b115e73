//! The event schemas: the domain types' components (utoipa's derives, plus the one rule a derive
//! cannot write), each event type's envelope as it is stored in its topic, and that envelope as
//! a standalone JSON Schema document for a schema registry.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::domain::{Event, EventPayload, EventType, MovieEvent, PaymentEvent, UserEvent};

/// Where the components live in the OpenAPI and AsyncAPI documents alike, so that their
/// references resolve unchanged in both.
const COMPONENTS: &str = "#/components/schemas/";
/// Where they live in a standalone schema: draft-07's `definitions`.
const DEFINITIONS: &str = "#/definitions/";

/// The dialect of standalone schemas. Draft-07: what every schema registry's JSON Schema support
/// and compatibility checker reads (Apicurio's and Confluent's among them), and the dialect the
/// AsyncAPI schema object extends.
pub const SCHEMA_DIALECT: &str = "http://json-schema.org/draft-07/schema#";

/// The event types' schemas, collected by the derive with every schema they refer to.
#[derive(OpenApi)]
#[openapi(components(schemas(
    Event,
    EventPayload,
    EventType,
    MovieEvent,
    UserEvent,
    PaymentEvent
)))]
struct EventSchemas;

/// The schemas of the events and of everything they refer to, by component name. References
/// point at `#/components/schemas/<name>`.
pub fn components() -> Map<String, Value> {
    let doc = serde_json::to_value(EventSchemas::openapi()).unwrap_or_default();
    let mut schemas = match doc.pointer("/components/schemas") {
        Some(Value::Object(schemas)) => schemas.clone(),
        _ => Map::new(),
    };
    let (condition, consequence) = MovieEvent::conditional_schema();
    if let Some(Value::Object(movie)) = schemas.get_mut("MovieEvent") {
        movie.insert("if".to_owned(), condition);
        movie.insert("then".to_owned(), consequence);
    }
    for event_type in EventType::ALL {
        schemas.insert(envelope_name(event_type), envelope(event_type, &schemas));
    }
    schemas
}

/// The component name of `event_type`'s envelope: `MovieEnvelope`, `UserEnvelope`, ...
pub fn envelope_name(event_type: EventType) -> String {
    payload_name(event_type).replace("Event", "Envelope")
}

fn payload_name(event_type: EventType) -> &'static str {
    match event_type {
        EventType::Movie => "MovieEvent",
        EventType::User => "UserEvent",
        EventType::Payment => "PaymentEvent",
    }
}

/// `event_type`'s envelope, the value of each record in its topic: `Event` with its `type` fixed
/// and its payload of that type. User and payment payloads always carry `timestamp` once
/// published (the time of receipt when the client sent none), so the envelope requires it.
pub fn envelope(event_type: EventType, components: &Map<String, Value>) -> Value {
    let mut envelope = components
        .get("Event")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let payload_ref = json!({"$ref": format!("{COMPONENTS}{}", payload_name(event_type))});
    let payload = match event_type {
        EventType::Movie => payload_ref,
        EventType::User | EventType::Payment => {
            json!({"allOf": [payload_ref, {"required": ["timestamp"]}]})
        }
    };
    if let Value::Object(envelope) = &mut envelope {
        envelope.insert(
            "description".to_owned(),
            json!(format!(
                "A {event_type} event as stored in the value of a record of its topic (and as the \
                 service answered it): its id, its type, when it was received, and the validated \
                 {event_type} event."
            )),
        );
        if let Some(Value::Object(properties)) = envelope.get_mut("properties") {
            properties.insert(
                "type".to_owned(),
                json!({"type": "string", "const": event_type.as_str(),
                       "description": "The event's type: always this topic's."}),
            );
            properties.insert("payload".to_owned(), payload);
        }
    }
    envelope
}

/// `event_type`'s envelope as a standalone JSON Schema (draft-07): every schema it refers to,
/// and only those, under `definitions`. This is what a schema registry gets for the topic.
pub fn value_schema(event_type: EventType) -> Value {
    let components = components();
    let root = envelope(event_type, &components);
    let mut wanted = Vec::new();
    collect_refs(&root, &mut wanted);
    let mut definitions = Map::new();
    while let Some(name) = wanted.pop() {
        if definitions.contains_key(&name) {
            continue;
        }
        if let Some(schema) = components.get(&name) {
            collect_refs(schema, &mut wanted);
            definitions.insert(name, rebase(schema.clone()));
        }
    }
    let mut schema = match rebase(root) {
        Value::Object(schema) => schema,
        _ => Map::new(),
    };
    schema.insert("$schema".to_owned(), json!(SCHEMA_DIALECT));
    schema.insert("title".to_owned(), json!(envelope_name(event_type)));
    schema.insert("definitions".to_owned(), Value::Object(definitions));
    Value::Object(schema)
}

/// The component names `schema` refers to, added to `found`.
fn collect_refs(schema: &Value, found: &mut Vec<String>) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix(COMPONENTS) {
                            found.push(name.to_owned());
                        }
                    }
                    _ => collect_refs(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, found)),
        _ => {}
    }
}

/// `schema` with its references to components pointed at `definitions`.
fn rebase(schema: Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .map(|(key, value)| match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => {
                        let target = match target.strip_prefix(COMPONENTS) {
                            Some(name) => format!("{DEFINITIONS}{name}"),
                            None => target,
                        };
                        (key, Value::String(target))
                    }
                    (_, value) => (key, rebase(value)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(rebase).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_components_carry_the_movie_rule_and_an_envelope_per_type() {
        let components = components();
        assert_eq!(
            components["MovieEvent"]["if"]["properties"]["action"]["const"],
            "rated"
        );
        assert_eq!(
            components["UserEnvelope"]["properties"]["type"]["const"],
            "user"
        );
        assert_eq!(
            components["MovieEnvelope"]["properties"]["payload"]["$ref"],
            "#/components/schemas/MovieEvent"
        );
        assert_eq!(
            components["MovieEnvelope"]["required"],
            json!(["id", "type", "timestamp", "payload"])
        );
        // Every reference of every component resolves.
        let mut refs = Vec::new();
        components.values().for_each(|s| collect_refs(s, &mut refs));
        for name in refs {
            assert!(
                components.contains_key(&name),
                "{name} is referred to but missing"
            );
        }
    }

    #[test]
    fn a_value_schema_stands_alone_with_what_it_refers_to_and_nothing_else() {
        let schema = value_schema(EventType::Payment);
        assert_eq!(schema["$schema"], SCHEMA_DIALECT);
        assert_eq!(schema["title"], "PaymentEnvelope");
        let text = schema.to_string();
        assert!(!text.contains("#/components/"), "{text}");
        let definitions = schema["definitions"].as_object().unwrap();
        for name in [
            "PaymentEvent",
            "Amount",
            "PaymentStatus",
            "EntityId",
            "Timestamp",
        ] {
            assert!(definitions.contains_key(name), "{name} missing");
        }
        for name in ["MovieEvent", "UserEvent", "EventPayload", "MovieEnvelope"] {
            assert!(!definitions.contains_key(name), "{name} is not referred to");
        }
        let mut refs = Vec::new();
        collect_refs(&rebase_back(&schema), &mut refs);
        for name in refs {
            assert!(definitions.contains_key(&name), "{name} does not resolve");
        }
        // The same text every time: a registry sees the same schema at every start.
        assert_eq!(text, value_schema(EventType::Payment).to_string());
    }

    /// `schema` with its `definitions` references read as components again, for `collect_refs`.
    fn rebase_back(schema: &Value) -> Value {
        serde_json::from_str(&schema.to_string().replace(DEFINITIONS, COMPONENTS)).unwrap()
    }
}
