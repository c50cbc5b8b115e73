//! The schema registry, a real one (Apicurio Registry, its Confluent-compatible API): start-up
//! registers each topic's value schema under `<topic>-value`, health says the registry was
//! reached, a subject whose last version the schema breaks stops start-up naming the subject,
//! a registry that hangs stops it by the deadline, and with the wire format every record carries
//! its schema's id and the service's own readers (the consumers, the live view, the look-up of
//! earlier attempts) read it as before.

use std::time::{Duration, Instant};

use events_service::contract::value_schema;
use events_service::domain::EventType;
use events_service::kafka::Lookup;
use events_service::{Application, Config};
use rdkafka::Message;
use serde_json::{Value, json};

use crate::contract::{check, document};
use crate::helpers::{DEADLINE, TestApp, brokers, eventually, isolated_vars, read_record, with};

/// The registry the tests register in: the base URL of its Confluent-compatible API. The test
/// command (`scripts/test.sh`) starts one and sets this; without it the tests fail rather than
/// skip.
fn registry_url() -> String {
    std::env::var("TEST_SCHEMA_REGISTRY_URL").unwrap_or_else(|_| {
        panic!(
            "TEST_SCHEMA_REGISTRY_URL is not set: these tests need a real schema registry. Run \
             scripts/test.sh, which starts Apicurio Registry, or set \
             TEST_SCHEMA_REGISTRY_URL=http://host:port/apis/ccompat/v7."
        )
    })
}

/// Variables for a service with its own topics (so its own subjects) in the test registry.
fn registry_vars(overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let url = registry_url();
    let vars = with(
        isolated_vars(&brokers()),
        &[
            ("SCHEMA_REGISTRY_URL", url.as_str()),
            ("SCHEMA_REGISTRY_TIMEOUT_MS", "5000"),
        ],
    );
    with(vars, overrides)
}

