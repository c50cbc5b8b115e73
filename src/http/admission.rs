//! Admission by bytes: the publishing requests in progress may hold at most
//! `HTTP_MAX_INFLIGHT_BYTES` of request bodies between them. A request reserves its body's
//! declared size (the body limit when it declares none) before it is read, and keeps the
//! reservation until it is answered; one that finds no room is answered 503 with `Retry-After`
//! at once. With the concurrency limit this bounds what requests hold whatever their sizes:
//! many small requests meet the one, a few large ones the other.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// The bytes that requests in progress may still reserve.
pub struct InflightBytes {
    room: Semaphore,
    body_limit: usize,
}

impl InflightBytes {
    /// Room for `max_bytes` in all, for bodies of at most `body_limit` each.
    pub fn new(max_bytes: usize, body_limit: usize) -> Self {
        // A semaphore counts in u32 per acquisition and in usize >> 3 in all.
        let max_bytes = max_bytes.min(Semaphore::MAX_PERMITS);
        Self {
            room: Semaphore::new(max_bytes),
            body_limit,
        }
    }

    /// What a request reserves: its declared length, capped by the body limit (a longer body is
    /// refused anyway, at the limit), or the limit itself when it declares none or its body is
    /// compressed (it may grow to the limit as it is read).
    fn reservation(&self, request: &Request) -> u32 {
        if super::encoding::is_encoded(request) {
            return u32::try_from(self.body_limit).unwrap_or(u32::MAX);
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        let bytes = declared.map_or(self.body_limit, |n| n.min(self.body_limit));
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// The middleware on the publishing routes.
pub async fn admit(
    State(inflight): State<Arc<InflightBytes>>,
    request: Request,
    next: Next,
) -> Response {
    let bytes = inflight.reservation(&request);
    match inflight.room.try_acquire_many(bytes) {
        Ok(_reserved) => next.run(request).await,
        Err(_) => {
            tracing::debug!("Request shed: {bytes} bytes would exceed HTTP_MAX_INFLIGHT_BYTES");
            ApiError::Overloaded.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(length: Option<&str>) -> Request {
        let mut request = Request::new(Body::empty());
        if let Some(length) = length {
            request
                .headers_mut()
                .insert(header::CONTENT_LENGTH, length.parse().unwrap());
        }
        request
    }

    #[test]
    fn a_request_reserves_its_declared_length_up_to_the_limit() {
        let inflight = InflightBytes::new(10_000, 1_000);
        assert_eq!(inflight.reservation(&request(Some("12"))), 12);
        assert_eq!(inflight.reservation(&request(Some("5000"))), 1_000);
        assert_eq!(inflight.reservation(&request(None)), 1_000);
        assert_eq!(inflight.reservation(&request(Some("lots"))), 1_000);
    }
}
