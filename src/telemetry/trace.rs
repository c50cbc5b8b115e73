//! W3C trace context, the part both edges share: a request's `traceparent`/`tracestate` (or,
//! without them, a new trace) becomes the parent of its `request` span; the records it
//! publishes carry that span's context in the same two headers; a consumer's `process` span
//! continues the trace a record carries. The HTTP side reads the request's headers
//! ([`crate::http`]), the Kafka side a record's ([`crate::kafka`]). The spans are exported over
//! OTLP when an endpoint is configured; the context travels either way, so downstream services
//! can continue it.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header names, in HTTP and in Kafka records alike.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Makes the context `carrier` holds (a new trace when it holds none, as when it has no valid
/// `traceparent`) the parent of `span`, and records the trace id on the span so that JSON log
/// lines carry it.
pub fn continue_trace(span: &Span, carrier: Option<&dyn Extractor>) {
    let parent = carrier
        .map(|carrier| TraceContextPropagator::new().extract(carrier))
        .unwrap_or_default();
    // Fails only when the span is disabled (no tracing layer), and then there is nothing to do.
    let _ = span.set_parent(parent);
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
}

/// The current span's context as record headers: `traceparent`, and `tracestate` when there is
/// one. Empty outside a traced span.
pub fn current_context_headers() -> Vec<(&'static str, String)> {
    let mut headers = Headers(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut headers);
    headers.0
}

struct Headers(Vec<(&'static str, String)>);

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes only these two; `&'static` names keep records allocation-light.
        match key {
            TRACEPARENT => self.0.push((TRACEPARENT, value)),
            TRACESTATE if !value.is_empty() => self.0.push((TRACESTATE, value)),
            _ => {}
        }
    }
}
