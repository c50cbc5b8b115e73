//! The values event fields hold. Each owns one rule (an id is an integer >= 1, a title is a
//! non-empty string of bounded length, ...) twice over: in `FromJson`, which enforces it, and in
//! `PartialSchema`, which publishes it in the OpenAPI document. Keeping both beside each other is
//! what keeps the document true.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::fields::FromJson;

/// The id of a movie, user or payment: an integer from 1 to 2^63-1 (a Java `long`, so that every
/// consumer of the topics can hold it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EntityId(u64);

impl EntityId {
    pub const MAX: u64 = i64::MAX as u64;

    pub fn get(self) -> u64 {
        self.0
    }
}

impl FromJson for EntityId {
    fn from_json(value: &Value) -> Result<Self, String> {
        match value.as_u64() {
            Some(id) if (1..=Self::MAX).contains(&id) => Ok(Self(id)),
            _ => Err(format!("must be an integer from 1 to {}", Self::MAX)),
        }
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialSchema for EntityId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(Self::MAX as f64))
            .into()
    }
}

impl ToSchema for EntityId {}

/// A string of `MIN` to `MAX` characters (Unicode scalar values), trimmed of nothing: what the
/// client sent is what is published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text<const MIN: usize, const MAX: usize>(String);

impl<const MIN: usize, const MAX: usize> Text<MIN, MAX> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MIN: usize, const MAX: usize> FromJson for Text<MIN, MAX> {
    fn from_json(value: &Value) -> Result<Self, String> {
        let Some(text) = value.as_str() else {
            return Err("must be a string".to_owned());
        };
        let chars = text.chars().count();
        if chars < MIN || (MIN > 0 && text.trim().is_empty()) {
            Err("must not be empty".to_owned())
        } else if chars > MAX {
            Err(format!("must be at most {MAX} characters"))
        } else {
            Ok(Self(text.to_owned()))
        }
    }
}

/// Matches a string with at least one character that is not white space as Rust's `trim`
/// sees it (Unicode White_Space): what `Text` demands of a non-empty string.
const NOT_BLANK: &str = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

impl<const MIN: usize, const MAX: usize> PartialSchema for Text<MIN, MAX> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(MIN))
            .max_length(Some(MAX))
            .pattern((MIN > 0).then_some(NOT_BLANK))
            .into()
    }
}

/// Always inlined (`#[schema(inline)]`): one component per pair of bounds would say nothing.
impl<const MIN: usize, const MAX: usize> ToSchema for Text<MIN, MAX> {}

/// A list of up to `MAX` valid items.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct List<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> List<T, MAX> {
    pub fn items(&self) -> &[T] {
        &self.0
    }
}

impl<T: FromJson, const MAX: usize> FromJson for List<T, MAX> {
    fn from_json(value: &Value) -> Result<Self, String> {
        let Some(items) = value.as_array() else {
            return Err("must be an array".to_owned());
        };
        if items.len() > MAX {
            return Err(format!("must have at most {MAX} items"));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| T::from_json(item).map_err(|e| format!("item {i} {e}")))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl<T: PartialSchema, const MAX: usize> PartialSchema for List<T, MAX> {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(T::schema())
            .max_items(Some(MAX))
            .into()
    }
}

impl<T: PartialSchema, const MAX: usize> ToSchema for List<T, MAX> {}

/// A finite number within `[min, max]`, checked by the type that wraps it.
pub fn number_in(value: &Value, min: f64, max: f64) -> Result<f64, String> {
    match value.as_f64() {
        Some(n) if n.is_finite() && (min..=max).contains(&n) => Ok(n),
        _ if max.is_finite() => Err(format!("must be a number from {min} to {max}")),
        _ => Err(format!("must be a number >= {min}")),
    }
}

/// The schema of a number within `[min, max]` (`max` may be infinite, meaning no upper bound).
pub fn number_schema(min: f64, max: f64) -> RefOr<Schema> {
    let schema = ObjectBuilder::new()
        .schema_type(Type::Number)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
        .minimum(Some(min));
    let schema = if max.is_finite() {
        schema.maximum(Some(max))
    } else {
        schema
    };
    schema.into()
}

/// An RFC 3339 date-time, normalised to UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(DateTime<Utc>);

/// As serde writes it: RFC 3339, UTC (`Z`), with as many fractional digits as it needs.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now())
    }

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(time: DateTime<Utc>) -> Self {
        Self(time)
    }
}

