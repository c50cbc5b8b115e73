//! The service against the test broker's SASL_SSL listener (SCRAM over TLS, with a CA made for
//! the run), configured only through the `RDKAFKA_*` pass-through variables: no code knows
//! about TLS or SASL.

use std::time::{Duration, Instant};

use rdkafka::Message;
use serde_json::{Value, json};

use crate::helpers::{
    DEADLINE, ServiceProcess, brokers, isolated_vars, read_record, wait_until_healthy, with,
};

/// The test broker's SASL_SSL listener and its user, from the variables `scripts/test.sh` sets
/// (`kafka/start.sh --security` writes them to the broker's `security.env`).
struct SecureListener {
    brokers: String,
    mechanism: String,
    username: String,
    password: String,
    ca_location: String,
}

impl SecureListener {
    /// Fails the test, naming every missing variable, when the listener is not described.
    fn from_env() -> SecureListener {
        let names = [
            "TEST_KAFKA_SASL_SSL_BROKERS",
            "TEST_KAFKA_SASL_MECHANISM",
            "TEST_KAFKA_SASL_USERNAME",
            "TEST_KAFKA_SASL_PASSWORD",
            "TEST_KAFKA_SSL_CA_LOCATION",
        ];
        let values: Vec<Option<String>> = names
            .iter()
            .map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
            .collect();
        let missing: Vec<&str> = names
            .iter()
            .zip(&values)
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| *name)
            .collect();
        assert!(
            missing.is_empty(),
            "{} not set: these tests need a broker with a SASL_SSL listener. Run \
             scripts/test.sh, which starts one, or start one with kafka/start.sh --security and \
             set these from the security.env it writes (TEST_KAFKA_SASL_SSL_BROKERS from \
             KAFKA_SASL_SSL_BROKERS, and so on).",
            missing.join(", ")
        );
        let mut values = values.into_iter().flatten();
        let mut next = || values.next().unwrap_or_default();
        SecureListener {
            brokers: next(),
            mechanism: next(),
            username: next(),
            password: next(),
            ca_location: next(),
        }
    }

    /// An isolated service's variables for this listener, logging in with `password`.
    fn service_vars(&self, password: &str) -> Vec<(String, String)> {
        with(
            isolated_vars(&self.brokers),
            &[
                ("RDKAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                ("RDKAFKA_SASL_MECHANISMS", &self.mechanism),
                ("RDKAFKA_SASL_USERNAME", &self.username),
                ("RDKAFKA_SASL_PASSWORD", password),
                ("RDKAFKA_SSL_CA_LOCATION", &self.ca_location),
            ],
        )
    }
}

async fn get_health(client: &reqwest::Client, address: &str) -> (u16, Value) {
    let response = client
        .get(format!("{address}/api/events/health"))
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("the answer is JSON"))
}

async fn post_movie(client: &reqwest::Client, address: &str) -> (u16, Value) {
    let response = client
        .post(format!("{address}/api/events/movie"))
        .json(&json!({"movie_id": 42, "title": "Sneakers", "action": "viewed"}))
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("the answer is JSON"))
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn over_sasl_ssl_an_event_is_stored_and_read_back_by_an_independent_client() {
    let secure = SecureListener::from_env();
    let plaintext = brokers();
    // librdkafka's debug output includes its configuration: the password must not be in it.
    let vars = with(
        secure.service_vars(&secure.password),
        &[("LOG_LEVEL", "debug"), ("RDKAFKA_DEBUG", "conf,security")],
    );
    let prefix = crate::helpers::var(&vars, "KAFKA_TOPIC_PREFIX").to_owned();
    let mut service = ServiceProcess::spawn(&vars);
    // Healthy means the admin client created the topics and a metadata request succeeded, both
    // over SASL_SSL.
    wait_until_healthy(&service.address).await;

    let client = reqwest::Client::new();
    let (status, response) = post_movie(&client, &service.address).await;
    assert_eq!(status, 201, "{response}");
    let topic = format!("{prefix}movie-events");
    assert_eq!(response["topic"], topic.as_str());
    let partition = response["partition"].as_i64().unwrap() as i32;
    let offset = response["offset"].as_i64().unwrap();

    let record = read_record(&plaintext, &topic, partition, offset);
    assert_eq!(record.key(), Some(&b"42"[..]));
    let value: Value = serde_json::from_slice(record.payload().unwrap()).unwrap();
    assert_eq!(value, response["event"], "the record is the returned event");

    // The built-in consumers log in the same way.
    let id = response["event"]["id"].as_str().unwrap().to_owned();
    service.wait_for_line(|l| l.contains("[EVENT PROCESSED]") && l.contains(&id));

    service.terminate();
    let (exit, _) = service.wait_for_exit(DEADLINE);
    assert!(exit.success(), "exit status {exit}");
    let output = service.output();
    assert!(
        output.contains("sasl.password"),
        "librdkafka's configuration was logged (else the next check proves nothing)"
    );
    assert!(
        !output.contains(&secure.password),
        "the SASL password appears in the service's output"
    );
}

/// Runs the service with `vars` and asserts that it never gets to Kafka: health says 503 once a
/// check has failed, a POST is answered with an error, and the log shows `reason`.
async fn assert_refused(vars: &[(String, String)], reason: &str) {
    let mut service = ServiceProcess::spawn(vars);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let health = loop {
        let (status, body) = get_health(&client, &service.address).await;
        assert_eq!(status, 503, "healthy without access: {body}");
        // "Not checked yet" would be 503 too: wait for a check that reached the listener.
        if !body["kafka"]["checked_at"].is_null() {
            break body;
        }
        assert!(started.elapsed() < DEADLINE, "no health check ran: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health["kafka"]["reachable"], false, "{health}");

    let (status, response) = post_movie(&client, &service.address).await;
    assert_eq!(status, 500, "{response}");
    assert!(
        response["error"]
            .as_str()
            .unwrap_or_default()
            .contains("did not acknowledge"),
        "{response}"
    );
    let (status, body) = get_health(&client, &service.address).await;
    assert_eq!(status, 503, "still unhealthy: {body}");
    service.wait_for_line(|l| l.contains(reason));

    // Read over the plaintext listener: the topic holds nothing (it does not even exist, since
    // the service could not create it).
    let topic = format!(
        "{}movie-events",
        crate::helpers::var(vars, "KAFKA_TOPIC_PREFIX")
    );
    let reader: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", crate::helpers::brokers())
        .create()
        .unwrap();
    let stored = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        let metadata = reader
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("the broker answers");
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            return 0;
        }
        let (low, high) = reader
            .fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .expect("the watermarks");
        high - low
    })
    .await
    .unwrap();
    assert_eq!(stored, 0, "nothing was stored");
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn with_a_wrong_password_health_is_503_and_no_event_is_stored() {
    let secure = SecureListener::from_env();
    let vars = with(
        secure.service_vars(&format!("not-{}", secure.password)),
        &[("KAFKA_DELIVERY_TIMEOUT_MS", "2000")],
    );
    assert_refused(&vars, "Authentication failed").await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn without_the_ca_the_brokers_certificate_is_refused() {
    let secure = SecureListener::from_env();
    let mut vars = with(
        secure.service_vars(&secure.password),
        &[("KAFKA_DELIVERY_TIMEOUT_MS", "2000")],
    );
    vars.retain(|(name, _)| name != "RDKAFKA_SSL_CA_LOCATION");
    assert_refused(&vars, "certificate verify failed").await;
}
