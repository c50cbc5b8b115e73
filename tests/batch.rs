//! Batches over the in-process router: validated whole before anything is published, published
//! together, and answered item by item, with a status that says whether every item is stored.
//! The fake sink decides an outcome per record, so that mixed batches are tested too.

mod common;

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Outcome, app, app_deciding, movie, payment, user};
use serde_json::{Value, json};

fn batch_of(items: &[(&str, Value)]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(kind, body)| {
                let mut item = body.clone();
                item["type"] = json!(kind);
                item
            })
            .collect(),
    )
}

#[tokio::test]
async fn a_valid_batch_is_published_and_answered_item_by_item_in_order() {
    let app = app(Outcome::Stored);
    let batch = batch_of(&[("payment", payment()), ("movie", movie()), ("user", user())]);
    let (status, response) = app.post("/api/events/batch", batch.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    assert_eq!(response["status"], "success");
    let results = response["results"].as_array().unwrap();
    let topics: Vec<&str> = results
        .iter()
        .map(|r| r["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics, ["payment-events", "movie-events", "user-events"]);
    assert!(
        results
            .iter()
            .all(|r| r["status"] == "success" && r["partition"] == 2)
    );
    assert_eq!(
        results[1]["event"]["payload"],
        movie(),
        "the type field is not part of the payload"
    );

    let published = app.published();
    assert_eq!(published.len(), 3);
    for (record, result) in published.iter().zip(results) {
        assert_eq!(
            serde_json::from_slice::<Value>(&record.value).unwrap(),
            result["event"]
        );
    }
}

#[tokio::test]
async fn a_batch_with_invalid_items_names_each_by_index_and_field_and_publishes_nothing() {
    let app = app(Outcome::Stored);
    let mut broken = movie();
    broken["rating"] = json!(42);
    let batch = json!([
        {"type": "movie", "movie_id": 1, "title": "Fine", "action": "viewed"},
        {"type": "movie", "movie_id": 1, "title": "Broken", "action": "viewed", "rating": 42},
        {"type": "podcast"},
        {"type": "payment", "payment_id": 1},
    ]);
    let (status, response) = app.post("/api/events/batch", batch.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
    let items: Vec<(u64, Vec<&str>)> = response["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let fields = item["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap())
                .collect();
            (item["index"].as_u64().unwrap(), fields)
        })
        .collect();
    assert_eq!(
        items,
        [
            (1, vec!["rating"]),
            (2, vec!["type"]),
            (3, vec!["user_id", "amount", "status"])
        ]
    );
    assert!(app.published().is_empty());
}

#[tokio::test]
async fn empty_oversized_and_non_array_batches_are_refused() {
    let app = app(Outcome::Stored);
    let (status, body) = app.post("/api/events/batch", "[]").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("the batch is empty"))
    );
    let eleven = Value::Array(vec![batch_of(&[("movie", movie())])[0].clone(); 11]);
    let (status, body) = app.post("/api/events/batch", eleven.to_string()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "a batch may hold at most 10 events");
    let (status, body) = app.post("/api/events/batch", movie().to_string()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("the request body must be a JSON array")
        )
    );
    assert!(app.published().is_empty());
}

#[tokio::test]
async fn a_batch_kafka_did_not_store_is_a_500_saying_so_per_item() {
    let app = app(Outcome::TimedOut);
    let batch = batch_of(&[("movie", movie()), ("user", user())]);
    let (status, response) = app.post("/api/events/batch", batch.to_string()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response["error"], "2 of 2 events were not stored");
    for result in response["results"].as_array().unwrap() {
        assert_eq!(result["status"], "error");
        assert_eq!(
            result["error"],
            "Kafka did not acknowledge the event within 5000 ms"
        );
        assert!(result["event"]["id"].is_string());
    }
}

#[tokio::test]
async fn a_batch_that_found_the_queue_full_is_a_503_with_retry_after() {
    let app = app(Outcome::QueueFull);
    let batch = batch_of(&[("movie", movie())]);
    let request = Request::post("/api/events/batch")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(batch.to_string()))
        .unwrap();
    let (status, headers, body) = app.send(request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(body["results"][0]["status"], "error");
}

#[tokio::test]
async fn a_batch_with_some_items_stored_and_others_failed_is_a_500_naming_each() {
    // Items 0 and 2 are stored; item 1 times out, item 3 is refused for good.
    let app = app_deciding(&[], |n| match n {
        1 => Outcome::TimedOut,
        3 => Outcome::Rejected,
        _ => Outcome::Stored,
    });
    let batch = batch_of(&[
        ("movie", movie()),
        ("user", user()),
        ("payment", payment()),
        ("movie", movie()),
    ]);
    let (status, body) = app.post("/api/events/batch", batch.to_string()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"], "2 of 4 events were not stored");
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["success", "error", "success", "error"]);
    assert_eq!(
        results[1]["error"],
        "Kafka did not acknowledge the event within 5000 ms"
    );
    assert!(
        results[3]["error"].as_str().unwrap().contains("too large"),
        "{}",
        results[3]
    );
    assert_eq!(
        results[1]["event"]["type"], "user",
        "a failed item names its event"
    );
    assert_eq!(results[0]["offset"], 41);
    assert_eq!(results[2]["offset"], 42);
    assert_eq!(app.published().len(), 2, "the stored items, and only they");
}

#[tokio::test]
async fn a_batch_whose_only_failures_found_the_queue_full_is_a_503_with_the_stored_ones() {
    let app = app_deciding(&[], |n| {
        if n == 0 {
            Outcome::Stored
        } else {
            Outcome::QueueFull
        }
    });
    let batch = batch_of(&[("movie", movie()), ("user", user()), ("payment", payment())]);
    let request = Request::post("/api/events/batch")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(batch.to_string()))
        .unwrap();
    let (status, headers, body) = app.send(request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(
        body["error"],
        "2 of 3 events were not stored: the producer's queue is full"
    );
    assert_eq!(body["results"][0]["status"], "success");
    assert_eq!(body["results"][1]["status"], "error");
    assert_eq!(app.published().len(), 1);
}

#[tokio::test]
async fn a_batch_of_failures_of_kafka_is_a_500_even_when_the_queue_was_full_for_some() {
    let app = app_deciding(&[], |n| {
        if n == 0 {
            Outcome::Failed
        } else {
            Outcome::QueueFull
        }
    });
    let batch = batch_of(&[("movie", movie()), ("user", user())]);
    let (status, body) = app.post("/api/events/batch", batch.to_string()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"], "2 of 2 events were not stored");
}

#[tokio::test]
async fn a_batch_that_cannot_fit_the_queue_whole_publishes_nothing_and_is_a_503() {
    let app = app(Outcome::Stored);
    // The queue holds all but two records: a batch of three does not fit.
    let capacity = app.sink.capacity;
    app.sink.queued.store(capacity - 2, Ordering::SeqCst);
    let batch = batch_of(&[("movie", movie()), ("user", user()), ("payment", payment())]);
    let (status, body) = app.post("/api/events/batch", batch.to_string()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.get("results").is_none(),
        "nothing was published: {body}"
    );
    assert_eq!(app.calls(), 0);
    assert_eq!(
        app.metric(
            r#"events_service_kafka_produce_total{topic="movie-events",result="queue_full"}"#
        ),
        Some(1.0)
    );
    // Two fit.
    let batch = batch_of(&[("movie", movie()), ("user", user())]);
    let (status, _) = app.post("/api/events/batch", batch.to_string()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        app.metric(r#"events_service_kafka_produce_total{topic="movie-events",result="stored"}"#),
        Some(1.0)
    );
}
