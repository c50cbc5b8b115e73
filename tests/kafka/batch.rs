use std::time::{Duration, Instant};

use rdkafka::Message;
use serde_json::{Value, json};

use crate::helpers::{TestApp, brokers, closed_port, header, isolated_vars, read_record, with};

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_batch_is_stored_where_each_result_says() {
    let brokers = brokers();
    let app = TestApp::spawn(isolated_vars(&brokers)).await;
    app.wait_until_healthy().await;
    let batch = json!([
        {"type": "movie", "movie_id": 10, "title": "Alien", "action": "added"},
        {"type": "user", "user_id": 20, "action": "registered", "email": "ripley@example.com"},
        {"type": "payment", "payment_id": 30, "user_id": 20, "amount": 4.5, "status": "completed"},
        {"type": "movie", "movie_id": 10, "title": "Alien", "action": "rated", "rating": 8},
    ]);
    let (status, response) = app.post("batch", &batch).await;
    assert_eq!(status, 201, "{response}");
    let results = response["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for (item, result) in batch.as_array().unwrap().iter().zip(results) {
        let topic = result["topic"].as_str().unwrap();
        let partition = result["partition"].as_i64().unwrap() as i32;
        let record = read_record(
            &brokers,
            topic,
            partition,
            result["offset"].as_i64().unwrap(),
        );
        let value: Value = serde_json::from_slice(record.payload().unwrap()).unwrap();
        assert_eq!(value, result["event"]);
        assert_eq!(value["type"], item["type"]);
        assert_eq!(header(&record, "event-id").as_deref(), value["id"].as_str());
    }
    assert!(
        results[0]["offset"].as_i64() < results[3]["offset"].as_i64(),
        "one movie's events keep their order"
    );
    app.stop().await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_batch_larger_than_the_free_queue_is_refused_with_503_and_nothing_is_published() {
    let brokers = brokers();
    let vars = with(isolated_vars(&brokers), &[("KAFKA_MAX_QUEUED_EVENTS", "2")]);
    let app = TestApp::spawn(vars).await;
    app.wait_until_healthy().await;
    let item = json!({"type": "user", "user_id": 1, "action": "logged_in"});
    let (status, response) = app.post("batch", &json!([item, item, item])).await;
    assert_eq!(status, 503, "{response}");
    let (status, response) = app.post("batch", &json!([item, item])).await;
    assert_eq!(status, 201, "{response}");
    assert_eq!(
        response["results"][0]["offset"], 0,
        "the refused batch left nothing behind"
    );
    app.stop().await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn when_the_producer_queue_is_full_a_post_is_answered_503_with_retry_after_at_once() {
    // No broker: the one queued event waits out its delivery timeout and fills the queue.
    let unreachable = format!("127.0.0.1:{}", closed_port());
    let vars = with(
        isolated_vars(&unreachable),
        &[
            ("KAFKA_MAX_QUEUED_EVENTS", "1"),
            ("KAFKA_DELIVERY_TIMEOUT_MS", "4000"),
        ],
    );
    let app = TestApp::spawn(vars).await;
    let body = json!({"movie_id": 1, "title": "T", "action": "viewed"});
    let url = format!("{}/api/events/movie", app.address);
    let waiting = tokio::spawn(app.client.post(&url).json(&body).send());

    // Whichever request reaches the queue first holds it: a request that does not answer at
    // once is that one (its event stays queued after the client gives up); the next is shed.
    let started = Instant::now();
    let response = loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never answered 503"
        );
        let sent = app
            .client
            .post(&url)
            .json(&body)
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 503 => break response,
            Ok(response) => panic!("expected 503, got {}", response.status()),
            Err(error) => assert!(error.is_timeout(), "{error}"),
        }
    };
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "the Kafka producer's queue is full");
    let first = waiting.await.unwrap().unwrap();
    assert_eq!(first.status(), 500, "the queued event timed out");
    app.stop().await;
}
