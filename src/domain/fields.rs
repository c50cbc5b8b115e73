//! Field-level parsing shared by the event types: `Fields` walks a JSON object and collects every
//! broken field instead of stopping at the first, so a client learns about all its mistakes at
//! once. The values the fields hold are in [`super::values`].

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A value that can be read from one JSON field, with a message for the client when it cannot.
pub trait FromJson: Sized {
    fn from_json(value: &Value) -> Result<Self, String>;
}

/// One broken field of a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name as the client sent it, e.g. `movie_id`; the message names the item of
    /// a list (`item 2 must not be empty`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every broken field of a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The names of the broken fields, in the order they were checked.
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.field.as_str()).collect()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
thread_local! {
    /// Every field name read on this thread, for the test that keeps `FIELD_NAMES` complete.
    pub static READ: std::cell::RefCell<std::collections::BTreeSet<String>> =
        Default::default();
}

/// Reads the fields of one JSON object, remembering every error.
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Self {
            object,
            errors: Vec::new(),
        }
    }

    /// A field that must be present and valid.
    pub fn required<T: FromJson>(&mut self, name: &str) -> Option<T> {
        #[cfg(test)]
        READ.with(|read| read.borrow_mut().insert(name.to_owned()));
        match self.object.get(name) {
            None | Some(Value::Null) => {
                self.error(name, "is required");
                None
            }
            Some(value) => self.parse(name, value),
        }
    }

    /// A field that may be absent (or null) but must be valid when present.
    pub fn optional<T: FromJson>(&mut self, name: &str) -> Option<T> {
        #[cfg(test)]
        READ.with(|read| read.borrow_mut().insert(name.to_owned()));
        match self.object.get(name) {
            None | Some(Value::Null) => None,
            Some(value) => self.parse(name, value),
        }
    }

    /// Whether `name` has already been reported broken.
    pub fn has_error(&self, name: &str) -> bool {
        self.errors.iter().any(|e| e.field == name)
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// `Ok` when no field was broken.
    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.into_errors())
        }
    }

    /// Every error found so far: use it when a required field is missing, after reading all the
    /// fields, so that the client hears of all of them.
    pub fn into_errors(self) -> ValidationErrors {
        ValidationErrors(self.errors)
    }

    fn parse<T: FromJson>(&mut self, name: &str, value: &Value) -> Option<T> {
        match T::from_json(value) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.error(name, message);
                None
            }
        }
    }
}

/// Reads a string-valued enumeration by its names, listing them when the value is none of them.
pub fn enum_from_json<T>(value: &Value) -> Result<T, String>
where
    T: std::str::FromStr + strum::VariantNames,
{
    value
        .as_str()
        .and_then(|name| name.parse().ok())
        .ok_or_else(|| format!("must be one of {}", T::VARIANTS.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::values::EntityId;
    use serde_json::json;

    #[test]
    fn fields_collects_every_error() {
        let object = json!({"a": "x", "c": 0}).as_object().unwrap().clone();
        let mut fields = Fields::new(&object);
        let a: Option<EntityId> = fields.required("a");
        let b: Option<EntityId> = fields.required("b");
        let c: Option<EntityId> = fields.optional("c");
        let d: Option<EntityId> = fields.optional("d");
        assert!(a.is_none() && b.is_none() && c.is_none() && d.is_none());
        let errors = fields.finish().unwrap_err();
        assert_eq!(errors.fields(), ["a", "b", "c"]);
        assert_eq!(errors.0[1].message, "is required");
    }
}