/// A call to the registry's API; its status and JSON answer.
async fn registry(method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", registry_url()))
        .header("content-type", "application/vnd.schemaregistry.v1+json");
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.expect("the registry answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The latest version registered under `subject`: its id and its schema.
async fn latest(subject: &str) -> (u64, Value) {
    let path = format!("/subjects/{subject}/versions/latest");
    let (status, version) = registry(reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 200, "{subject}: {version}");
    let schema = serde_json::from_str(version["schema"].as_str().unwrap()).unwrap();
    (version["id"].as_u64().unwrap(), schema)
}

#[tokio::test]
#[ignore = "an integration test (a real broker and schema registry): scripts/test.sh runs it"]
async fn start_up_registers_each_topics_value_schema_and_health_says_the_registry_was_reached() {
    let vars = registry_vars(&[]);
    let app = TestApp::spawn(vars.clone()).await;
    app.wait_until_healthy().await;
    let (_, health) = app.health().await;
    let section = &health["schema_registry"];
    assert_eq!(section["reachable"], true, "{health}");
    assert_eq!(section["wire_format"], false, "{health}");
    assert_eq!(section["last_error"], Value::Null, "{health}");
    for (index, event_type) in EventType::ALL.into_iter().enumerate() {
        let subject = format!("{}-value", app.topic(&format!("{event_type}-events")));
        let (id, schema) = latest(&subject).await;
        assert_eq!(schema, value_schema(event_type), "{subject}");
        assert_eq!(
            schema["$schema"], "http://json-schema.org/draft-07/schema#",
            "Apicurio recognises the schema by it"
        );
        assert_eq!(section["subjects"][index]["subject"], subject.as_str());
        assert_eq!(section["subjects"][index]["id"], id, "{health}");
    }
    app.stop().await;

    // A restart registers the same schemas again: same ids, no new version.
    let again = TestApp::spawn(vars).await;
    let (_, health_again) = again.health().await;
    assert_eq!(
        health_again["schema_registry"]["subjects"], section["subjects"],
        "{health_again}"
    );
    let subject = format!("{}-value", again.topic("movie-events"));
    let (status, versions) = registry(
        reqwest::Method::GET,
        &format!("/subjects/{subject}/versions"),
        None,
    )
    .await;
    assert_eq!((status, versions), (200, json!([1])));
    again.stop().await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker and schema registry): scripts/test.sh runs it"]
async fn a_schema_incompatible_with_the_subjects_last_version_stops_start_up_naming_the_subject() {
    let vars = registry_vars(&[]);
    let prefix = crate::helpers::var(&vars, "KAFKA_TOPIC_PREFIX").to_owned();
    let subject = format!("{prefix}payment-events-value");
    // Another producer's contract for the topic: `id` a number, and changes must be backward
    // compatible with it. The service's `id` is a string, a change the rule refuses.
    let path = format!("/config/{subject}");
    let (status, answer) = registry(
        reqwest::Method::PUT,
        &path,
        Some(json!({"compatibility": "BACKWARD"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let theirs = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"id": {"type": "integer"}},
        "required": ["id"],
    });
    let path = format!("/subjects/{subject}/versions");
    let body = json!({"schemaType": "JSON", "schema": theirs.to_string()});
    let (status, answer) = registry(reqwest::Method::POST, &path, Some(body)).await;
    assert_eq!(status, 200, "{answer}");

    let config = Config::from_vars(vars).expect("the configuration is valid");
    let started = Instant::now();
    let error = match Application::build(config).await {
        Ok(_) => panic!("the service started with a schema its subject refuses"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains(&subject) && error.contains("incompatible"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not retried"
    );
    let (_, schema) = latest(&subject).await;
    assert_eq!(schema, theirs, "the subject keeps its contract");
}

#[tokio::test]
#[ignore = "an integration test (a real broker and schema registry): scripts/test.sh runs it"]
async fn a_registry_that_accepts_but_never_answers_stops_start_up_within_its_timeouts() {
    // Connections are accepted (the kernel's backlog) and never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/apis/ccompat/v7", silent.local_addr().unwrap());
    let vars = registry_vars(&[
        ("SCHEMA_REGISTRY_URL", url.as_str()),
        ("SCHEMA_REGISTRY_TIMEOUT_MS", "300"),
        ("SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS", "1000"),
    ]);
    let started = Instant::now();
    let error = match Application::build(Config::from_vars(vars).unwrap()).await {
        Ok(_) => panic!("the service started without its schemas"),
        Err(error) => format!("{error:#}"),
    };
    let took = started.elapsed();
    assert!(
        error.contains("unreachable") && error.contains("SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS"),
        "{error}"
    );
    // Two attempts of 300 ms and their pauses, then no attempt that would end past 1 s.
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

#[tokio::test]
#[ignore = "an integration test (a real broker and schema registry): scripts/test.sh runs it"]
async fn in_the_wire_format_records_carry_the_schema_id_and_the_services_own_readers_read_them() {
    let vars = registry_vars(&[("SCHEMA_REGISTRY_WIRE_FORMAT", "true")]);
    let mut app = TestApp::spawn(vars.clone()).await;
    app.wait_until_healthy().await;
    let (id, _) = latest(&format!("{}-value", app.topic("movie-events"))).await;
    let attempt = chrono_millis();
    let (status, answer) = app
        .post(
            "movie",
            &json!({"movie_id": 7, "title": "Heat", "action": "viewed"}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let topic = answer["topic"].as_str().unwrap();
    let record = read_record(
        &brokers(),
        topic,
        answer["partition"].as_i64().unwrap() as i32,
        answer["offset"].as_i64().unwrap(),
    );

    // A zero byte, the id big-endian, then the event byte for byte as answered.
    let value = record.payload().unwrap();
    assert_eq!(value[0], 0);
    assert_eq!(
        u64::from(u32::from_be_bytes(value[1..5].try_into().unwrap())),
        id
    );
    let event: Value = serde_json::from_slice(&value[5..]).unwrap();
    assert_eq!(event, answer["event"]);
    // The registry resolves the id to the schema, as a registry-aware consumer asks it.
    let (status, by_id) = registry(reqwest::Method::GET, &format!("/schemas/ids/{id}"), None).await;
    assert_eq!(status, 200, "{by_id}");
    let schema: Value = serde_json::from_str(by_id["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema, value_schema(EventType::Movie));
    // And the record is what the document this service serves says.
    let checked = check(&document(&app.address).await, &record);
    assert_eq!(checked.schema_id.map(u64::from), Some(id));

    // The built-in consumers processed it (a value they could not read would be a dead letter).
    let event_id = answer["event"]["id"].as_str().unwrap().to_owned();
    let processed = tokio::time::timeout(DEADLINE, async {
        loop {
            let event = app.processed.recv().await.expect("the consumers run");
            if event.id.to_string() == event_id {
                return event;
            }
        }
    })
    .await
    .expect("processed within the deadline");
    let payload: Value = serde_json::from_str(processed.payload.get()).unwrap();
    assert_eq!(payload, answer["event"]["payload"]);
    // The live view's reader counted it.
    let address = app.address.clone();
    eventually("the live view counts the event", || {
        let address = address.clone();
        async move {
            let stats: Value = reqwest::get(format!("{address}/api/events/stats"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (stats["by_type"]["movie"]["total"] == 1).then_some(())
        }
    })
    .await;
    // The look-up of earlier attempts finds the event as it was answered, without the prefix.
    let config = Config::from_vars(vars).unwrap();
    let topic_name = topic.to_owned();
    let uuid = event_id.parse().unwrap();
    let found = tokio::task::spawn_blocking(move || {
        Lookup::new(&config.kafka).find(&topic_name, &[uuid], &[attempt])
    })
    .await
    .unwrap()
    .expect("the look-up runs");
    let found = &found[&uuid];
    assert_eq!(
        serde_json::from_slice::<Value>(&found.value).unwrap(),
        answer["event"]
    );
    app.stop().await;
}

/// Now, in milliseconds since the epoch, as record timestamps are.
fn chrono_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
