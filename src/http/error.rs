//! The one error type of the HTTP edge. Clients get a stable JSON body,
//! `{"error": "<message>"}` plus `fields` for validation errors; details for operators go to
//! the log.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::idempotency::MaybePublished;
use crate::domain::{BatchErrors, FieldError, ItemErrors, ValidationErrors};
use crate::kafka::PublishError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid event: {0}")]
    Invalid(ValidationErrors),
    #[error("invalid events in the batch: {0}")]
    InvalidBatch(BatchErrors),
    #[error("the batch is empty")]
    EmptyBatch,
    #[error("a batch may hold at most {0} events")]
    BatchTooLarge(usize),
    #[error("the service is at capacity; retry later")]
    Overloaded,
    /// No credentials, or credentials that were refused; the message says which, briefly.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The client has used up its rate limit for now; it may retry after this many seconds.
    #[error("too many requests; retry after {0} s")]
    TooManyRequests(u64),
    /// A repeat of a request whose `Idempotency-Key` is still being served.
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    IdempotencyKeyInProgress,
    /// The request has an `Idempotency-Key` and the store that remembers keys (Redis) cannot be
    /// reached: serving it could publish a duplicate.
    #[error(
        "the idempotency store (Redis) is unavailable: a request with an Idempotency-Key is not served without it, so that it cannot be published twice; retry later"
    )]
    IdempotencyUnavailable,
    /// The `Idempotency-Key` was used before for a different request.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// Every stream slot is taken.
    #[error("too many event streams are open; retry later")]
    TooManyStreams,
    /// The client has as many streams open as one client may.
    #[error("this client has {0} event streams open already, as many as one client may")]
    TooManyStreamsFromClient(usize),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// A `Content-Encoding` the service cannot decode.
    #[error("Content-Encoding {0:?} is not supported: send the body as it is, or gzip or zstd")]
    UnsupportedEncoding(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("the request took longer than {0} ms")]
    RequestTimeout(u128),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("internal error")]
    Internal,
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::Invalid(errors)
    }
}

impl From<BatchErrors> for ApiError {
    fn from(errors: BatchErrors) -> Self {
        ApiError::InvalidBatch(errors)
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
    /// For an invalid event: each broken field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
    /// For an invalid batch: each broken item, by index, with its broken fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemErrors>>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_)
            | ApiError::Invalid(_)
            | ApiError::InvalidBatch(_)
            | ApiError::EmptyBatch => StatusCode::BAD_REQUEST,
            ApiError::BatchTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType | ApiError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::TooManyRequests(_) | ApiError::TooManyStreamsFromClient(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::IdempotencyKeyInProgress => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Publish(PublishError::QueueFull)
            | ApiError::IdempotencyUnavailable
            | ApiError::Overloaded
            | ApiError::TooManyStreams => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Publish(_) | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // A 503 is load being shed as designed: one line per shed request would add work to a
        // service that is already saturated, so it is logged only at debug level.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::debug!("Request shed: {self}");
        } else if status.is_server_error() {
            tracing::error!("Request failed: {self}");
        }
        let mut body = ErrorBody {
            error: self.to_string(),
            fields: None,
            items: None,
        };
        let mut headers = HeaderMap::new();
        // An event handed to Kafka and not confirmed may be stored: a retry under the same
        // Idempotency-Key looks for it first.
        let maybe_published =
            matches!(&self, ApiError::Publish(error) if !matches!(error, PublishError::QueueFull));
        match self {
            ApiError::Invalid(errors) => body.fields = Some(errors.0),
            ApiError::InvalidBatch(errors) => body.items = Some(errors.0),
            // RFC 9110 asks a 401 to name the scheme it wants.
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            ApiError::IdempotencyKeyInProgress | ApiError::TooManyStreamsFromClient(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        let mut response = with_retry_after(status, (status, headers, Json(body)).into_response());
        if maybe_published {
            response.extensions_mut().insert(MaybePublished);
        }
        response
    }
}

/// How long a client should wait before retrying a 503, in seconds.
const RETRY_AFTER_SECONDS: &str = "1";

/// Adds `Retry-After` to a 503: the client may retry once the load has passed.
pub fn with_retry_after(status: StatusCode, mut response: Response) -> Response {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

/// The answer to a request whose handler panicked: 500, as for any failure of ours.
pub fn panicked(
    panic: Box<dyn std::any::Any + Send + 'static>,
    metrics: &super::metrics::HttpMetrics,
) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    tracing::error!("A request handler panicked: {message}");
    metrics.panicked();
    ApiError::Internal.into_response()
}
