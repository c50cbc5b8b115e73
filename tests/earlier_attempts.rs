//! A retry under an `Idempotency-Key` whose earlier attempt ended without a remembered answer
//! (its instance died after Kafka stored the event, or Kafka did not confirm in time): the
//! events have the same ids on every attempt, and what the earlier attempt stored is found and
//! answered, not published again. The store here forgets every answer, as a dead instance's
//! claim lapses, and hands each attempt the times of those before it, as Redis does.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Outcome, TestRouter, app_deciding, movie, payment};
use events_service::http::idempotency::{Begin, Claim, Ending};
use events_service::http::{ClientKey, Store, router};
use events_service::shared::Unavailable;
use serde_json::{Value, json};

/// Claims every key afresh, with the earlier attempts' times, and remembers no answer.
#[derive(Default)]
struct LapsingStore {
    attempts: Mutex<Vec<i64>>,
}

#[async_trait]
impl Store for LapsingStore {
    async fn begin(
        &self,
        caller: &ClientKey,
        key: &str,
        _: [u8; 32],
    ) -> Result<Begin, Unavailable> {
        let mut attempts = self.attempts.lock().unwrap();
        let earlier = attempts.clone();
        let at = 1_700_000_000_000 + 1000 * attempts.len() as i64;
        attempts.push(at);
        Ok(Begin::Fresh(Claim {
            caller: caller.clone(),
            key: key.to_owned(),
            token: attempts.len() as u64,
            at,
            earlier,
        }))
    }

    async fn finish(&self, _: &Claim, _: Ending) {}
}

fn lapsing(app: TestRouter) -> TestRouter {
    let state = app
        .state
        .with_idempotency_store(Arc::new(LapsingStore::default()));
    TestRouter {
        router: router(state.clone()),
        state,
        ..app
    }
}

fn keyed(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", "order-7")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn what_an_earlier_attempt_stored_is_answered_again_and_not_published_twice() {
    let app = lapsing(app_deciding(&[], |_| Outcome::Stored));
    let (status, _, first) = app.send_raw(keyed("/api/events/movie", &movie())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, retried) = app.send_raw(keyed("/api/events/movie", &movie())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(retried, first, "the stored event's answer, byte for byte");
    assert_eq!(app.published().len(), 1, "published once");
    assert_eq!(app.sink.finds.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_batch_retried_after_a_partial_failure_publishes_only_what_is_missing_with_the_same_ids()
{
    // The first attempt: item 1 is not stored; the retry's single record is.
    let app = lapsing(app_deciding(&[], |n| match n {
        1 => Outcome::TimedOut,
        _ => Outcome::Stored,
    }));
    let batch = json!([
        {"type": "movie", "movie_id": 1, "title": "A", "action": "viewed"},
        {"type": "payment", "payment_id": 2, "user_id": 3, "amount": 4.5, "status": "completed"},
        {"type": "movie", "movie_id": 5, "title": "B", "action": "rated", "rating": 4.0},
    ]);
    let (status, _, first) = app.send(keyed("/api/events/batch", &batch)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{first}");
    let (status, _, retried) = app.send(keyed("/api/events/batch", &batch)).await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");

    let ids = |answer: &Value| -> Vec<Value> {
        let results = answer["results"].as_array().unwrap();
        results.iter().map(|r| r["event"]["id"].clone()).collect()
    };
    assert_eq!(ids(&retried), ids(&first), "the same ids on every attempt");
    for item in [0, 2] {
        assert_eq!(
            retried["results"][item], first["results"][item],
            "item {item} as stored"
        );
    }
    assert_eq!(
        app.published().len(),
        3,
        "three events, each published once"
    );
    let ce_ids: Vec<String> = app
        .published()
        .iter()
        .map(|r| r.header("ce_id").unwrap().to_owned())
        .collect();
    assert_eq!(ce_ids.len(), 3);
    assert_eq!(
        Some(ce_ids[2].as_str()),
        first["results"][1]["event"]["id"].as_str()
    );
}

#[tokio::test]
async fn without_a_key_every_request_is_a_new_event_and_nothing_is_looked_for() {
    let app = lapsing(app_deciding(&[], |_| Outcome::Stored));
    for _ in 0..2 {
        let (status, _) = app.post("/api/events/payment", payment().to_string()).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let published = app.published();
    assert_ne!(published[0].header("ce_id"), published[1].header("ce_id"));
    assert!(
        published.iter().all(|r| r.timestamp.is_none()),
        "timed by the producer"
    );
    assert_eq!(app.sink.finds.load(std::sync::atomic::Ordering::SeqCst), 0);
}
