//! What the in-process HTTP tests share: an in-memory sink standing in for Kafka (an outcome per
//! record), the router built over it exactly as the service builds its own
//! ([`AppState::new`] from a configuration), and the seed's example events.

// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

pub mod contract;
pub mod credentials;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use events_service::Config;
use events_service::consumer::HeldPartitions;
use events_service::http::{AppState, Dependencies, router};
use events_service::kafka::topics::Topics;
use events_service::kafka::{
    Delivery, Found, KafkaStatus, OutgoingRecord, PendingDelivery, PendingLookup, ProduceMetrics,
    PublishError, Publisher, QueueLevel, Rejection, Sink,
};
use events_service::live::LiveView;
use events_service::telemetry::Metrics;
use futures::FutureExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;

/// What the fake sink does with a record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    Stored,
    QueueFull,
    TimedOut,
    /// Kafka failed (worth retrying).
    Failed,
    /// Kafka refused the record for good (too large).
    Rejected,
    /// Kafka never answers.
    Hang,
    /// The sink panics, as a bug would.
    Panic,
}

/// Decides each record's outcome from how many records came before it.
type Decide = Box<dyn Fn(usize) -> Outcome + Send + Sync>;

pub struct FakeSink {
    decide: Decide,
    published: Mutex<Vec<OutgoingRecord>>,
    /// Records enqueued so far, whatever became of them.
    pub calls: AtomicUsize,
    /// How many records the queue holds; `queued` are in it already.
    pub capacity: usize,
    pub queued: AtomicUsize,
    /// Searches for earlier attempts' records so far.
    pub finds: AtomicUsize,
}

impl Sink for FakeSink {
    fn enqueue(&self, record: &OutgoingRecord) -> Result<PendingDelivery, PublishError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let outcome = match (self.decide)(n) {
            Outcome::Stored => {
                let mut published = self.published.lock().unwrap();
                published.push(record.clone());
                Ok(Delivery {
                    partition: 2,
                    offset: published.len() as i64 + 40,
                })
            }
            Outcome::QueueFull => return Err(PublishError::QueueFull),
            Outcome::TimedOut => Err(PublishError::TimedOut(5000)),
            Outcome::Failed => Err(PublishError::Failed(
                "Broker: Not leader for partition".into(),
            )),
            Outcome::Rejected => Err(PublishError::Rejected {
                reason: Rejection::TooLarge,
                message: "Broker: Message size too large".into(),
            }),
            Outcome::Hang => return Ok(std::future::pending().boxed()),
            Outcome::Panic => panic!("the fake sink panics"),
        };
        Ok(std::future::ready(outcome).boxed())
    }

    fn queue(&self) -> QueueLevel {
        QueueLevel {
            queued: self.queued.load(Ordering::SeqCst),
            capacity: self.capacity,
        }
    }

    /// The records stored so far with one of `ids`, timed by one of `attempts`.
    fn find(&self, topic: Arc<str>, ids: Vec<Uuid>, attempts: Vec<i64>) -> PendingLookup {
        self.finds.fetch_add(1, Ordering::SeqCst);
        let published = self.published.lock().unwrap();
        let found = published
            .iter()
            .enumerate()
            .filter(|(_, record)| record.topic == topic)
            .filter(|(_, record)| record.timestamp.is_some_and(|t| attempts.contains(&t)))
            .filter_map(|(n, record)| {
                let id: Uuid = record.header("ce_id")?.parse().ok()?;
                ids.contains(&id).then(|| {
                    let delivery = Delivery {
                        partition: 2,
                        offset: n as i64 + 41,
                    };
                    (
                        id,
                        Found {
                            delivery,
                            value: record.value.clone(),
                        },
                    )
                })
            })
            .collect();
        std::future::ready(Ok(found)).boxed()
    }
}

/// The router of a service, in-process, over a fake sink.
pub struct TestRouter {
    pub router: axum::Router,
    pub sink: Arc<FakeSink>,
    pub status: watch::Sender<KafkaStatus>,
    /// What the stream and statistics routes read; tests report processed events into it.
    pub live: Arc<LiveView>,
    pub metrics: Metrics,
    pub state: AppState,
}

/// What every test router is configured with, before a test's own variables.
pub const TEST_VARS: &[(&str, &str)] = &[
    ("HTTP_MAX_CONCURRENT_REQUESTS", "64"),
    ("BATCH_MAX_EVENTS", "10"),
    ("STREAM_MAX_CLIENTS", "2"),
    ("STREAM_MAX_PER_CLIENT", "3"),
    ("IDEMPOTENCY_WINDOW_SECS", "60"),
    ("IDEMPOTENCY_MAX_BYTES", "1048576"),
];

/// Publishing requests a test router serves at once (`HTTP_MAX_CONCURRENT_REQUESTS`).
pub const CONCURRENT_REQUESTS: usize = 64;
/// Event streams a test router serves at once (`STREAM_MAX_CLIENTS`).
pub const STREAM_SLOTS: usize = 2;

/// The router as the service would build it from `vars` (over [`TEST_VARS`]), with every record
/// meeting `outcome`.
pub fn app_from_vars(vars: &[(&str, &str)], outcome: Outcome) -> TestRouter {
    app_deciding(vars, move |_| outcome)
}

/// The router as the service would build it from `vars` (over [`TEST_VARS`]); record `n` (from
/// 0) meets `decide(n)`.
pub fn app_deciding(
    vars: &[(&str, &str)],
    decide: impl Fn(usize) -> Outcome + Send + Sync + 'static,
) -> TestRouter {
    let config = Config::from_vars(
        TEST_VARS
            .iter()
            .chain(vars)
            .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .expect("the test configuration is valid");
    let sink = Arc::new(FakeSink {
        decide: Box::new(decide),
        published: Mutex::new(Vec::new()),
        calls: AtomicUsize::new(0),
        capacity: config.kafka.max_queued_events,
        queued: AtomicUsize::new(0),
        finds: AtomicUsize::new(0),
    });
    let metrics = Metrics::new();
    let topics = Topics::new(&config.kafka.topic_prefix);
    let publisher = Publisher::new(
        sink.clone(),
        ProduceMetrics::new(&metrics, &topics.provisioned()),
    );
    let live = Arc::new(LiveView::new(100, 16));
    let (status, kafka_status) = watch::channel(KafkaStatus::unknown(&topics));
    let state = AppState::new(
        &config,
        Dependencies {
            publisher,
            kafka_status,
            live: live.clone(),
            held: HeldPartitions::default(),
            metrics: metrics.clone(),
            redis: None,
            schema_registry: None,
            closing: CancellationToken::new(),
        },
    )
    .expect("the test state builds");
    TestRouter {
        router: router(state.clone()),
        sink,
        status,
        live,
        metrics,
        state,
    }
}

pub fn app(outcome: Outcome) -> TestRouter {
    app_from_vars(&[], outcome)
}

impl TestRouter {
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let (status, headers, bytes) = self.send_raw(request).await;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status} body is not JSON ({e}): {bytes:?}"));
        (status, headers, body)
    }

    /// The answer's status, headers and body bytes, as sent.
    pub async fn send_raw(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, axum::body::Bytes) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, bytes)
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
        self.sink.published.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.sink.calls.load(Ordering::SeqCst)
    }

    /// The value of `series` (name and labels as rendered) in this router's own metrics.
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
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
