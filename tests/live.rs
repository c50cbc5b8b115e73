//! The live view over the in-process router: the event stream (server-sent events) and the
//! statistics, fed by reporting processed events into the app's live view as the consumers do.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Outcome, STREAM_SLOTS, TestRouter, app};
use events_service::domain::{EventAction, EventType, Timestamp};
use events_service::live::ProcessedEvent;
use http_body_util::BodyExt;
use serde_json::Value;
use serde_json::value::RawValue;
use tower::ServiceExt;

const DEADLINE: Duration = Duration::from_secs(5);

/// The event id of the event at `offset`.
fn id(offset: i64) -> uuid::Uuid {
    uuid::Uuid::from_u128(offset as u128)
}

fn processed(offset: i64, event_type: &str, action: &str, payload: &str) -> ProcessedEvent {
    let topic = format!("{event_type}-events");
    let known = EventType::from_name(event_type);
    ProcessedEvent {
        topic,
        partition: 0,
        offset,
        key: Some("1".into()),
        id: id(offset),
        event_type: known,
        timestamp: serde_json::from_value::<Timestamp>("2026-01-01T00:00:00Z".into()).unwrap(),
        action: known.and_then(|t| EventAction::parse(t, action)),
        payload: RawValue::from_string(payload.into()).unwrap(),
        amount: serde_json::from_str::<Value>(payload).unwrap()["amount"].as_f64(),
        truncated: false,
        payload_bytes: None,
    }
}

