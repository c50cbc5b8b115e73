//! Compressed request bodies, as ingestion clients send them: `Content-Encoding: gzip` or `zstd`
//! on the publishing routes. The body is decompressed as it is read (tower-http), so the body
//! limit applies to the decompressed bytes: a small compressed bomb is a 413, never a memory
//! spike. Any other encoding is refused here, before anything is read, with a 415 that names the
//! supported ones (and says so in `Accept-Encoding`, as RFC 7694 asks).

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The encodings a request body may have, as `Accept-Encoding` lists them.
pub const SUPPORTED: &str = "gzip, zstd";

/// Whether the body is encoded (and its declared length so says nothing of its real size).
pub fn is_encoded(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|value| !value.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// Refuses a body in an encoding the service cannot read (`x-gzip`, HTTP/1.0's name, is gzip).
pub async fn supported_only(mut request: Request, next: Next) -> Response {
    let Some(value) = request.headers().get(header::CONTENT_ENCODING) else {
        return next.run(request).await;
    };
    let encoding = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    if matches!(encoding.as_str(), "gzip" | "x-gzip" | "zstd" | "identity") {
        if encoding == "x-gzip" {
            let gzip = header::HeaderValue::from_static("gzip");
            request.headers_mut().insert(header::CONTENT_ENCODING, gzip);
        }
        return next.run(request).await;
    }
    let mut response =
        ApiError::UnsupportedEncoding(String::from_utf8_lossy(value.as_bytes()).into_owned())
            .into_response();
    response.headers_mut().insert(
        header::ACCEPT_ENCODING,
        header::HeaderValue::from_static(SUPPORTED),
    );
    response
}
