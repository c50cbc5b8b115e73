//! Records the service did not write, as hostile or broken producers write them: a record too
//! large to dead-letter whole, a dead-letter topic that is gone, keys and envelope fields that
//! try to forge log lines, amounts no payment has, payloads of a megabyte. None may stall a
//! partition silently, forge a line, make the statistics infinite or grow the live view.

use futures::StreamExt;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use serde_json::{Value, json};

use crate::helpers::{
    DEADLINE, ServiceProcess, brokers, eventually, foreign_producer, header, isolated_vars, metric,
    produce_to, read_partition, var, wait_for_dead_letter_topics, wait_until_healthy, with,
};

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("the admin client is created")
}

/// An envelope the consumers can process.
fn envelope(id: &str, event_type: &str, payload: Value) -> Vec<u8> {
    json!({"id": id, "type": event_type, "timestamp": "2025-01-01T00:00:00Z", "payload": payload})
        .to_string()
        .into_bytes()
}

fn movie_payload() -> Value {
    json!({"movie_id": 1, "title": "Direct", "action": "viewed"})
}

async fn health(address: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{address}/api/events/health"))
        .await
        .expect("health answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("health is JSON"))
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_dead_letter_too_large_for_kafka_is_written_cut_short_and_the_partition_goes_on() {
    let brokers = brokers();
    let vars = isolated_vars(&brokers);
    let topic = format!("{}movie-events", var(&vars, "KAFKA_TOPIC_PREFIX"));
    let mut service = ServiceProcess::spawn(&vars);
    wait_until_healthy(&service.address).await;
    service.wait_for_line(|l| l.ends_with(&format!("Started consumer for topic {topic}")));

    // A 1 MB record that is not an event: the broker's default limit takes it, but its dead
    // letter, with the dlq-* headers added, is over the producer's 1,000,000 bytes.
    let producer = foreign_producer(&brokers);
    let poison = produce_to(&producer, &topic, 0, b"poison", &vec![b'x'; 999_900]).await;
    let after = uuid::Uuid::new_v4().to_string();
    produce_to(
        &producer,
        &topic,
        0,
        b"1",
        &envelope(&after, "movie", movie_payload()),
    )
    .await;

    service.wait_for_line(|l| l.contains("[EVENT PROCESSED]") && l.contains(&after));
    let letters = tokio::task::spawn_blocking({
        let (brokers, dlq) = (brokers.clone(), format!("{topic}.dlq"));
        move || read_partition(&brokers, &dlq, 0, 1)
    })
    .await
    .unwrap();
    let letter = &letters[0];
    assert_eq!(letter.payload().map(<[u8]>::len), Some(64 * 1024));
    assert_eq!(letter.key(), Some(&b"poison"[..]));
    assert_eq!(
        header(letter, "dlq-source-topic").as_deref(),
        Some(topic.as_str())
    );
    assert_eq!(
        header(letter, "dlq-source-offset"),
        Some(poison.to_string())
    );
    assert_eq!(
        header(letter, "dlq-original-size").as_deref(),
        Some("value=999900 key=6 headers=0")
    );
    let truncated = header(letter, "dlq-truncated").unwrap_or_default();
    assert!(
        truncated.starts_with("cut to 65536 of 999900 value bytes: ")
            && truncated.contains("too large"),
        "{truncated}"
    );
    assert!(header(letter, "dlq-error").is_some_and(|e| e.contains("not an event")));
    let series = format!(r#"events_service_dead_letters_truncated_total{{topic="{topic}"}}"#);
    assert_eq!(metric(&service.address, &series).await, Some(1.0));
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn while_a_dead_letter_cannot_be_written_its_partition_is_held_and_reported_and_the_others_go_on()
 {
    let brokers = brokers();
    let vars = with(
        isolated_vars(&brokers),
        &[
            ("KAFKA_TOPIC_PARTITIONS", "2"),
            ("KAFKA_DELIVERY_TIMEOUT_MS", "1000"),
            ("KAFKA_DLQ_MAX_HOLD_MS", "2000"),
        ],
    );
    let topic = format!("{}movie-events", var(&vars, "KAFKA_TOPIC_PREFIX"));
    let dead_letters = format!("{topic}.dlq");
    let mut service = ServiceProcess::spawn(&vars);
    wait_until_healthy(&service.address).await;
    service.wait_for_line(|l| l.ends_with(&format!("Started consumer for topic {topic}")));
    wait_for_dead_letter_topics(&service.address).await;

    let admin = admin(&brokers);
    let deleted = admin
        .delete_topics(&[&dead_letters], &AdminOptions::new())
        .await
        .expect("the deletion is answered");
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    // Ready without the dead-letter topic, and saying it is missing.
    let (status, body) = eventually("health to notice the missing topic", || async {
        let (status, body) = health(&service.address).await;
        let missing = body["kafka"]["missing_dead_letter_topics"] == json!([dead_letters]);
        missing.then_some((status, body))
    })
    .await;
    assert_eq!(status, 200, "{body}");

    let producer = foreign_producer(&brokers);
    let poison = produce_to(&producer, &topic, 0, b"p", b"not an event").await;
    let behind = uuid::Uuid::new_v4().to_string();
    produce_to(
        &producer,
        &topic,
        0,
        b"1",
        &envelope(&behind, "movie", movie_payload()),
    )
    .await;
    let beside = uuid::Uuid::new_v4().to_string();
    produce_to(
        &producer,
        &topic,
        1,
        b"2",
        &envelope(&beside, "movie", movie_payload()),
    )
    .await;

    // The other partition goes on; this one is held, and health says where and why.
    service.wait_for_line(|l| l.contains("[EVENT PROCESSED]") && l.contains(&beside));
    let held = eventually("health to report the held partition", || async {
        let (_, body) = health(&service.address).await;
        let held = body["consumers"]["held_partitions"]
            .as_array()?
            .first()?
            .clone();
        Some(held)
    })
    .await;
    assert_eq!(
        (held["topic"].as_str(), &held["partition"], &held["offset"]),
        (Some(topic.as_str()), &json!(0), &json!(poison))
    );
    assert!(
        !held["reason"].as_str().unwrap_or_default().is_empty(),
        "{held}"
    );
    let series = format!(r#"events_service_consumer_held_partitions{{topic="{topic}"}}"#);
    assert_eq!(metric(&service.address, &series).await, Some(1.0));
    // Past KAFKA_DLQ_MAX_HOLD_MS, health pages an operator.
    let body = eventually("health to turn 503", || async {
        let (status, body) = health(&service.address).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["consumers"]["status"], false, "{body}");
    assert!(
        !service.output().contains(&behind),
        "nothing after the held record is processed"
    );

    // The operator brings the topic back: the letter is written and the partition goes on.
    let created = admin
        .create_topics(
            &[NewTopic::new(&dead_letters, 2, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("the creation is answered");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    service.wait_for_line(|l| l.contains("[EVENT PROCESSED]") && l.contains(&behind));
    let (status, body) = eventually("health to recover", || async {
        let (status, body) = health(&service.address).await;
        (status == 200).then_some((status, body))
    })
    .await;
    assert_eq!(
        (status, &body["consumers"]["held_partitions"]),
        (200, &json!([]))
    );
    assert_eq!(metric(&service.address, &series).await, Some(0.0));
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn records_from_other_producers_forge_no_log_line_and_leave_the_statistics_finite() {
    let brokers = brokers();
    let vars = isolated_vars(&brokers);
    let prefix = var(&vars, "KAFKA_TOPIC_PREFIX").to_owned();
    let (movies, payments) = (
        format!("{prefix}movie-events"),
        format!("{prefix}payment-events"),
    );
    let mut service = ServiceProcess::spawn(&vars);
    wait_until_healthy(&service.address).await;
    service.wait_for_line(|l| l.ends_with(&format!("Started consumer for topic {payments}")));

    let producer = foreign_producer(&brokers);
    let forged_key = b"1\n2025-01-01T00:00:00.000000Z  INFO [EVENT PROCESSED] Type: forged-by-key";
    // The envelope's id and time are typed (a UUID, RFC 3339): its type is the free text.
    let forged_type = "x\r\n2025-01-01T00:00:00.000000Z  INFO [PRODUCER] Published forged-by-type";
    let forged = uuid::Uuid::new_v4().to_string();
    let value = envelope(&forged, forged_type, movie_payload());
    produce_to(&producer, &movies, 0, forged_key, &value).await;
    for n in 0..2 {
        let payment =
            json!({"payment_id": n + 1, "user_id": 1, "amount": 1e308, "status": "completed"});
        let value = envelope(&uuid::Uuid::new_v4().to_string(), "payment", payment);
        produce_to(&producer, &payments, 0, b"1", &value).await;
    }
    let payment = json!({"payment_id": 9, "user_id": 1, "amount": 2.5, "status": "completed"});
    let small = uuid::Uuid::new_v4().to_string();
    let value = envelope(&small, "payment", payment);
    produce_to(&producer, &payments, 0, b"9", &value).await;

    service.wait_for_line(|l| l.contains("[EVENT PROCESSED]") && l.contains(&small));
    service.wait_for_line(|l| l.contains("[EVENT PROCESSED]") && l.contains(&forged));
    let output = service.output();
    for line in output.lines() {
        assert!(
            !line.contains("forged") || line.contains("\\n"),
            "a forged line got through: {line:?}"
        );
    }
    assert!(output.contains(
        r"Key: 1\n2025-01-01T00:00:00.000000Z  INFO [EVENT PROCESSED] Type: forged-by-key"
    ));
    assert!(output.contains(
        r"Type: x\r\n2025-01-01T00:00:00.000000Z  INFO [PRODUCER] Published forged-by-type"
    ));

    let stats: Value = eventually("the statistics to count the payments", || async {
        let stats: Value = reqwest::get(format!("{}/api/events/stats", service.address))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (stats["payments"]["completed"]["count"] == 3).then_some(stats)
    })
    .await;
    assert_eq!(stats["payments"]["completed"]["amount"], 2.5, "{stats}");
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_megabyte_payload_is_kept_cut_short_in_the_live_view_and_marked_so() {
    let brokers = brokers();
    let vars = isolated_vars(&brokers);
    let topic = format!("{}movie-events", var(&vars, "KAFKA_TOPIC_PREFIX"));
    let mut service = ServiceProcess::spawn(&vars);
    wait_until_healthy(&service.address).await;
    service.wait_for_line(|l| l.ends_with(&format!("Started consumer for topic {topic}")));

    let producer = foreign_producer(&brokers);
    let payload =
        json!({"movie_id": 1, "title": "Huge", "action": "viewed", "blob": "b".repeat(1_000_000)});
    let huge = uuid::Uuid::new_v4().to_string();
    produce_to(
        &producer,
        &topic,
        0,
        b"1",
        &envelope(&huge, "movie", payload),
    )
    .await;
    service.wait_for_line(|l| l.contains("[EVENT PROCESSED]") && l.contains(&huge));

    let response = reqwest::get(format!("{}/api/events/stream", service.address))
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let event = tokio::time::timeout(DEADLINE, async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
                return serde_json::from_str::<Value>(data).unwrap();
            }
        }
        panic!("the stream ended");
    })
    .await
    .expect("the kept event is replayed");
    assert_eq!(event["id"], huge);
    assert_eq!(event["truncated"], true);
    assert!(event["payload_bytes"].as_u64().unwrap() > 1_000_000);
    let preview = event["payload"].as_str().unwrap();
    assert!(
        preview.len() <= 1024 && preview.starts_with(r#"{"action":"viewed","blob":"bbb"#),
        "{preview}"
    );
}
