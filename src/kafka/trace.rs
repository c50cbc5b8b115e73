//! The Kafka side of trace context ([`crate::telemetry::trace`]): processing a record continues
//! the trace its `traceparent` header names.

use opentelemetry::propagation::Extractor;
use rdkafka::message::{Headers, Message};
use tracing::Span;

use super::headers::with_headers;
use crate::telemetry::trace::continue_trace;

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
    // A record without headers, or with a header name that is not UTF-8, starts a new trace.
    let continued = with_headers(record, |headers| {
        continue_trace(&span, Some(&RecordHeaders(headers)));
    });
    if !matches!(continued, Ok(Some(()))) {
        continue_trace(&span, None);
    }
    span
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
