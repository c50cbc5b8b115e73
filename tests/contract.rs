//! The AsyncAPI document, in-process: served as the command prints it, one channel per topic of
//! the configuration, one source for the payload schemas with the OpenAPI document, and every
//! record the service hands to Kafka (every header included, trace context too) valid against it
//! with nothing undocumented. Records read back from a broker are checked in `tests/kafka/`.

mod common;

use std::sync::Once;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::contract::{Contract, Record};
use common::{Outcome, TestRouter, app_from_vars, movie, payment, user};
use events_service::consumer::letter_headers;
use events_service::kafka::OutgoingRecord;
use events_service::kafka::topics::Topics;
use events_service::{Config, http, telemetry};
use serde_json::{Value, json};

const VARS: &[(&str, &str)] = &[
    ("KAFKA_TOPIC_PREFIX", "staging."),
    ("KAFKA_TOPIC_PARTITIONS", "3"),
    ("KAFKA_TOPIC_REPLICATION_FACTOR", "2"),
    ("KAFKA_GROUP_ID", "contract-group"),
    ("CLOUDEVENTS_SOURCE", "/contract/test"),
];

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn asyncapi(app: &TestRouter) -> Value {
    let (status, headers, doc) = app.send(get("/api/events/asyncapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    doc
}

#[tokio::test]
async fn the_document_has_a_channel_per_topic_with_this_configurations_bindings() {
    let app = app_from_vars(VARS, Outcome::Stored);
    let doc = asyncapi(&app).await;
    assert_eq!(doc["asyncapi"], "3.0.0");
    let addresses: Vec<&str> = doc["channels"]
        .as_object()
        .unwrap()
        .values()
        .map(|channel| channel["address"].as_str().unwrap())
        .collect();
    let topics = Topics::new("staging.").provisioned();
    assert_eq!(topics.len(), 6);
    for topic in &topics {
        assert!(addresses.contains(&topic.as_str()), "{topic} is no channel");
    }
    assert_eq!(addresses.len(), topics.len(), "{addresses:?}");
    let movies = &doc["channels"]["movieEvents"];
    assert_eq!(
        movies["bindings"]["kafka"],
        json!({"topic": "staging.movie-events", "partitions": 3, "replicas": 2,
               "bindingVersion": "0.5.0"})
    );
    let operations = doc["operations"].as_object().unwrap();
    let sends = operations
        .values()
        .filter(|o| o["action"] == "send")
        .count();
    assert_eq!(
        sends, 6,
        "publishing to three topics, dead letters to three"
    );
    let receive = &doc["operations"]["processMovieEvents"];
    assert_eq!(receive["action"], "receive");
    assert_eq!(
        receive["bindings"]["kafka"]["groupId"]["enum"],
        json!(["contract-group"])
    );
    let message = &doc["components"]["messages"]["movieEvent"];
    assert_eq!(
        message["payload"]["$ref"],
        "#/components/schemas/MovieEnvelope"
    );
    assert_eq!(
        message["headers"]["properties"]["ce_source"]["const"],
        "/contract/test"
    );
    assert!(
        message["bindings"]["kafka"]
            .get("schemaIdLocation")
            .is_none()
    );
}

#[tokio::test]
async fn the_payload_schemas_are_the_openapi_documents() {
    let app = app_from_vars(VARS, Outcome::Stored);
    let doc = asyncapi(&app).await;
    let (_, _, openapi) = app.send(get("/api/events/openapi.json")).await;
    for name in [
        "MovieEvent",
        "UserEvent",
        "PaymentEvent",
        "Event",
        "EntityId",
        "Amount",
    ] {
        assert_eq!(
            doc["components"]["schemas"][name], openapi["components"]["schemas"][name],
            "{name}"
        );
    }
    assert!(openapi["paths"]["/api/events/asyncapi.json"]["get"].is_object());
}

#[test]
fn the_command_prints_the_document_the_route_serves() {
    let vars: Vec<(String, String)> = common::TEST_VARS
        .iter()
        .chain(VARS)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_events-service"))
        .arg("asyncapi")
        .env_clear()
        .envs(vars.iter().cloned())
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let config = Config::from_vars(vars.clone()).unwrap();
    assert_eq!(printed, http::asyncapi::document(&config.kafka, false));
    assert_eq!(
        printed["channels"]["paymentDeadLetters"]["address"],
        "staging.payment-events.dlq"
    );

    // Written to a file, with the wire format this configuration chose.
    let file = std::env::temp_dir().join(format!("asyncapi-{}.json", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_events-service"))
        .arg("asyncapi")
        .arg(&file)
        .env_clear()
        .envs(vars.iter().cloned())
        .envs([
            ("SCHEMA_REGISTRY_URL", "http://127.0.0.1:1/apis/ccompat/v7"),
            ("SCHEMA_REGISTRY_WIRE_FORMAT", "true"),
        ])
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success() && output.stdout.is_empty(),
        "{output:?}"
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(written, http::asyncapi::document(&config.kafka, true));
    let binding = &written["components"]["messages"]["movieEvent"]["bindings"]["kafka"];
    assert_eq!(binding["schemaIdLocation"], "payload");
    assert_eq!(binding["schemaIdPayloadEncoding"], "confluent");
}

/// Request spans as the binary makes them, so that records carry the trace context; nothing is
/// logged.
fn trace_requests() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let config = Config::from_vars([("LOG_LEVEL".to_owned(), "off".to_owned())]).unwrap();
        std::mem::forget(telemetry::init(&config).expect("the subscriber installs"));
    });
}

/// `published` as a consumer reads it: the copied headers, then the service's own.
fn record_of(published: &OutgoingRecord) -> Record<'_> {
    let headers = published
        .copied_headers
        .iter()
        .cloned()
        .chain(
            published
                .headers
                .iter()
                .map(|(name, value)| (name.to_string(), Some(value.as_str().as_bytes().to_vec()))),
        )
        .collect();
    Record {
        topic: &published.topic,
        key: published.key.as_deref(),
        headers,
        value: &published.value,
    }
}

