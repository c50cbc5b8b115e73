//! User events: something happened to a user's account.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};

use super::fields::{Fields, FromJson, ValidationErrors, enum_from_json};
use super::values::{EntityId, Text, Timestamp};

/// What happened to the user.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    IntoStaticStr,
    EnumString,
    VariantNames,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum UserAction {
    Registered,
    LoggedIn,
    UpdatedProfile,
    Deleted,
}

impl UserAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl FromJson for UserAction {
    fn from_json(value: &Value) -> Result<Self, String> {
        enum_from_json(value)
    }
}

/// A plausible e-mail address: one `@` between a non-empty local part and a dotted domain, no
/// spaces, at most 254 characters (RFC 5321's path limit). Deliverability is not our business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    const MAX_LEN: usize = 254;
}

impl FromJson for Email {
    fn from_json(value: &Value) -> Result<Self, String> {
        let Some(address) = value.as_str() else {
            return Err("must be a string".to_owned());
        };
        let plausible = address.len() <= Self::MAX_LEN
            && !address.chars().any(char::is_whitespace)
            && match address.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.split('.').all(|label| !label.is_empty())
                        && domain.contains('.')
                }
                None => false,
            };
        if plausible {
            Ok(Self(address.to_owned()))
        } else {
            Err("must be an e-mail address such as john@example.com".to_owned())
        }
    }
}

impl utoipa::PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(Self::MAX_LEN))
            .into()
    }
}

impl ToSchema for Email {}

pub type Username = Text<1, 64>;

/// A user event as clients send it and as it is published. A missing `timestamp` is filled with
/// the time the service received the event.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "user_id": 123, "username": "john_doe", "email": "john@example.com",
    "action": "registered", "timestamp": "2025-01-01T00:00:00Z"
}))]
pub struct UserEvent {
    pub user_id: EntityId,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub username: Option<Username>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    pub action: UserAction,
    /// When the client says it happened; the time of receipt when absent or null. Always
    /// present in the published event.
    #[schema(value_type = Option<Timestamp>, required = false)]
    pub timestamp: Timestamp,
}

impl UserEvent {
    /// Validates a request body received at `received_at`.
    pub fn parse(
        body: &Map<String, Value>,
        received_at: Timestamp,
    ) -> Result<Self, ValidationErrors> {
        let mut f = Fields::new(body);
        let user_id = f.required("user_id");
        let username = f.optional("username");
        let email = f.optional("email");
        let action = f.required("action");
        let timestamp = f.optional("timestamp");
        let (Some(user_id), Some(action)) = (user_id, action) else {
            return Err(f.into_errors());
        };
        f.finish()?;
        Ok(Self {
            user_id,
            username,
            email,
            action,
            timestamp: timestamp.unwrap_or(received_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<UserEvent, ValidationErrors> {
        UserEvent::parse(
            body.as_object().expect("test bodies are objects"),
            Timestamp::now(),
        )
    }

    #[test]
    fn the_seed_example_is_valid_and_round_trips_unchanged() {
        let body = json!({
            "user_id": 123, "username": "john_doe", "email": "john@example.com",
            "action": "registered", "timestamp": "2025-01-01T00:00:00Z"
        });
        let event = parse(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&event).unwrap(), body);
    }

    #[test]
    fn a_missing_timestamp_is_the_time_of_receipt() {
        let received = Timestamp::from_json(&json!("2026-02-03T04:05:06Z")).unwrap();
        let body = json!({"user_id": 1, "action": "logged_in"});
        let event = UserEvent::parse(body.as_object().unwrap(), received).unwrap();
        assert_eq!(event.timestamp, received);
    }

    #[test]
    fn every_broken_field_is_named() {
        let errors = parse(json!({
            "user_id": -3, "username": "", "email": "not-an-address", "action": "signed_up",
            "timestamp": "soon"
        }))
        .unwrap_err();
        assert_eq!(
            errors.fields(),
            ["user_id", "username", "email", "action", "timestamp"]
        );
        assert_eq!(
            parse(json!({})).unwrap_err().fields(),
            ["user_id", "action"]
        );
    }

    #[test]
    fn email_addresses_must_be_plausible() {
        for good in ["john@example.com", "a.b+c@sub.example.org"] {
            assert!(
                Email::from_json(&json!(good)).is_ok(),
                "{good} was rejected"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "john",
            "@example.com",
            "john@",
            "john@localhost",
            "jo hn@example.com",
            "a@b@example.com",
            "john@example..com",
            long.as_str(),
        ] {
            assert!(Email::from_json(&json!(bad)).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn action_names_match_their_variants() {
        for &name in UserAction::VARIANTS {
            assert_eq!(UserAction::from_json(&json!(name)).unwrap().as_str(), name);
        }
    }
}
