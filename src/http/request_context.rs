//! Every request gets an id and a span. The id is the client's `x-request-id` when it sent a
//! usable one, else a new UUID, and is echoed in the answer; the span continues the trace of the
//! request's `traceparent` (see [`crate::trace`]), so that log lines, the records published and
//! the consumers' processing can all be tied back to the request.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The longest client-chosen id kept; a longer one is replaced, not refused.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The middleware around the whole router.
pub async fn request_context(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|id| usable(id.as_bytes()))
        .cloned()
        .unwrap_or_else(new_id);
    let span = crate::trace::request_span(
        request.headers(),
        request.method().as_str(),
        request.uri().path(),
        // Usable ids are visible ASCII, and so valid UTF-8.
        request_id.to_str().unwrap_or_default(),
    );
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    response
}

fn usable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.iter().all(u8::is_ascii_graphic)
}

fn new_id() -> HeaderValue {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("unknown"))
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
