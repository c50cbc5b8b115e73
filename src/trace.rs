//! W3C trace context across the service: a request's `traceparent`/`tracestate` (or, without
//! them, a new trace) becomes the parent of its `request` span; the records it publishes carry
//! that span's context in the same two headers; a consumer's `process` span continues the trace
//! a record carries. The spans are exported over OTLP when an endpoint is configured (see
//! [`crate::telemetry`]); the context travels either way, so downstream services can continue it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use axum::http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{Headers, Message};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header names, in HTTP and in Kafka records alike.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

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
    continue_trace(
        &span,
        TraceContextPropagator::new().extract(&HttpHeaders(headers)),
    );
    span
}

/// The span of processing one record, continuing the trace the record carries, if any.
pub fn process_span(record: &impl Message) -> Span {
    let span = tracing::info_span!(
        "process",
        otel.kind = "consumer",
        messaging.destination.name = record.topic(),
        messaging.kafka.partition = record.partition(),
        messaging.kafka.offset = record.offset(),
        trace_id = tracing::field::Empty,
    );
    // rdkafka panics on a header name that is not UTF-8, which any producer can write: such a
    // record starts a new trace instead of stopping its consumer.
    let parent = record.headers().and_then(|headers| {
        catch_unwind(AssertUnwindSafe(|| {
            TraceContextPropagator::new().extract(&RecordHeaders(headers))
        }))
        .ok()
    });
    continue_trace(&span, parent.unwrap_or_default());
    span
}

/// The current span's context as record headers: `traceparent`, and `tracestate` when there is
/// one. Empty outside a traced span.
pub fn record_headers() -> Vec<(&'static str, String)> {
    let mut headers = RecordHeadersOut(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut headers);
    headers.0
}

/// Makes `parent` the parent of `span` (a new trace when it holds none, as when the carrier had
/// no valid `traceparent`), and records the trace id on the span so that JSON log lines carry it.
fn continue_trace(span: &Span, parent: Context) {
    // Fails only when the span is disabled (no tracing layer), and then there is nothing to do.
    let _ = span.set_parent(parent);
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
}

struct HttpHeaders<'a>(&'a HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

struct RecordHeaders<'a, H>(&'a H);

impl<H: Headers> Extractor for RecordHeaders<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        (0..self.0.count())
            .filter_map(|i| self.0.try_get(i))
            .find(|header| header.key == key)
            .and_then(|header| std::str::from_utf8(header.value?).ok())
    }

    fn keys(&self) -> Vec<&str> {
        (0..self.0.count())
            .filter_map(|i| self.0.try_get(i))
            .map(|header| header.key)
            .collect()
    }
}

struct RecordHeadersOut(Vec<(&'static str, String)>);

impl Injector for RecordHeadersOut {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes only these two; `&'static` names keep records allocation-light.
        match key {
            TRACEPARENT => self.0.push((TRACEPARENT, value)),
            TRACESTATE if !value.is_empty() => self.0.push((TRACESTATE, value)),
            _ => {}
        }
    }
}
