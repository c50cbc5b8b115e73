//! The HTTP edge: routes, the JSON extractors, the error type, the OpenAPI document, and the
//! optional authentication and rate limiting in front of them.

mod admission;
pub mod asyncapi;
pub mod auth;
mod batch;
mod client;
mod dashboard;
mod earlier;
mod encoding;
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
pub mod routes;
mod server;
mod state;
mod trace;

use std::sync::Arc;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::util::option_layer;
use tower_http::ServiceBuilderExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::request_id::MakeRequestUuid;
use tower_http::trace::TraceLayer;

pub use admission::InflightBytes;
pub use auth::{Authenticator, Principal};
pub use batch::BatchResponse;
pub use client::ClientKey;
pub use error::{ApiError, ErrorBody};
pub use events::PublishResponse;
pub use idempotency::{Idempotency, MemoryStore, RedisStore, Store};
pub use live::{Live, StreamSlots};
pub use metrics::HttpMetrics;
pub use openapi::ApiDoc;
pub use rate_limit::RateLimit;
pub use server::{Closed, Deadlines, ServerLimits, listen, raise_open_file_limit, serve};
pub use state::{AppState, Dependencies, Limits};

use extract::JsonLimits;

/// The service's routes over `state`. A publishing request passes, outermost first: the metrics
/// (so that they count every answer, those of the layers below included), the request's id and
/// span, the panic catcher (500), the timeout (408), authentication (401), the client's rate
/// limit (429), admission by bytes and load shedding (503), the `Idempotency-Key` check (a
/// remembered answer, 409 or 422), the handler.
pub fn router(state: AppState) -> Router {
    let limits = state.limits;
    let http_metrics = state.http_metrics.clone();
    let openapi: Arc<str> = openapi::document(limits.batch_max_events).into();
    let request_timeout_ms = limits.request_timeout.as_millis();
    // Publishing routes shed load beyond their concurrency limit instead of queueing it, so that
    // memory stays bounded and clients hear at once that they should back off. Health, the
    // document, the metrics and the dashboard are never shed: an orchestrator must not restart a
    // service for being busy, nor its monitoring lose sight of it then.
    let publishing = Router::new()
        .route(routes::MOVIE, post(events::create_movie_event))
        .route(routes::USER, post(events::create_user_event))
        .route(routes::PAYMENT, post(events::create_payment_event))
        .route(routes::BATCH, post(batch::create_batch))
        // One stack, outermost first. Each `route_layer` call would box the route once more
        // (a clone and two allocations on every request, per layer).
        .route_layer(
            ServiceBuilder::new()
                // A client over its limit is refused before it takes one of the slots (or
                // bytes) that the limits share among all clients.
                .layer(option_layer(state.rate_limit.clone().map(|rate_limit| {
                    middleware::from_fn_with_state(rate_limit, rate_limit::enforce)
                })))
                .layer(middleware::from_fn_with_state(
                    state.inflight.clone(),
                    admission::admit,
                ))
                .layer(HandleErrorLayer::new(|_: BoxError| async {
                    ApiError::Overloaded
                }))
                .load_shed()
                // Global: axum applies a route layer to each route, and the limit is for all.
                .layer(GlobalConcurrencyLimitLayer::new(limits.concurrent_requests))
                .layer(middleware::from_fn(encoding::supported_only))
                // Everything within reads the body decompressed (the fingerprint of a retry
                // included), and the body limit counts the decompressed bytes.
                .layer(
                    RequestDecompressionLayer::new()
                        .gzip(true)
                        .zstd(true)
                        .no_deflate()
                        .no_br(),
                )
                .map_request(|request: axum::http::Request<_>| request.map(Body::new))
                .layer(middleware::from_fn_with_state(
                    state.idempotency.clone(),
                    idempotency::idempotency,
                )),
        );
    // The documents and the dashboard's files, compressed for clients that accept it (gzip or
    // zstd): they are the largest answers, and the same every time.
    let documents = Router::new()
        .route(routes::DASHBOARD, get(dashboard::index))
        .route(routes::DASHBOARD_SCRIPT, get(dashboard::script))
        .route(routes::DASHBOARD_STYLE, get(dashboard::style))
        .route(routes::DASHBOARD_ICON, get(dashboard::icon))
        .route(routes::ASYNCAPI, get(asyncapi::serve))
        .route(
            routes::OPENAPI,
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    openapi.to_string(),
                )
            }),
        )
        .route_layer(
            CompressionLayer::new()
                .gzip(true)
                .zstd(true)
                .no_br()
                .no_deflate(),
        );
    Router::new()
        .route(routes::STREAM, get(live::stream_events))
        .route(routes::STATS, get(live::stats))
        .route(routes::HEALTH, get(health::health))
        .route(routes::LIVENESS, get(health::live))
        .route(routes::METRICS, get(metrics::scrape))
        .merge(documents)
        .merge(publishing)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // On the whole router, fallbacks included, as one stack (outermost first): each
        // `layer` call would box every route once more.
        .layer(
            ServiceBuilder::new()
                // Outermost. Like every layer of the router, it runs after routing, and so
                // knows the route the request matched.
                .layer(metrics::TrackLayer(http_metrics.clone()))
                .map_response(IntoResponse::into_response)
                .layer(Extension(JsonLimits {
                    body_bytes: limits.body_bytes,
                    batch_items: limits.batch_max_events,
                }))
                .layer(DefaultBodyLimit::max(limits.body_bytes))
                // Outside the timeout, so that a 408 carries the request id and ends the span
                // too.
                .map_request(request_context::drop_unusable_id)
                .set_x_request_id(MakeRequestUuid)
                .propagate_x_request_id()
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_context::span)
                        .on_request(())
                        .on_response(())
                        .on_body_chunk(())
                        .on_eos(())
                        .on_failure(()),
                )
                // A handler that panics is answered 500 like any failure (the connection and
                // the process go on), and counted.
                .layer(CatchPanicLayer::custom(move |panic| {
                    error::panicked(panic, &http_metrics)
                }))
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
                .timeout(limits.request_timeout)
                // An unauthenticated client learns nothing about the routes but the open ones.
                .layer(option_layer(state.auth.clone().map(|auth| {
                    middleware::from_fn_with_state(auth, auth::require_credentials)
                }))),
        )
        .with_state(state)
}
