//! `GET /metrics`, and what the HTTP edge records: every answer of the router (route, method,
//! status, duration), the connections the server closed, the handlers that panicked.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::AppState;
use super::routes;
use super::server::{self, Closed};
use crate::support::{lock_read, lock_write};
use crate::telemetry::Metrics;
use crate::telemetry::metrics::{
    HTTP_CONNECTIONS, HTTP_CONNECTIONS_CLOSED, HTTP_PANICS, HTTP_REQUEST_DURATION, HTTP_REQUESTS,
};

/// The content type of Prometheus' text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The route label of a request that matched no route: its path is the client's choice.
const UNMATCHED_ROUTE: &str = "unmatched";

#[utoipa::path(
    get, path = "/metrics", tag = "metrics",
    responses((
        status = 200, description = "The service's metrics in Prometheus' text format",
        body = String, content_type = "text/plain"
    ))
)]
pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    state.publisher.sample_queue();
    state
        .http_metrics
        .open_connections(server::open_connections());
    (
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        state.metrics.render(),
    )
}

/// The HTTP edge's instruments. The series of a route, method and status are registered the
/// first time they are met and their handles kept, since registering costs several times what
/// recording does (about 3 µs a request, perf): the labels come from bounded sets (the router's
/// patterns, the standard methods, the statuses the service answers), so the map stays small.
pub struct HttpMetrics {
    metrics: Metrics,
    requests: RwLock<HashMap<(&'static str, &'static str, u16), Counter>>,
    durations: RwLock<HashMap<(&'static str, &'static str), Histogram>>,
    closed: [(Closed, Counter); 4],
    panics: Counter,
}

impl HttpMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let closed = [
            Closed::HeaderTimeout,
            Closed::IdleTimeout,
            Closed::WriteTimeout,
            Closed::Limit,
        ]
        .map(|reason| {
            let counter = metrics.counter(HTTP_CONNECTIONS_CLOSED, &[("reason", reason.as_str())]);
            (reason, counter)
        });
        Self {
            metrics: metrics.clone(),
            requests: RwLock::default(),
            durations: RwLock::default(),
            closed,
            panics: metrics.counter(HTTP_PANICS, &[] as &[(&str, &str)]),
        }
    }

    /// An answered HTTP request. `route` is the pattern of the route it matched, if any.
    pub fn request(
        &self,
        route: Option<&str>,
        method: &Method,
        status: StatusCode,
        took: Duration,
    ) {
        let route = route
            .and_then(|matched| routes::ALL.iter().copied().find(|r| *r == matched))
            .unwrap_or(UNMATCHED_ROUTE);
        let method = method_label(method);
        let status = status.as_u16();
        cached(&self.requests, (route, method, status), || {
            let labels = [
                ("route", route.to_owned()),
                ("method", method.to_owned()),
                ("status", status.to_string()),
            ];
            self.metrics.counter(HTTP_REQUESTS, &labels)
        })
        .increment(1);
        cached(&self.durations, (route, method), || {
            let labels = [("route", route), ("method", method)];
            self.metrics.histogram(HTTP_REQUEST_DURATION, &labels)
        })
        .record(took);
    }

    /// A connection the server closed, and why.
    pub fn closed(&self, reason: Closed) {
        if let Some((_, counter)) = self.closed.iter().find(|(r, _)| *r == reason) {
            counter.increment(1);
        }
    }

    /// A handler that panicked (answered 500).
    pub fn panicked(&self) {
        self.panics.increment(1);
    }

    /// Connections open now, sampled when the metrics are scraped.
    pub fn open_connections(&self, open: i64) {
        self.metrics
            .gauge(HTTP_CONNECTIONS, &[] as &[(&str, &str)])
            .set(open as f64);
    }
}

/// The handle under `key`, registered with `register` the first time.
fn cached<K: Eq + std::hash::Hash + Copy, H: Clone>(
    handles: &RwLock<HashMap<K, H>>,
    key: K,
    register: impl FnOnce() -> H,
) -> H {
    if let Some(handle) = lock_read(handles).get(&key) {
        return handle.clone();
    }
    lock_write(handles)
        .entry(key)
        .or_insert_with(register)
        .clone()
}

fn method_label(method: &Method) -> &'static str {
    // Clients may send any token as a method; only the standard ones become label values.
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Records each request's route, method, status and duration. Axum runs a router's layers after
/// routing, so the route is the pattern matched (`/api/events/movie`), never the path the client
/// sent. A tower layer rather than `middleware::from_fn`, which clones and boxes the services
/// beneath it for every request: this runs on every request, and costs next to nothing.
#[derive(Clone)]
pub struct TrackLayer(pub Arc<HttpMetrics>);

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    metrics: Arc<HttpMetrics>,
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
            metrics: self.metrics.clone(),
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
        metrics: Arc<HttpMetrics>,
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
            this.metrics.request(
                this.matched.as_ref().map(MatchedPath::as_str),
                this.method,
                response.status(),
                this.started.elapsed(),
            );
        }
        Poll::Ready(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_methods_and_paths_are_not_label_values() {
        assert_eq!(method_label(&Method::POST), "POST");
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
        let metrics = Metrics::new();
        let http = HttpMetrics::new(&metrics);
        http.request(
            Some("/no/such/route"),
            &made_up,
            StatusCode::NOT_FOUND,
            Duration::ZERO,
        );
        http.request(
            Some(routes::MOVIE),
            &Method::POST,
            StatusCode::CREATED,
            Duration::ZERO,
        );
        let text = metrics.render();
        assert!(text.contains(r#"events_service_http_requests_total{route="unmatched",method="other",status="404"} 1"#), "{text}");
        assert!(text.contains(r#"events_service_http_requests_total{route="/api/events/movie",method="POST",status="201"} 1"#), "{text}");
    }
}
