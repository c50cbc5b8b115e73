//! Reading a request body so that memory follows the bytes the service uses, not the shape the
//! client chose. An event object's fields that no parser reads ([`FIELD_NAMES`]) are skipped
//! while parsing (checked to be JSON, never built into a tree); the fields it reads are built
//! strictly (an object that names a key twice is an error: which of two titles is the event's
//! would otherwise depend on the parser, and other services' parsers differ), and at most
//! [`MAX_VALUES_PER_FIELD`] JSON values of each are built: no valid field holds nearly as many,
//! so a field cut short is invalid anyway and is reported by its parser as such. A batch is read
//! up to its limit; the items past it are only counted.

use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Number, Value};

use crate::domain::FIELD_NAMES;

/// The most JSON values built for one field (its own value counts as one): the largest valid
/// field, a movie's 32 genres, holds 33.
pub const MAX_VALUES_PER_FIELD: usize = 256;

/// The top-level value of a body that should be an event object: `None` when it is not one.
pub struct TopObject(pub Option<Map<String, Value>>);

impl<'de> serde::Deserialize<'de> for TopObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectVisitor).map(TopObject)
    }
}

/// The top-level value of a body that should be a batch: its first `max_items` items (each an
/// event object, or `Value::Null` for an item that is not one) and how many there were in all;
/// `None` when it is not an array.
pub struct TopArray {
    pub max_items: usize,
}

/// A batch as read.
pub struct Items {
    pub items: Vec<Value>,
    pub count: usize,
}

impl<'de> DeserializeSeed<'de> for TopArray {
    type Value = Option<Items>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(ArrayVisitor(self.max_items))
    }
}

/// Reads an event object's fields; anything else is skipped and reported as `None`.
struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Option<Map<String, Value>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<FieldName>()? {
            match key {
                FieldName::Read(name) => {
                    if map.contains_key(name) {
                        return Err(A::Error::custom(format_args!("duplicate key {name:?}")));
                    }
                    let mut budget = MAX_VALUES_PER_FIELD;
                    let value = access.next_value_seed(Strict(&mut budget))?;
                    map.insert(name.to_owned(), value);
                }
                FieldName::Skipped => {
                    access.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(map))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
}

struct ArrayVisitor(usize);

impl<'de> Visitor<'de> for ArrayVisitor {
    type Value = Option<Items>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        let mut count = 0;
        while count < self.0 {
            match seq.next_element::<TopObject>()? {
                Some(TopObject(item)) => items.push(item.map_or(Value::Null, Value::Object)),
                None => return Ok(Some(Items { items, count })),
            }
            count += 1;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            count += 1;
        }
        Ok(Some(Items { items, count }))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A key of an event object: one a parser reads (borrowed from [`FIELD_NAMES`], so reading it
/// allocates nothing), or one that is skipped.
enum FieldName {
    Read(&'static str),
    Skipped,
}

impl<'de> serde::Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = FieldName;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E>(self, name: &str) -> Result<FieldName, E> {
                Ok(FIELD_NAMES
                    .iter()
                    .find(|known| **known == name)
                    .map_or(FieldName::Skipped, |known| FieldName::Read(known)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// Builds a JSON value as serde_json would, but refuses an object that names a key twice, and
/// builds no more than `budget` values (the rest is skipped).
struct Strict<'b>(&'b mut usize);

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        *self.0 = self.0.saturating_sub(1);
        deserializer.deserialize_any(StrictVisitor(self.0))
    }
}

struct StrictVisitor<'b>(&'b mut usize);

impl<'de> Visitor<'de> for StrictVisitor<'_> {
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
        let budget = self.0;
        let mut items = Vec::new();
        while *budget > 0 {
            match seq.next_element_seed(Strict(budget))? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let budget = self.0;
        let mut map = Map::new();
        while *budget > 0 {
            let Some(key) = access.next_key::<String>()? else {
                return Ok(Value::Object(map));
            };
            if map.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let value = access.next_value_seed(Strict(budget))?;
            map.insert(key, value);
        }
        while access.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Object(map))
    }
}
