//! A record checked against the AsyncAPI document: the message of the channel whose address is
//! the record's topic, its key against the Kafka binding's key schema, its headers (each one
//! described, the object valid against the headers schema), and its value against the payload
//! schema, after the wire format's prefix when the binding says the value carries one. Shared by
//! the in-process tests (`tests/contract.rs`) and those against a broker (`tests/kafka/`).

use jsonschema::{Draft, Validator};
use serde_json::{Map, Value, json};

/// A record as read back: topic, key, headers (names and values, in order) and value.
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub value: &'a [u8],
}

/// What the check found in a record that is right.
#[derive(Debug, PartialEq)]
pub struct Checked {
    /// The schema id of the wire format's prefix, when the value has one.
    pub schema_id: Option<u32>,
    /// The value's JSON.
    pub value: Value,
}

pub struct Contract {
    pub document: Value,
}

impl Contract {
    pub fn new(document: Value) -> Self {
        assert_eq!(document["asyncapi"], "3.0.0", "an AsyncAPI 3.0 document");
        Self { document }
    }

    /// The message of the channel whose address is `topic` (its only one), resolved.
    pub fn message(&self, topic: &str) -> &Value {
        let channels = self.document["channels"].as_object().expect("channels");
        let channel = channels
            .values()
            .find(|channel| channel["address"] == topic)
            .unwrap_or_else(|| panic!("no channel has the address {topic}"));
        let messages = channel["messages"].as_object().expect("messages");
        assert_eq!(messages.len(), 1, "{topic}: one message");
        let reference = messages.values().next().unwrap()["$ref"]
            .as_str()
            .expect("a reference to components");
        self.document
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{reference} does not resolve"))
    }

    /// `schema`, validating with the document's components within reach of its references.
    fn validator(&self, schema: &Value) -> Validator {
        let root = json!({
            "allOf": [schema],
            "components": self.document["components"],
        });
        jsonschema::options()
            .with_draft(Draft::Draft7)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|error| panic!("{schema} is not a valid schema: {error}"))
    }

    fn errors(&self, what: &str, schema: &Value, instance: &Value) -> Vec<String> {
        self.validator(schema)
            .iter_errors(instance)
            .map(|error| format!("{what}: {error} at {}", error.instance_path()))
            .collect()
    }

    /// Checks `record`; `Err` lists everything that is wrong with it.
    pub fn check(&self, record: &Record<'_>) -> Result<Checked, Vec<String>> {
        let message = self.message(record.topic);
        let binding = &message["bindings"]["kafka"];
        let mut wrong = Vec::new();

        let key = record
            .key
            .map(|key| String::from_utf8_lossy(key).into_owned());
        wrong.extend(self.errors("key", &binding["key"], &json!(key)));

        let described = message["headers"]["properties"]
            .as_object()
            .expect("the headers' properties");
        // Only a schema that says so takes headers it does not describe (a dead letter's copies).
        let open = message["headers"]["additionalProperties"] == true;
        let mut headers = Map::new();
        for (name, value) in &record.headers {
            if !described.contains_key(name) && !open {
                wrong.push(format!("header {name} is not in the document"));
            }
            let text = value.as_deref().map(String::from_utf8_lossy);
            if headers.insert(name.clone(), json!(text)).is_some() {
                wrong.push(format!("header {name} appears twice"));
            }
        }
        wrong.extend(self.errors("headers", &message["headers"], &Value::Object(headers)));

        let (schema_id, json) = if binding["schemaIdLocation"] == "payload" {
            match record.value {
                [0, a, b, c, d, json @ ..] => (Some(u32::from_be_bytes([*a, *b, *c, *d])), json),
                _ => {
                    wrong.push("the value lacks the wire format's prefix".to_owned());
                    (None, record.value)
                }
            }
        } else {
            (None, record.value)
        };
        // A value that is not JSON by contract (a dead letter's) is any bytes.
        let value = match message["contentType"] == "application/json" {
            true => serde_json::from_slice(json).unwrap_or_else(|error| {
                wrong.push(format!("the value is not JSON: {error}"));
                Value::Null
            }),
            false => Value::Null,
        };
        wrong.extend(self.errors("value", &message["payload"], &value));
        match wrong.is_empty() {
            true => Ok(Checked { schema_id, value }),
            false => Err(wrong),
        }
    }
}
