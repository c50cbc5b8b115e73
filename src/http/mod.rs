//! The HTTP edge: routes, the JSON extractors, the error type, the OpenAPI document, and the
//! optional authentication and rate limiting in front of them.

mod admission;
pub mod auth;
mod client;
mod dashboard;
mod error;
mod events;
mod extract;
mod health;
pub mod idempotency;
mod live;
mod metrics;
mod openapi;
pub mod rate_limit;
mod request_context;
mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{BoxError, Router};
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::util::option_layer;
use tower_http::catch_panic::CatchPanicLayer;

pub use admission::InflightBytes;
pub use auth::{Authenticator, Principal};
pub use error::{ApiError, ErrorBody};
pub use events::{BatchResponse, PublishResponse};
pub use idempotency::IdempotencyStore;
pub use live::{Live, StreamSlots};
pub use openapi::ApiDoc;
pub use rate_limit::RateLimit;
pub use server::{Closed, Deadlines, ServerLimits, listen, raise_open_file_limit, serve};

use crate::consumer::HeldPartitions;
use crate::kafka::topics::Topics;
use crate::kafka::{EventPublisher, KafkaStatus};
use extract::JsonLimits;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub publisher: Arc<dyn EventPublisher>,
    pub topics: Arc<Topics>,
    pub kafka_status: watch::Receiver<KafkaStatus>,
    pub limits: Limits,
    /// Checks credentials on every route but the open ones; `None` when authentication is off.
    pub auth: Option<Arc<Authenticator>>,
    /// Limits each client's publishing requests; `None` when rate limiting is off.
    pub rate_limit: Option<Arc<RateLimit>>,
    /// The remembered answers to requests with an `Idempotency-Key`.
    pub idempotency: Arc<IdempotencyStore>,
    /// The `ce_source` of every record (`CLOUDEVENTS_SOURCE`); `'static` so that records borrow
    /// it rather than copy it.
    pub cloudevents_source: &'static str,
    /// The live view: the event stream and the statistics.
    pub live: Live,
    /// The request bytes the publishing requests in progress may still take.
    pub inflight: Arc<InflightBytes>,
    /// The partitions the consumers hold, for health.
    pub held: HeldPartitions,
}

/// The limits the router enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_bytes: usize,
    pub request_timeout: Duration,
    /// Event requests served at once; more are answered 503 at once.
    pub concurrent_requests: usize,
    pub batch_max_events: usize,
    /// How long a consumer may hold a partition before health turns 503.
    pub dlq_max_hold: Duration,
}

/// The service's routes over `state`. A publishing request passes, outermost first: the metrics
/// (so that they count every answer, those of the layers below included), the request's id and
/// span, the panic catcher (500), the timeout (408), authentication (401), the client's rate
/// limit (429), admission by bytes and load shedding (503), the `Idempotency-Key` check (a
/// remembered answer, 409 or 422), the handler.
pub fn router(state: AppState) -> Router {
    let limits = state.limits;
    // Once per process; until it is installed, metrics go nowhere.
    crate::metrics::install();
    let openapi: Arc<str> = openapi::document(limits.batch_max_events).into();
    let request_timeout_ms = limits.request_timeout.as_millis();
    // Publishing routes shed load beyond their concurrency limit instead of queueing it, so that
    // memory stays bounded and clients hear at once that they should back off. Health, the
    // document, the metrics and the dashboard are never shed: an orchestrator must not restart a
    // service for being busy, nor its monitoring lose sight of it then.
    let publishing = Router::new()
        .route("/api/events/movie", post(events::create_movie_event))
        .route("/api/events/user", post(events::create_user_event))
        .route("/api/events/payment", post(events::create_payment_event))
        .route("/api/events/batch", post(events::create_batch))
        .route_layer(middleware::from_fn_with_state(
            state.idempotency.clone(),
            idempotency::idempotency,
        ))
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: BoxError| async {
                    ApiError::Overloaded
                }))
                .load_shed()
                // Global: axum applies a route layer to each route, and the limit is for all.
                .layer(GlobalConcurrencyLimitLayer::new(limits.concurrent_requests)),
        )
        .route_layer(middleware::from_fn_with_state(
            state.inflight.clone(),
            admission::admit,
        ))
        // A later route layer wraps the earlier: a client over its limit is refused before it
        // takes one of the slots (or bytes) that the limits share among all clients.
        .route_layer(option_layer(state.rate_limit.clone().map(|rate_limit| {
            middleware::from_fn_with_state(rate_limit, rate_limit::enforce)
        })));
    Router::new()
        .route("/api/events/stream", get(live::stream_events))
        .route("/api/events/stats", get(live::stats))
        .route("/", get(dashboard::index))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/style.css", get(dashboard::style))
        .route("/dashboard/favicon.svg", get(dashboard::icon))
        .route("/api/events/health", get(health::health))
        .route("/api/events/health/live", get(health::live))
        .route(
            "/api/events/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    openapi.to_string(),
                )
            }),
        )
        .route("/metrics", get(metrics::scrape))
        .merge(publishing)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // On the whole router, fallbacks included, so that an unauthenticated client learns
        // nothing about the routes but the open ones.
        .layer(option_layer(state.auth.clone().map(|auth| {
            middleware::from_fn_with_state(auth, auth::require_credentials)
        })))
        .layer(
            ServiceBuilder::new()
                // A request that outlives the timeout (a slow client, say) gets a JSON 408.
                .layer(HandleErrorLayer::new(move |error: BoxError| async move {
                    if error.is::<tower::timeout::error::Elapsed>() {
                        ApiError::RequestTimeout(request_timeout_ms)
                    } else {
                        tracing::error!("unhandled error in the HTTP stack: {error}");
                        ApiError::Internal
                    }
                    .into_response()
                }))
                .timeout(limits.request_timeout),
        )
        // A handler that panics is answered 500 like any failure (the connection and the
        // process go on), and counted.
        .layer(CatchPanicLayer::custom(error::panicked))
        // Outside the timeout, so that a 408 carries the request id and ends the span too.
        .layer(middleware::from_fn(request_context::request_context))
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(Extension(JsonLimits {
            body_bytes: limits.body_bytes,
            batch_items: limits.batch_max_events,
        }))
        // Outermost. Like every layer of the router, it runs after routing, and so knows the
        // route the request matched.
        .layer(metrics::TrackLayer)
        .with_state(state)
}
