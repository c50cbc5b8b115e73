//! The JSON body extractors. axum's own `Json` answers bad input with plain-text errors; these
//! answer with ours, and hand the handler plain JSON for the domain parsers to validate.

use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

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
        .map(|Strict(value)| value)
        .map_err(|error| ApiError::BadRequest(format!("malformed JSON: {error}")))
}

/// A JSON value read as serde_json reads one, except that an object naming a key twice is an
/// error instead of keeping the last value: which of two titles is the event's would otherwise
/// depend on the parser, and other services' parsers differ.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let Strict(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
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
    fn an_object_that_names_a_key_twice_is_a_bad_request_at_any_depth() {
        for body in [
            &br#"{"title": "a", "title": "b"}"#[..],
            br#"[{"x": {"k": 1, "k": 1}}]"#,
        ] {
            match parse_json(body) {
                Err(ApiError::BadRequest(message)) => {
                    assert!(message.contains("duplicate key"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn strict_parsing_reads_every_json_value_as_serde_json_does() {
        let body = br#"{"a": [1, -2, 3.5, 18446744073709551615, true, null, "s\u00e9"], "b": {}}"#;
        let expected: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(parse_json(body).unwrap(), expected);
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
