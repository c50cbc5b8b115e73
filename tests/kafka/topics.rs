use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::helpers::{TestApp, brokers, eventually, isolated_vars, with};

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn the_service_creates_its_topics_on_a_broker_that_does_not_auto_create_them() {
    let brokers = brokers();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let configs = admin
        .describe_configs(&[ResourceSpecifier::Broker(1)], &AdminOptions::new())
        .await
        .unwrap();
    let broker = configs[0]
        .as_ref()
        .expect("the broker describes its configuration");
    let auto_create = broker
        .get("auto.create.topics.enable")
        .and_then(|e| e.value.clone());
    assert_eq!(
        auto_create.as_deref(),
        Some("false"),
        "the test broker must not auto-create topics"
    );

    let app = TestApp::spawn(with(
        isolated_vars(&brokers),
        &[("KAFKA_TOPIC_PARTITIONS", "3")],
    ))
    .await;
    app.wait_until_healthy().await;

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    // The dead-letter topics are created beside start-up, not before readiness (a missing one
    // does not keep the service unready): each of the six is waited for.
    for suffix in [
        "movie-events",
        "user-events",
        "payment-events",
        "movie-events.dlq",
        "user-events.dlq",
        "payment-events.dlq",
    ] {
        let name = app.topic(suffix);
        let partitions = eventually(&format!("{name} is created"), || {
            let metadata = reader.fetch_metadata(Some(&name), Duration::from_secs(10));
            let partitions = metadata.ok().and_then(|metadata| {
                let topic = metadata.topics().iter().find(|t| t.name() == name)?;
                (topic.error().is_none() && !topic.partitions().is_empty())
                    .then(|| topic.partitions().len())
            });
            std::future::ready(partitions)
        })
        .await;
        assert_eq!(
            partitions, 3,
            "{name} has KAFKA_TOPIC_PARTITIONS partitions"
        );
    }
    app.stop().await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_replication_factor_beyond_the_brokers_is_a_reason_in_health_not_a_silent_retry() {
    let app = TestApp::spawn(with(
        isolated_vars(&brokers()),
        &[("KAFKA_TOPIC_REPLICATION_FACTOR", "3")],
    ))
    .await;
    let body = crate::helpers::eventually("health to say why the topics are missing", || async {
        let (status, body) = app.health().await;
        let reason = body["kafka"]["last_error"].as_str().unwrap_or_default();
        (status == 503 && reason.contains("KAFKA_TOPIC_REPLICATION_FACTOR is 3")).then_some(body)
    })
    .await;
    assert_eq!(body["kafka"]["reachable"], true, "{body}");
    assert_eq!(
        body["kafka"]["missing_topics"].as_array().unwrap().len(),
        3,
        "{body}"
    );
    app.stop().await;
}