fn movie(offset: i64, action: &str) -> ProcessedEvent {
    processed(
        offset,
        "movie",
        action,
        &format!(r#"{{"movie_id":1,"title":"T","action":"{action}"}}"#),
    )
}

fn payment(offset: i64, status: &str, amount: f64) -> ProcessedEvent {
    processed(
        offset,
        "payment",
        status,
        &format!(r#"{{"payment_id":1,"user_id":1,"amount":{amount},"status":"{status}"}}"#),
    )
}

/// An open stream: the answer's body, read frame by frame.
struct Stream {
    body: Body,
    buffered: String,
}

impl Stream {
    async fn open(app: &TestRouter, query: &str, last_event_id: Option<&str>) -> Self {
        let (status, stream) = Self::try_open(app, query, last_event_id).await;
        assert_eq!(status, StatusCode::OK);
        stream.expect("a stream")
    }

    async fn try_open(
        app: &TestRouter,
        query: &str,
        last_event_id: Option<&str>,
    ) -> (StatusCode, Option<Self>) {
        let mut request = Request::get(format!("/api/events/stream{query}"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = app
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        if status != StatusCode::OK {
            return (status, None);
        }
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        let body = response.into_body();
        (
            status,
            Some(Self {
                body,
                buffered: String::new(),
            }),
        )
    }

    /// The next message's `id` and `data`, skipping keep-alive comments; `None` when the stream
    /// ended.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffered.find("\n\n") {
                let message: String = self.buffered.drain(..end + 2).collect();
                let field = |name: &str| {
                    message
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")))
                        .map(|v| v.trim_start().to_owned())
                };
                if let (Some(id), Some(data)) = (field("id"), field("data")) {
                    assert_eq!(field("event").as_deref(), Some("processed"));
                    return Some((id, serde_json::from_str(&data).unwrap()));
                }
                continue;
            }
            let frame = tokio::time::timeout(DEADLINE, self.body.frame())
                .await
                .expect("a message or the end within the deadline");
            match frame {
                Some(frame) => {
                    if let Ok(data) = frame.unwrap().into_data() {
                        self.buffered.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
                None => return None,
            }
        }
    }
}

/// Where the streamed `event` was read from, `<topic>-<partition>-<offset>`.
fn position(event: &Value) -> String {
    format!(
        "{}-{}-{}",
        event["topic"].as_str().unwrap(),
        event["partition"],
        event["offset"]
    )
}

#[tokio::test]
async fn the_stream_sends_each_processed_event_with_the_streams_position_in_each_partition_as_id() {
    let app = app(Outcome::Stored);
    let mut stream = Stream::open(&app, "", None).await;
    app.live.report(movie(7, "viewed"));
    app.live.report(payment(8, "completed", 5.0));
    app.live.report(movie(9, "rated"));

    let (stream_id, event) = stream.next().await.unwrap();
    assert_eq!(stream_id, "movie-events-0-7");
    assert_eq!(event["id"], id(7).to_string());
    assert_eq!(event["type"], "movie");
    assert_eq!(event["action"], "viewed");
    assert_eq!(event["payload"]["title"], "T");
    assert_eq!(
        stream.next().await.unwrap().0,
        "movie-events-0-7,payment-events-0-8"
    );
    assert_eq!(
        stream.next().await.unwrap().0,
        "movie-events-0-9,payment-events-0-8"
    );
}

/// `event` as read from `partition`.
fn on(partition: i32, mut event: ProcessedEvent) -> ProcessedEvent {
    event.partition = partition;
    event
}

#[tokio::test]
async fn a_stream_resumes_exactly_on_an_instance_that_read_the_partitions_interleaved_otherwise() {
    let (a, b) = (app(Outcome::Stored), app(Outcome::Stored));
    for (partition, offset) in [(0, 1), (1, 1), (0, 2), (1, 2), (0, 3)] {
        a.live.report(on(partition, movie(offset, "viewed")));
    }
    for (partition, offset) in [(1, 1), (1, 2), (0, 1), (0, 2), (0, 3)] {
        b.live.report(on(partition, movie(offset, "viewed")));
    }
    let mut on_a = Stream::open(&a, "", None).await;
    let mut seen = Vec::new();
    let mut last_id = String::new();
    for _ in 0..3 {
        let (id, event) = on_a.next().await.unwrap();
        seen.push(position(&event));
        last_id = id;
    }
    assert_eq!(
        seen,
        ["movie-events-0-1", "movie-events-1-1", "movie-events-0-2"]
    );

    let mut on_b = Stream::open(&b, "", Some(&last_id)).await;
    let mut rest = Vec::new();
    for _ in 0..2 {
        rest.push(position(&on_b.next().await.unwrap().1));
    }
    rest.sort();
    assert_eq!(
        rest,
        ["movie-events-0-3", "movie-events-1-2"],
        "each unseen event, once"
    );
    b.live.report(on(1, movie(3, "viewed")));
    assert_eq!(position(&on_b.next().await.unwrap().1), "movie-events-1-3");
}

#[tokio::test]
async fn the_stream_filters_by_type_and_action() {
    let app = app(Outcome::Stored);
    let mut stream = Stream::open(&app, "?type=movie,payment&action=rated,refunded", None).await;
    app.live.report(movie(1, "viewed"));
    app.live.report(payment(2, "completed", 1.0));
    app.live.report(movie(3, "rated"));
    app.live.report(payment(4, "refunded", 1.0));
    app.live
        .report(processed(5, "user", "rated", r#"{"user_id":1}"#));

    assert_eq!(stream.next().await.unwrap().1["id"], id(3).to_string());
    assert_eq!(stream.next().await.unwrap().1["id"], id(4).to_string());
    app.live.report(movie(6, "rated"));
    assert_eq!(
        stream.next().await.unwrap().1["id"],
        id(6).to_string(),
        "not the user event"
    );
}

#[tokio::test]
async fn an_unknown_type_in_the_filter_is_a_400() {
    let app = app(Outcome::Stored);
    let (status, stream) = Stream::try_open(&app, "?type=movie,film", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(stream.is_none());
}

#[tokio::test]
async fn last_event_id_resumes_after_that_event() {
    let app = app(Outcome::Stored);
    for offset in 1..=4 {
        app.live.report(movie(offset, "viewed"));
    }
    let mut resumed = Stream::open(&app, "", Some("movie-events-0-2")).await;
    assert_eq!(resumed.next().await.unwrap().0, "movie-events-0-3");
    assert_eq!(resumed.next().await.unwrap().0, "movie-events-0-4");
    app.live.report(movie(5, "viewed"));
    assert_eq!(resumed.next().await.unwrap().0, "movie-events-0-5");
}

#[tokio::test]
async fn beyond_the_slots_a_stream_is_refused_with_503_and_a_closed_one_frees_its_slot() {
    let app = app(Outcome::Stored);
    let mut open = Vec::new();
    for _ in 0..STREAM_SLOTS {
        open.push(Stream::open(&app, "", None).await);
    }
    let (status, _) = Stream::try_open(&app, "", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    drop(open.pop());
    let (status, _) = Stream::try_open(&app, "", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_falls_behind_is_dropped_and_reporting_never_waits_for_it() {
    let app = app(Outcome::Stored);
    let mut slow = Stream::open(&app, "", None).await;
    // The test app's streams may fall 16 events behind; this client reads nothing meanwhile.
    let reporting = std::time::Instant::now();
    for offset in 0..1000 {
        app.live.report(movie(offset, "viewed"));
    }
    assert!(reporting.elapsed() < Duration::from_secs(2));
    let mut received = 0;
    while slow.next().await.is_some() {
        received += 1;
    }
    assert!(received < 1000, "the stream ended after {received} events");
    // Its slot is free again.
    for _ in 0..STREAM_SLOTS {
        Stream::open(&app, "", None).await;
    }
}

#[tokio::test]
async fn stats_count_by_type_and_action_and_sum_payments_by_status() {
    let app = app(Outcome::Stored);
    app.live.report(movie(1, "viewed"));
    app.live.report(movie(2, "viewed"));
    app.live.report(payment(3, "completed", 10.25));
    app.live.report(payment(4, "completed", 4.75));
    app.live.report(payment(5, "failed", 1.0));

    let request = Request::get("/api/events/stats")
        .body(Body::empty())
        .unwrap();
    let (status, _, stats) = app.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["processed_total"], 5);
    assert_eq!(stats["by_type"]["movie"]["total"], 2);
    assert_eq!(stats["by_type"]["movie"]["by_action"]["viewed"], 2);
    assert_eq!(stats["by_type"]["user"]["total"], 0);
    assert_eq!(stats["payments"]["completed"]["count"], 2);
    assert_eq!(stats["payments"]["completed"]["amount"], 15.0);
    assert_eq!(stats["payments"]["failed"]["amount"], 1.0);
    let per_second = stats["per_second"].as_array().unwrap();
    assert_eq!(per_second.len(), 60);
    assert_eq!(
        per_second.iter().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        5
    );
}

#[tokio::test]
async fn a_last_event_id_no_longer_kept_replays_every_kept_event() {
    let app = app(Outcome::Stored);
    // The test router keeps the last 100: 50 to 149.
    for offset in 0..150 {
        app.live.report(movie(offset, "viewed"));
    }
    let mut resumed = Stream::open(&app, "", Some("movie-events-0-10")).await;
    assert_eq!(resumed.next().await.unwrap().0, "movie-events-0-50");
    let mut unknown = Stream::open(&app, "", Some("not-an-id")).await;
    assert_eq!(unknown.next().await.unwrap().0, "movie-events-0-50");
}

#[tokio::test]
async fn a_resumed_stream_is_filtered_too() {
    let app = app(Outcome::Stored);
    app.live.report(movie(1, "viewed"));
    app.live.report(payment(2, "completed", 1.0));
    app.live.report(movie(3, "rated"));
    app.live.report(payment(4, "refunded", 2.0));
    let mut resumed = Stream::open(&app, "?type=payment", Some("movie-events-0-1")).await;
    assert_eq!(
        position(&resumed.next().await.unwrap().1),
        "payment-events-0-2"
    );
    let (id, event) = resumed.next().await.unwrap();
    assert_eq!(position(&event), "payment-events-0-4");
    assert_eq!(
        id, "movie-events-0-3,payment-events-0-4",
        "past the movie left out too"
    );
    app.live.report(movie(5, "viewed"));
    app.live.report(payment(6, "pending", 3.0));
    assert_eq!(
        position(&resumed.next().await.unwrap().1),
        "payment-events-0-6"
    );
}

#[tokio::test]
async fn open_streams_end_when_the_service_shuts_down() {
    let app = app(Outcome::Stored);
    let mut stream = Stream::open(&app, "", None).await;
    app.state.live.closing.cancel();
    let ended = tokio::time::timeout(DEADLINE, stream.next()).await;
    assert!(matches!(ended, Ok(None)), "the stream ended: {ended:?}");
}