impl FromJson for Timestamp {
    fn from_json(value: &Value) -> Result<Self, String> {
        value
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| Self(t.with_timezone(&Utc)))
            .ok_or_else(|| "must be an RFC 3339 date-time such as 2025-01-01T00:00:00Z".to_owned())
    }
}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .into()
    }
}

impl ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entity_id_accepts_positive_integers_only() {
        assert_eq!(EntityId::from_json(&json!(1)).map(EntityId::get), Ok(1));
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("1"),
            json!(null),
            json!(u64::MAX),
        ] {
            assert!(EntityId::from_json(&bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn text_enforces_its_bounds_in_characters() {
        type Short = Text<1, 3>;
        assert!(
            Short::from_json(&json!("ééé")).is_ok(),
            "3 two-byte chars fit"
        );
        assert_eq!(
            Short::from_json(&json!("")),
            Err("must not be empty".into())
        );
        assert_eq!(
            Short::from_json(&json!("  ")),
            Err("must not be empty".into())
        );
        assert_eq!(
            Short::from_json(&json!("abcd")),
            Err("must be at most 3 characters".into())
        );
        assert_eq!(Short::from_json(&json!(5)), Err("must be a string".into()));
    }

    #[test]
    fn the_not_blank_pattern_is_rusts_white_space() {
        // Every char that `trim` removes is in the pattern's class, and no other.
        let class: Vec<char> = (0..=0x3000u32)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
            .collect();
        let listed = [
            '\t', '\n', '\u{b}', '\u{c}', '\r', ' ', '\u{85}', '\u{a0}', '\u{1680}',
        ]
        .into_iter()
        .chain('\u{2000}'..='\u{200a}')
        .chain(['\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}'])
        .collect::<Vec<_>>();
        assert_eq!(class, listed);
        assert!(NOT_BLANK.starts_with("[^") && NOT_BLANK.ends_with(']'));
    }

    #[test]
    fn list_names_the_bad_item() {
        type Tags = List<Text<1, 10>, 2>;
        assert!(Tags::from_json(&json!(["a", "b"])).is_ok());
        assert_eq!(
            Tags::from_json(&json!(["a", ""])),
            Err("item 1 must not be empty".into())
        );
        assert_eq!(
            Tags::from_json(&json!(["a", "b", "c"])),
            Err("must have at most 2 items".into())
        );
        assert_eq!(Tags::from_json(&json!("a")), Err("must be an array".into()));
    }

    #[test]
    fn numbers_must_be_finite_and_in_range() {
        assert_eq!(number_in(&json!(0), 0.0, 10.0), Ok(0.0));
        assert_eq!(number_in(&json!(10), 0.0, 10.0), Ok(10.0));
        assert!(number_in(&json!(10.01), 0.0, 10.0).is_err());
        assert!(number_in(&json!(-0.5), 0.0, f64::INFINITY).is_err());
        assert!(number_in(&json!("5"), 0.0, 10.0).is_err());
        assert_eq!(number_in(&json!(1e300), 0.0, f64::INFINITY), Ok(1e300));
    }

    #[test]
    fn a_timestamp_is_displayed_as_it_is_serialised() {
        for text in ["2025-01-01T10:00:00Z", "2025-01-01T10:00:00.123456789Z"] {
            let t = Timestamp::from_json(&json!(text)).unwrap();
            assert_eq!(t.to_string(), text);
            assert_eq!(serde_json::to_value(t).unwrap(), json!(text));
            assert_eq!(serde_json::from_value::<Timestamp>(json!(text)).unwrap(), t);
        }
    }

    #[test]
    fn timestamps_are_rfc3339_and_normalised_to_utc() {
        let t = Timestamp::from_json(&json!("2025-01-01T02:00:00+02:00")).unwrap();
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            json!("2025-01-01T00:00:00Z")
        );
        for bad in [json!("2025-01-01"), json!("yesterday"), json!(1735689600)] {
            assert!(Timestamp::from_json(&bad).is_err(), "{bad} was accepted");
        }
    }
}
