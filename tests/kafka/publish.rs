use std::time::{Duration, Instant};

use rdkafka::Message;
use serde_json::{Value, json};

use crate::helpers::{TestApp, brokers, header, isolated_vars, read_record, with};

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn each_event_type_is_stored_at_the_partition_and_offset_the_response_names() {
    let brokers = brokers();
    let app = TestApp::spawn(isolated_vars(&brokers)).await;
    app.wait_until_healthy().await;
    let cases = [
        (
            "movie",
            "movie-events",
            "1",
            json!({
                "movie_id": 1, "title": "The Matrix", "action": "viewed", "user_id": 123,
                "rating": 9.5, "genres": ["Sci-Fi", "Action"],
                "description": "A computer hacker learns about the true nature of reality"
            }),
        ),
        (
            "user",
            "user-events",
            "123",
            json!({
                "user_id": 123, "username": "john_doe", "email": "john@example.com",
                "action": "registered", "timestamp": "2025-01-01T00:00:00Z"
            }),
        ),
        (
            "payment",
            "payment-events",
            "456",
            json!({
                "payment_id": 456, "user_id": 123, "amount": 99.99, "status": "completed",
                "timestamp": "2025-01-01T00:00:00Z", "method_type": "credit_card"
            }),
        ),
    ];
    for (kind, topic, key, body) in cases {
        let (status, response) = app.post(kind, &body).await;
        assert_eq!(status, 201, "{kind}: {response}");
        assert_eq!(response["topic"], app.topic(topic));
        let partition = response["partition"].as_i64().unwrap() as i32;
        let offset = response["offset"].as_i64().unwrap();

        let record = read_record(&brokers, &app.topic(topic), partition, offset);
        assert_eq!(
            record.key(),
            Some(key.as_bytes()),
            "{kind}: key is the entity id"
        );
        let value: Value = serde_json::from_slice(record.payload().unwrap()).unwrap();
        assert_eq!(
            value, response["event"],
            "{kind}: value is the returned event"
        );
        assert_eq!(value["payload"], body);
        assert_eq!(
            header(&record, "event-id").as_deref(),
            response["event"]["id"].as_str()
        );
        assert_eq!(header(&record, "event-type").as_deref(), Some(kind));
    }
    app.stop().await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn one_entitys_events_share_a_partition_in_the_order_they_were_acknowledged() {
    let brokers = brokers();
    let vars = crate::helpers::with(isolated_vars(&brokers), &[("KAFKA_TOPIC_PARTITIONS", "3")]);
    let app = TestApp::spawn(vars).await;
    app.wait_until_healthy().await;
    let mut placements = Vec::new();
    for action in ["added", "viewed", "updated", "deleted"] {
        let body = json!({"movie_id": 77, "title": "Heat", "action": action});
        let (status, response) = app.post("movie", &body).await;
        assert_eq!(status, 201, "{response}");
        placements.push((
            response["partition"].as_i64().unwrap(),
            response["offset"].as_i64().unwrap(),
        ));
    }
    assert!(
        placements
            .windows(2)
            .all(|w| w[0].0 == w[1].0 && w[0].1 < w[1].1),
        "{placements:?}"
    );
    app.stop().await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn every_record_is_a_cloudevent_in_binary_mode_from_the_configured_source() {
    let brokers = brokers();
    let source = "https://cinemaabyss.example/events-service";
    let vars = crate::helpers::with(isolated_vars(&brokers), &[("CLOUDEVENTS_SOURCE", source)]);
    let app = TestApp::spawn(vars).await;
    app.wait_until_healthy().await;
    let cases = [
        (
            "movie",
            "movie-events",
            "com.cinemaabyss.movie.rated",
            json!({"movie_id": 7, "title": "Heat", "action": "rated", "rating": 8}),
        ),
        (
            "user",
            "user-events",
            "com.cinemaabyss.user.logged_in",
            json!({"user_id": 123, "action": "logged_in", "timestamp": "2025-01-01T00:00:00Z"}),
        ),
        (
            "payment",
            "payment-events",
            "com.cinemaabyss.payment.refunded",
            json!({"payment_id": 456, "user_id": 123, "amount": 5, "status": "refunded"}),
        ),
    ];
    for (kind, topic, ce_type, body) in cases {
        let (status, response) = app.post(kind, &body).await;
        assert_eq!(status, 201, "{kind}: {response}");
        let event = &response["event"];
        let record = read_record(
            &brokers,
            &app.topic(topic),
            response["partition"].as_i64().unwrap() as i32,
            response["offset"].as_i64().unwrap(),
        );
        let ce = |name: &str| header(&record, name).unwrap_or_else(|| panic!("{kind}: no {name}"));

        assert_eq!(ce("ce_specversion"), "1.0", "{kind}");
        assert_eq!(ce("ce_id"), event["id"].as_str().unwrap(), "{kind}");
        assert_eq!(ce("ce_source"), source, "{kind}");
        assert_eq!(ce("ce_type"), ce_type, "{kind}");
        assert_eq!(ce("content-type"), "application/json", "{kind}");
        // The envelope's timestamp, the time of receipt, even when the payload has its own.
        let time = chrono::DateTime::parse_from_rfc3339(&ce("ce_time")).expect("RFC 3339");
        let timestamp = chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap());
        assert_eq!(Ok(time), timestamp, "{kind}");
        assert_eq!(
            ce("ce_time"),
            event["timestamp"].as_str().unwrap(),
            "{kind}"
        );
        // Binary mode: the value is the data as it is, here the envelope the API returned.
        let value: Value = serde_json::from_slice(record.payload().unwrap()).unwrap();
        assert_eq!(&value, event, "{kind}");
        let mut ce_headers: Vec<String> = {
            use rdkafka::message::Headers;
            let headers = record.headers().expect("the record has headers");
            headers
                .iter()
                .map(|h| h.key.to_owned())
                .filter(|k| k.starts_with("ce_"))
                .collect()
        };
        ce_headers.sort();
        assert_eq!(
            ce_headers,
            ["ce_id", "ce_source", "ce_specversion", "ce_time", "ce_type"],
            "{kind}: each attribute once, no others"
        );
    }
    app.stop().await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_lone_request_waits_for_no_batch_and_overlapping_ones_are_batched() {
    // A linger far longer than a broker's acknowledgement: a request that waited for it would
    // take two seconds.
    let linger = Duration::from_secs(2);
    let vars = with(
        isolated_vars(&brokers()),
        &[("KAFKA_LINGER_MS", "2000"), ("KAFKA_IDLE_LINGER_MS", "0")],
    );
    let app = TestApp::spawn(vars).await;
    app.wait_until_healthy().await;
    let movie = |id: u64| json!({"movie_id": id, "title": "T", "action": "viewed"});

    let started = Instant::now();
    let (status, body) = app.post("movie", &movie(1)).await;
    assert_eq!(status, 201, "{body}");
    assert!(started.elapsed() < linger / 2, "{:?}", started.elapsed());

    // Eight at once: the first may go alone, the others find it in flight and wait for the
    // batch, so the last answer comes after the linger.
    let started = Instant::now();
    let bodies: Vec<Value> = (2..10).map(movie).collect();
    let answers =
        futures::future::join_all(bodies.iter().map(|body| app.post("movie", body))).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 201),
        "{answers:?}"
    );
    assert!(started.elapsed() >= linger, "{:?}", started.elapsed());
    app.stop().await;
}
