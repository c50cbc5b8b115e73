//! What the in-process HTTP tests share: an in-memory publisher standing in for Kafka, the
//! router over it, and the seed's example events.

// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use events_service::Config;
use events_service::config::DEFAULT_CLOUDEVENTS_SOURCE;
use events_service::consumer::HeldPartitions;
use events_service::http::{
    AppState, Authenticator, IdempotencyStore, InflightBytes, Limits, Live, RateLimit, StreamSlots,
    router,
};
use events_service::kafka::topics::Topics;
use events_service::kafka::{Delivery, EventPublisher, KafkaStatus, OutgoingRecord, PublishError};
use events_service::live::LiveView;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// What the fake publisher answers.
#[derive(Clone, Copy)]
pub enum Outcome {
    Stored,
    QueueFull,
    TimedOut,
    Hang,
    /// The publisher panics, as a bug in a handler would.
    Panic,
}

pub struct FakePublisher {
    outcome: Outcome,
    published: Mutex<Vec<OutgoingRecord>>,
    /// Calls of `publish` so far, stored or not.
    pub calls: AtomicUsize,
}

#[async_trait]
impl EventPublisher for FakePublisher {
    async fn publish(&self, record: OutgoingRecord) -> Result<Delivery, PublishError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.outcome {
            Outcome::Stored => {
                let mut published = self.published.lock().unwrap();
                published.push(record);
                Ok(Delivery {
                    partition: 2,
                    offset: published.len() as i64 + 40,
                })
            }
            Outcome::QueueFull => Err(PublishError::QueueFull),
            Outcome::TimedOut => Err(PublishError::TimedOut(5000)),
            Outcome::Hang => std::future::pending().await,
            Outcome::Panic => panic!("the fake publisher panics"),
        }
    }
}

pub struct TestApp {
    pub router: axum::Router,
    pub publisher: Arc<FakePublisher>,
    pub status: watch::Sender<KafkaStatus>,
    /// What the stream and statistics routes read; tests report processed events into it.
    pub live: Arc<LiveView>,
}

/// Event streams a test app serves at once.
pub const STREAM_SLOTS: usize = 2;

pub fn app_with(outcome: Outcome, limits: Limits) -> TestApp {
    secured_app_with(outcome, limits, None, None)
}

/// The app as the service would build it from the configuration `vars` (authentication, rate
/// limit), over an in-memory publisher.
pub fn app_from_vars(vars: &[(&str, &str)], outcome: Outcome, limits: Limits) -> TestApp {
    let config = Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .expect("test configuration is valid");
    let auth = Authenticator::from_config(&config.auth)
        .expect("the keys load")
        .map(Arc::new);
    let rate_limit = config.rate_limit.map(|c| Arc::new(RateLimit::new(c)));
    secured_app_with(outcome, limits, auth, rate_limit)
}

/// An app behind the given authentication and rate limit.
pub fn secured_app_with(
    outcome: Outcome,
    limits: Limits,
    auth: Option<Arc<Authenticator>>,
    rate_limit: Option<Arc<RateLimit>>,
) -> TestApp {
    let publisher = Arc::new(FakePublisher {
        outcome,
        published: Mutex::new(Vec::new()),
        calls: AtomicUsize::new(0),
    });
    let topics = Arc::new(Topics::new(""));
    let live = Arc::new(LiveView::new(100, 16));
    let (status, kafka_status) = watch::channel(KafkaStatus::unknown(&topics));
    let state = AppState {
        publisher: publisher.clone(),
        topics,
        kafka_status,
        limits,
        auth,
        rate_limit,
        idempotency: Arc::new(IdempotencyStore::new(Duration::from_secs(60), 1024 * 1024)),
        cloudevents_source: DEFAULT_CLOUDEVENTS_SOURCE,
        live: Live {
            view: live.clone(),
            stream_slots: Arc::new(StreamSlots::new(STREAM_SLOTS, STREAM_SLOTS + 1)),
            closing: CancellationToken::new(),
        },
        inflight: Arc::new(InflightBytes::new(64 * 1024 * 1024, limits.body_bytes)),
        held: HeldPartitions::default(),
    };
    TestApp {
        router: router(state),
        publisher,
        status,
        live,
    }
}

pub const LIMITS: Limits = Limits {
    body_bytes: 1024 * 1024,
    request_timeout: Duration::from_secs(5),
    concurrent_requests: 64,
    batch_max_events: 10,
    dlq_max_hold: Duration::from_secs(60),
};

pub fn app(outcome: Outcome) -> TestApp {
    app_with(outcome, LIMITS)
}

impl TestApp {
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status} body is not JSON ({e}): {bytes:?}"));
        (status, headers, body)
    }

    pub async fn post(&self, path: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap();
        let (status, _, body) = self.send(request).await;
        (status, body)
    }

    pub fn published(&self) -> Vec<OutgoingRecord> {
        self.publisher.published.lock().unwrap().clone()
    }
}

pub fn movie() -> Value {
    json!({
        "movie_id": 1, "title": "The Matrix", "action": "viewed", "user_id": 123, "rating": 9.5,
        "genres": ["Sci-Fi", "Action"],
        "description": "A computer hacker learns about the true nature of reality"
    })
}

pub fn user() -> Value {
    json!({
        "user_id": 123, "username": "john_doe", "email": "john@example.com",
        "action": "registered", "timestamp": "2025-01-01T00:00:00Z"
    })
}

pub fn payment() -> Value {
    json!({
        "payment_id": 456, "user_id": 123, "amount": 99.99, "status": "completed",
        "timestamp": "2025-01-01T00:00:00Z", "method_type": "credit_card"
    })
}
