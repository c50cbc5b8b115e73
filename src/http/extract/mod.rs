//! The JSON body extractors. axum's own `Json` answers bad input with plain-text errors; these
//! answer with ours, and hand the handler the JSON of the fields the domain parsers read
//! ([`reader`] skips the rest while parsing).

mod reader;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeSeed;
use serde_json::{Map, Value};

use super::error::ApiError;
use reader::{TopArray, TopObject};

/// A request body that is a JSON object, sent as `application/json` (or `application/*+json`):
/// the fields some event parser reads.
pub struct JsonObject(pub Map<String, Value>);

/// A request body that is a JSON array of at most the batch limit's items, sent as JSON: each
/// item as [`JsonObject`] reads it, or `null` for an item that is not an object.
pub struct JsonArray(pub Vec<Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (body, _) = read_body(request, state).await?;
        match parse(&body, |d| serde::Deserialize::deserialize(d))? {
            TopObject(Some(object)) => Ok(JsonObject(object)),
            TopObject(None) => Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            )),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonArray {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (body, limits) = read_body(request, state).await?;
        let max_items = limits.batch_items;
        match parse(&body, |d| TopArray { max_items }.deserialize(d))? {
            Some(batch) if batch.count > max_items => Err(ApiError::BatchTooLarge(max_items)),
            Some(batch) => Ok(JsonArray(batch.items)),
            None => Err(ApiError::BadRequest(
                "the request body must be a JSON array".into(),
            )),
        }
    }
}

/// The body of a JSON request, whole; the limits in force.
async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<(Bytes, JsonLimits), ApiError> {
    if !is_json(request.headers().get(header::CONTENT_TYPE)) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limits = request
        .extensions()
        .get::<JsonLimits>()
        .copied()
        .unwrap_or(JsonLimits {
            body_bytes: usize::MAX,
            batch_items: usize::MAX,
        });
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limits.body_bytes)
            } else {
                ApiError::BadRequest(format!("could not read the request body: {rejection}"))
            }
        })?;
    Ok((body, limits))
}

/// The limits the extractors enforce, made visible to them (and to the idempotency check) by
/// the router as an extension.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimits {
    pub body_bytes: usize,
    pub batch_items: usize,
}

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

/// Parses `body` with `read`, answering malformed JSON (or an empty body) with a 400.
fn parse<T>(
    body: &[u8],
    read: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
    ) -> serde_json::Result<T>,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    read(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
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

    use reader::MAX_VALUES_PER_FIELD;

    fn object(body: &[u8]) -> Result<Option<Map<String, Value>>, ApiError> {
        parse(body, |d| serde::Deserialize::deserialize(d)).map(|TopObject(o)| o)
    }

    fn batch(body: &[u8], max_items: usize) -> Result<Option<(Vec<Value>, usize)>, ApiError> {
        parse(body, |d| TopArray { max_items }.deserialize(d))
            .map(|items| items.map(|b| (b.items, b.count)))
    }

    #[test]
    fn a_field_the_parsers_read_named_twice_is_a_bad_request_at_any_depth() {
        for body in [
            &br#"{"title": "a", "title": "b"}"#[..],
            br#"{"genres": [{"k": 1, "k": 1}]}"#,
        ] {
            match object(body) {
                Err(ApiError::BadRequest(message)) => {
                    assert!(message.contains("duplicate key"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
        match batch(br#"[{"type": "movie", "type": "user"}]"#, 10) {
            Err(ApiError::BadRequest(message)) => assert!(message.contains("duplicate key")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fields_no_parser_reads_are_skipped_unread() {
        let body = br#"{"movie_id": 1, "extra": [1, 2, {"k": 1, "k": 2}], "x": {"deep": [[[]]]}}"#;
        let object = object(body).unwrap().unwrap();
        assert_eq!(Value::Object(object), serde_json::json!({"movie_id": 1}));
        // Skipped fields are still JSON: malformed JSON anywhere is a bad request.
        assert!(matches!(
            object_result(br#"{"movie_id": 1, "extra": [1,]}"#),
            Err(ApiError::BadRequest(_))
        ));
    }

    fn object_result(body: &[u8]) -> Result<Option<Map<String, Value>>, ApiError> {
        object(body)
    }

    #[test]
    fn fields_the_parsers_read_are_read_as_serde_json_reads_them() {
        let body = br#"{"genres": [1, -2, 3.5, 18446744073709551615, true, null, "s\u00e9", {}], "title": "t"}"#;
        let expected: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(Value::Object(object(body).unwrap().unwrap()), expected);
    }

    #[test]
    fn a_huge_field_is_cut_short_and_the_largest_valid_field_is_not() {
        let genres: Vec<String> = (0..32).map(|i| format!("g{i}")).collect();
        let body = serde_json::json!({"genres": genres}).to_string();
        let read = object(body.as_bytes()).unwrap().unwrap();
        assert_eq!(read["genres"].as_array().unwrap().len(), 32);

        let huge = format!(
            r#"{{"genres": [{}], "title": "kept"}}"#,
            vec!["1"; 100_000].join(",")
        );
        let read = object(huge.as_bytes()).unwrap().unwrap();
        assert_eq!(
            read["genres"].as_array().unwrap().len(),
            MAX_VALUES_PER_FIELD - 1
        );
        assert_eq!(read["title"], "kept", "fields after a cut one are read");
        let nested = format!(r#"{{"genres": {}1{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(object(nested.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn a_batch_is_read_up_to_its_limit_and_the_rest_only_counted() {
        let (items, count) = batch(br#"[{"type": "movie", "x": 1}, 5, [1]]"#, 10)
            .unwrap()
            .unwrap();
        assert_eq!(
            items,
            [
                serde_json::json!({"type": "movie"}),
                Value::Null,
                Value::Null
            ]
        );
        assert_eq!(count, 3);
        let (items, count) = batch(br#"[{}, {}, {}, {}]"#, 2).unwrap().unwrap();
        assert_eq!((items.len(), count), (2, 4));
        assert!(batch(br#"{"type": "movie"}"#, 10).unwrap().is_none());
    }

    #[test]
    fn a_body_that_is_not_an_object_is_told_apart_from_malformed_json() {
        for not_object in [&b"[1, 2]"[..], b"5", b"\"s\"", b"null", b"true"] {
            assert!(object(not_object).unwrap().is_none(), "{not_object:?}");
        }
    }

    #[test]
    fn empty_and_malformed_bodies_are_bad_requests() {
        assert!(object(br#"{"a": 1}"#).is_ok());
        for bad in [&b""[..], b"  \n", b"{", b"{\"a\":}", b"[1,]", b"{} {}"] {
            assert!(
                matches!(object(bad), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