#[tokio::test]
async fn every_record_is_valid_against_its_message_and_carries_no_undescribed_header() {
    trace_requests();
    let app = app_from_vars(VARS, Outcome::Stored);
    let contract = Contract::new(asyncapi(&app).await);
    let traced = |path: &str, body: &Value| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .header("tracestate", "cinemaabyss=contract")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    for (kind, body) in [("movie", movie()), ("user", user()), ("payment", payment())] {
        let (status, _, answer) = app
            .send(traced(&format!("/api/events/{kind}"), &body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let rated = json!({"movie_id": 7, "title": "Heat", "action": "rated", "rating": 8});
    let mut batch = [rated, user(), payment()];
    for (item, kind) in batch.iter_mut().zip(["movie", "user", "payment"]) {
        item["type"] = json!(kind);
    }
    let (status, _, answer) = app.send(traced("/api/events/batch", &json!(batch))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    let published = app.published();
    assert_eq!(published.len(), 6);
    for record in &published {
        let record = record_of(record);
        let names: Vec<&str> = record
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert!(
            names.contains(&"traceparent") && names.contains(&"tracestate"),
            "the check covers the trace context too: {names:?}"
        );
        let checked = contract
            .check(&record)
            .unwrap_or_else(|wrong| panic!("{}: {wrong:#?}", record.topic));
        assert_eq!(checked.schema_id, None);
    }
}

#[tokio::test]
async fn the_check_would_catch_an_undescribed_header_a_wrong_key_and_a_wrong_value() {
    let app = app_from_vars(VARS, Outcome::Stored);
    let contract = Contract::new(asyncapi(&app).await);
    let (status, _) = app.post("/api/events/movie", movie().to_string()).await;
    assert_eq!(status, StatusCode::CREATED);
    let published = app.published().pop().unwrap();
    let mut record = record_of(&published);
    assert!(contract.check(&record).is_ok(), "the record as it is");
    record
        .headers
        .push(("x-new-header".to_owned(), Some(b"1".to_vec())));
    let mut value: Value = serde_json::from_slice(record.value).unwrap();
    value["type"] = json!("user");
    let value = value.to_string();
    record.value = value.as_bytes();
    record.key = Some(b"one");
    let wrong = contract.check(&record).unwrap_err();
    let wrong = wrong.join("\n");
    for expected in [
        "header x-new-header is not in the document",
        "key:",
        "value:",
    ] {
        assert!(wrong.contains(expected), "{expected} in {wrong}");
    }
}

#[tokio::test]
async fn every_header_a_dead_letter_adds_is_described() {
    let app = app_from_vars(VARS, Outcome::Stored);
    let doc = asyncapi(&app).await;
    let letter = &doc["components"]["messages"]["deadLetter"]["headers"];
    for name in letter_headers::ALL {
        assert!(
            letter["properties"][name]["description"].is_string(),
            "{name} is not described"
        );
    }
    assert_eq!(
        letter["required"],
        json!([
            "dlq-error",
            "dlq-source-topic",
            "dlq-source-partition",
            "dlq-source-offset"
        ])
    );
    for channel in ["movieDeadLetters", "userDeadLetters", "paymentDeadLetters"] {
        assert_eq!(
            doc["channels"][channel]["messages"]["deadLetter"]["$ref"],
            "#/components/messages/deadLetter"
        );
    }
}
