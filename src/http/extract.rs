//! The JSON body extractors. axum's own `Json` answers bad input with plain-text errors; these
//! answer with ours, and hand the handler plain JSON for the domain parsers to validate.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value};

use super::error::ApiError;

/// A request body that is a JSON object, sent as `application/json` (or `application/*+json`).
pub struct JsonObject(pub Map<String, Value>);

/// A request body that is a JSON array, sent as JSON.
pub struct JsonArray(pub Vec<Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match read_json(request, state).await? {
            Value::Object(object) => Ok(JsonObject(object)),
            _ => Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            )),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonArray {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match read_json(request, state).await? {
            Value::Array(items) => Ok(JsonArray(items)),
            _ => Err(ApiError::BadRequest(
                "the request body must be a JSON array".into(),
            )),
        }
    }
}

async fn read_json<S: Send + Sync>(request: Request, state: &S) -> Result<Value, ApiError> {
    if !is_json(request.headers().get(header::CONTENT_TYPE)) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit = body_limit(&request);
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::BadRequest(format!("could not read the request body: {rejection}"))
            }
        })?;
    parse_json(&body)
}

/// The body limit in force, for the error message (set by the router as an extension).
fn body_limit(request: &Request) -> usize {
    request
        .extensions()
        .get::<BodyLimit>()
        .map_or(0, |limit| limit.0)
}

/// The configured body limit, made visible to the extractor.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(mime) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    serde_json::from_slice(body)
        .map_err(|error| ApiError::BadRequest(format!("malformed JSON: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_recognised() {
        for good in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/cloudevents+json",
        ] {
            assert!(
                is_json(Some(&header::HeaderValue::from_static(good))),
                "{good}"
            );
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "application/jsonx",
        ] {
            assert!(
                !is_json(Some(&header::HeaderValue::from_static(bad))),
                "{bad}"
            );
        }
        assert!(!is_json(None));
    }

    #[test]
    fn empty_and_malformed_bodies_are_bad_requests() {
        assert!(parse_json(br#"{"a": 1}"#).is_ok());
        for bad in [&b""[..], b"  \n", b"{", b"{\"a\":}", b"[1,]"] {
            assert!(
                matches!(parse_json(bad), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
