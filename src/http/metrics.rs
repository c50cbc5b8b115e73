//! `GET /metrics`, and the layer that counts and times every answer of the router.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::AppState;
use crate::metrics;

/// The content type of Prometheus' text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[utoipa::path(
    get, path = "/metrics", tag = "metrics",
    responses((
        status = 200, description = "The service's metrics in Prometheus' text format",
        body = String, content_type = "text/plain"
    ))
)]
pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(queued) = state.publisher.queued() {
        metrics::producer_queue(queued);
    }
    metrics::open_connections(super::server::open_connections());
    (
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        metrics::install().render(),
    )
}

/// Records each request's route, method, status and duration. Axum runs a router's layers after
/// routing, so the route is the pattern matched (`/api/events/movie`), never the path the client
/// sent. A tower layer rather than `middleware::from_fn`, which clones and boxes the services
/// beneath it for every request: this runs on every request, and costs next to nothing.
#[derive(Debug, Clone, Copy)]
pub struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Track<S> {
    inner: S,
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let matched = request.extensions().get::<MatchedPath>().cloned();
        Tracked {
            method: request.method().clone(),
            matched,
            started: Instant::now(),
            answer: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The answer of a tracked request, recorded when it is ready.
    pub struct Tracked<F> {
        #[pin]
        answer: F,
        matched: Option<MatchedPath>,
        method: Method,
        started: Instant,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.answer.poll(cx));
        if let Ok(response) = &answer {
            metrics::http_request(
                this.matched.as_ref().map(MatchedPath::as_str),
                this.method,
                response.status(),
                this.started.elapsed(),
            );
        }
        Poll::Ready(answer)
    }
}
