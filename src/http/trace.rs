//! The HTTP side of trace context ([`crate::telemetry::trace`]): a request's span continues the
//! trace its `traceparent` header names.

use axum::http::HeaderMap;
use opentelemetry::propagation::Extractor;
use tracing::Span;

use crate::telemetry::trace::continue_trace;

/// The span of one HTTP request, continuing the trace its headers carry, if any.
pub fn request_span(headers: &HeaderMap, method: &str, path: &str, request_id: &str) -> Span {
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        http.request.method = method,
        url.path = path,
        request_id,
        trace_id = tracing::field::Empty,
    );
    continue_trace(&span, Some(&RequestHeaders(headers)));
    span
}

struct RequestHeaders<'a>(&'a HeaderMap);

impl Extractor for RequestHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}
