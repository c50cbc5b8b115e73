//! Every request gets an id and a span. The id is the client's `x-request-id` when it sent a
//! usable one, else a new UUID, and is echoed in the answer (tower-http's request-id layers);
//! the span continues the trace of the request's `traceparent` (see [`super::trace`]), so that
//! log lines, the records published and the consumers' processing can all be tied back to the
//! request.

use axum::extract::Request;
use axum::http::HeaderName;
use tracing::Span;

use super::trace::request_span;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The longest client-chosen id kept; a longer one is replaced, not refused.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Forgets a client's `x-request-id` that could break a log line or a header: the request gets
/// a new one instead.
pub fn drop_unusable_id(mut request: Request) -> Request {
    let unusable = request
        .headers()
        .get(&X_REQUEST_ID)
        .is_some_and(|id| !usable(id.as_bytes()));
    if unusable {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    request
}

/// The request's span, named after its id (set by then).
pub fn span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    request_span(
        request.headers(),
        request.method().as_str(),
        request.uri().path(),
        request_id,
    )
}

fn usable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_break_a_log_line_are_replaced() {
        assert!(usable(b"req-42_a.b:c"));
        for bad in [
            &b""[..],
            b"has space",
            b"tab\t",
            &[b'x'; 129],
            "é".as_bytes(),
        ] {
            assert!(!usable(bad), "{bad:?}");
        }
    }
}
