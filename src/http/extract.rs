//! The JSON body extractor. axum's own `Json` answers bad input with plain-text errors; this one
//! answers with ours, and hands the handler a JSON object for the domain parsers to validate.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value};

use super::error::ApiError;

/// A request body that is a JSON object, sent as `application/json` (or `application/*+json`).
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
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
        parse_object(&body).map(JsonObject)
    }
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

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        )),
        Err(error) => Err(ApiError::BadRequest(format!("malformed JSON: {error}"))),
    }
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
    fn only_objects_are_accepted() {
        assert!(parse_object(br#"{"a": 1}"#).is_ok());
        for bad in [
            &b""[..],
            b"  \n",
            b"[1]",
            b"null",
            b"\"x\"",
            b"{",
            b"{\"a\":}",
        ] {
            assert!(
                matches!(parse_object(bad), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
