//! `Idempotency-Key` over the in-process router with an in-memory publisher: a repeat gets the
//! first answer and publishes nothing; a different request under the same key is refused.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use common::{Outcome, TestRouter, app, app_from_vars, movie, payment};
use serde_json::{Value, json};
use tower::ServiceExt;

fn keyed(path: &str, key: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn send(app: &TestRouter, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    app.send(request).await
}

#[tokio::test]
async fn a_repeat_with_the_same_key_and_body_gets_the_first_answer_and_publishes_nothing() {
    let app = app(Outcome::Stored);
    let (first_status, first_headers, first) = app
        .send_raw(keyed("/api/events/movie", "order-1", &movie()))
        .await;
    let (again_status, again_headers, again) = app
        .send_raw(keyed("/api/events/movie", "order-1", &movie()))
        .await;

    assert_eq!(first_status, StatusCode::CREATED);
    assert_eq!(again_status, StatusCode::CREATED);
    assert_eq!(
        again, first,
        "byte for byte: the same event id, partition and offset"
    );
    assert_eq!(app.published().len(), 1);
    assert!(first_headers.get("idempotent-replayed").is_none());
    assert_eq!(again_headers["idempotent-replayed"], "true");
    assert_eq!(again_headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn the_same_key_with_another_body_or_route_is_a_422_and_publishes_nothing() {
    let app = app(Outcome::Stored);
    let (status, _, _) = send(&app, keyed("/api/events/movie", "k-1", &movie())).await;
    assert_eq!(status, StatusCode::CREATED);

    let mut other = movie();
    other["title"] = json!("Another Movie");
    let (status, _, body) = send(&app, keyed("/api/events/movie", "k-1", &other)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"],
        "this Idempotency-Key was already used with a different request"
    );
    let (status, _, _) = send(&app, keyed("/api/events/payment", "k-1", &payment())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.published().len(), 1);
}

#[tokio::test]
async fn different_keys_and_requests_without_a_key_publish_each_time() {
    let app = app(Outcome::Stored);
    for key in ["a", "b"] {
        let (status, _, _) = send(&app, keyed("/api/events/movie", key, &movie())).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    for _ in 0..2 {
        let (status, _) = app.post("/api/events/movie", movie().to_string()).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(app.published().len(), 4);
}

#[tokio::test]
async fn a_failed_request_frees_its_key_so_a_retry_publishes_again() {
    let app = app(Outcome::TimedOut);
    for _ in 0..2 {
        let (status, _, _) = send(&app, keyed("/api/events/movie", "retry-me", &movie())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(app.calls(), 2);
}

#[tokio::test]
async fn an_invalid_event_is_not_remembered() {
    let app = app(Outcome::Stored);
    let (status, _, _) = send(&app, keyed("/api/events/movie", "k", &json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = send(&app, keyed("/api/events/movie", "k", &movie())).await;
    assert_eq!(status, StatusCode::CREATED, "the key was free again");
}

#[tokio::test]
async fn a_repeat_while_the_first_is_in_flight_is_a_409_with_retry_after() {
    let app = Arc::new(app(Outcome::Hang));
    let first = {
        let app = app.clone();
        tokio::spawn(async move {
            let request = keyed("/api/events/movie", "slow", &movie());
            app.router.clone().oneshot(request).await
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.calls() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first never published"
        );
        tokio::task::yield_now().await;
    }
    let (status, headers, body) = send(&app, keyed("/api/events/movie", "slow", &movie())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("still in progress")
    );
    first.abort();
}

#[tokio::test]
async fn a_batch_is_replayed_whole() {
    let app = app(Outcome::Stored);
    let mut item = movie();
    item["type"] = json!("movie");
    let batch = json!([item.clone(), item]);
    let (status, _, first) = app
        .send_raw(keyed("/api/events/batch", "b-1", &batch))
        .await;
    let (_, _, again) = app
        .send_raw(keyed("/api/events/batch", "b-1", &batch))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, first);
    assert_eq!(app.published().len(), 2);
}

#[tokio::test]
async fn keys_that_are_not_visible_ascii_are_a_400() {
    let app = app(Outcome::Stored);
    let long = "k".repeat(256);
    for key in [" ", long.as_str()] {
        let (status, _, body) = send(&app, keyed("/api/events/movie", key, &movie())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key:?}");
        assert!(body["error"].as_str().unwrap().contains("Idempotency-Key"));
    }
    assert!(app.published().is_empty());
}

#[tokio::test]
async fn two_callers_using_the_same_key_do_not_meet() {
    let (first_key, second_key) = ("first-caller-key-0001", "second-caller-key-002");
    let keys = format!("{first_key},{second_key}");
    let app = app_from_vars(&[("AUTH_API_KEYS", &keys)], Outcome::Stored);
    for api_key in [first_key, second_key] {
        let mut request = keyed("/api/events/movie", "shared", &movie());
        request
            .headers_mut()
            .insert("x-api-key", api_key.parse().unwrap());
        let (status, headers, _) = send(&app, request).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(headers.get("idempotent-replayed").is_none());
    }
    assert_eq!(app.published().len(), 2);
}
