//! The envelope every published event travels in.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoEnumIterator, IntoStaticStr, VariantNames};
use utoipa::ToSchema;
use uuid::Uuid;

use serde_json::{Map, Value};

use super::fields::{FromJson, ValidationErrors, enum_from_json};
use super::values::{EntityId, Timestamp};
use super::{MovieAction, MovieEvent, PaymentEvent, PaymentStatus, UserAction, UserEvent};

/// The kind of an event; each kind has a topic of its own.
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
pub enum EventType {
    Movie,
    User,
    Payment,
}

impl EventType {
    pub const ALL: [EventType; 3] = [EventType::Movie, EventType::User, EventType::Payment];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The type named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }

    /// The names of this type's actions (a payment's statuses), in their declared order.
    pub fn action_names(self) -> &'static [&'static str] {
        match self {
            EventType::Movie => MovieAction::VARIANTS,
            EventType::User => UserAction::VARIANTS,
            EventType::Payment => PaymentStatus::VARIANTS,
        }
    }

    /// The topic's name without any deployment prefix, as in the seed: `movie-events`, ...
    pub fn topic_suffix(self) -> &'static str {
        match self {
            EventType::Movie => "movie-events",
            EventType::User => "user-events",
            EventType::Payment => "payment-events",
        }
    }
}

impl FromJson for EventType {
    fn from_json(value: &Value) -> Result<Self, String> {
        enum_from_json(value)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, in the terms of the event's type: a movie's or a user's action, or a
/// payment's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum EventAction {
    Movie(MovieAction),
    User(UserAction),
    Payment(PaymentStatus),
}

impl EventAction {
    /// The action of `event_type` named `name`, if it has one.
    pub fn parse(event_type: EventType, name: &str) -> Option<Self> {
        match event_type {
            EventType::Movie => name.parse().ok().map(EventAction::Movie),
            EventType::User => name.parse().ok().map(EventAction::User),
            EventType::Payment => name.parse().ok().map(EventAction::Payment),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Movie(action) => action.as_str(),
            EventAction::User(action) => action.as_str(),
            EventAction::Payment(status) => status.as_str(),
        }
    }

    pub fn event_type(self) -> EventType {
        match self {
            EventAction::Movie(_) => EventType::Movie,
            EventAction::User(_) => EventType::User,
            EventAction::Payment(_) => EventType::Payment,
        }
    }

    /// Every action of every type.
    pub fn all() -> impl Iterator<Item = EventAction> {
        let movies = MovieAction::iter().map(EventAction::Movie);
        let users = UserAction::iter().map(EventAction::User);
        movies
            .chain(users)
            .chain(PaymentStatus::iter().map(EventAction::Payment))
    }

    /// The CloudEvents `type` of events with this action, `com.cinemaabyss.<type>.<action>`:
    /// written once per action for the life of the process, and borrowed by every record.
    pub fn cloudevents_type(self) -> &'static str {
        static TYPES: LazyLock<HashMap<EventAction, String>> = LazyLock::new(|| {
            EventAction::all()
                .map(|action| {
                    let name = format!("com.cinemaabyss.{}.{}", action.event_type(), action);
                    (action, name)
                })
                .collect()
        });
        TYPES
            .get(&self)
            .map_or("com.cinemaabyss.unknown", String::as_str)
    }
}

impl fmt::Display for EventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The validated body of an event, by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventPayload {
    Movie(MovieEvent),
    User(UserEvent),
    Payment(PaymentEvent),
}

impl EventPayload {
    /// Validates `body` as an event of `event_type` received at `received_at`.
    pub fn parse(
        event_type: EventType,
        body: &Map<String, Value>,
        received_at: Timestamp,
    ) -> Result<Self, ValidationErrors> {
        Ok(match event_type {
            EventType::Movie => MovieEvent::try_from(body)?.into(),
            EventType::User => UserEvent::parse(body, received_at)?.into(),
            EventType::Payment => PaymentEvent::parse(body, received_at)?.into(),
        })
    }

    pub fn event_type(&self) -> EventType {
        match self {
            EventPayload::Movie(_) => EventType::Movie,
            EventPayload::User(_) => EventType::User,
            EventPayload::Payment(_) => EventType::Payment,
        }
    }

    /// The entity the event is about; its events keep their order in Kafka.
    pub fn entity_id(&self) -> EntityId {
        match self {
            EventPayload::Movie(e) => e.movie_id,
            EventPayload::User(e) => e.user_id,
            EventPayload::Payment(e) => e.payment_id,
        }
    }

    /// The movie or user action, or the payment status.
    pub fn action(&self) -> EventAction {
        match self {
            EventPayload::Movie(e) => EventAction::Movie(e.action),
            EventPayload::User(e) => EventAction::User(e.action),
            EventPayload::Payment(e) => EventAction::Payment(e.status),
        }
    }
}

/// The seed's wording of an event in the `[PRODUCER]` log line, e.g. `Action: viewed, MovieID: 1`.
impl fmt::Display for EventPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventPayload::Movie(e) => {
                write!(f, "Action: {}, MovieID: {}", e.action.as_str(), e.movie_id)
            }
            EventPayload::User(e) => {
                write!(f, "Action: {}, UserID: {}", e.action.as_str(), e.user_id)
            }
            EventPayload::Payment(e) => write!(
                f,
                "Status: {}, PaymentID: {}, Amount: {:.2}",
                e.status.as_str(),
                e.payment_id,
                e.amount.get()
            ),
        }
    }
}

/// `anyOf`, not the `oneOf` a derive would write: a movie event can also be a valid user event
/// (`action: deleted` with a `user_id`), and the envelope's `type` says which it is.
impl utoipa::PartialSchema for EventPayload {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, Ref};
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("MovieEvent"))
            .item(Ref::from_schema_name("UserEvent"))
            .item(Ref::from_schema_name("PaymentEvent"))
            .into()
    }
}

impl ToSchema for EventPayload {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        for (name, schema) in [
            (
                "MovieEvent",
                <MovieEvent as utoipa::PartialSchema>::schema(),
            ),
            ("UserEvent", <UserEvent as utoipa::PartialSchema>::schema()),
            (
                "PaymentEvent",
                <PaymentEvent as utoipa::PartialSchema>::schema(),
            ),
        ] {
            schemas.push((name.to_owned(), schema));
        }
        MovieEvent::schemas(schemas);
        UserEvent::schemas(schemas);
        PaymentEvent::schemas(schemas);
    }
}

impl From<MovieEvent> for EventPayload {
    fn from(event: MovieEvent) -> Self {
        EventPayload::Movie(event)
    }
}

impl From<UserEvent> for EventPayload {
    fn from(event: UserEvent) -> Self {
        EventPayload::User(event)
    }
}

impl From<PaymentEvent> for EventPayload {
    fn from(event: PaymentEvent) -> Self {
        EventPayload::Payment(event)
    }
}

/// An event as published to Kafka and returned to the client.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Event {
    /// A fresh UUID (v4) per event; under an `Idempotency-Key`, a UUID (v8) derived from the
    /// caller, the key and the request, the same on every retry of it.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the service received the event (RFC 3339, UTC).
    pub timestamp: Timestamp,
    pub payload: EventPayload,
}

impl Event {
    /// Wraps a validated payload received at `received_at` under a new id.
    pub fn new(payload: EventPayload, received_at: Timestamp) -> Self {
        Self::with_id(Uuid::new_v4(), payload, received_at)
    }

    /// Wraps a validated payload received at `received_at` under `id`.
    pub fn with_id(id: Uuid, payload: EventPayload, received_at: Timestamp) -> Self {
        Self {
            id,
            event_type: payload.event_type(),
            timestamp: received_at,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn movie() -> EventPayload {
        let body = json!({"movie_id": 1, "title": "The Matrix", "action": "viewed"});
        MovieEvent::try_from(body.as_object().unwrap())
            .unwrap()
            .into()
    }

    fn payment(amount: f64) -> EventPayload {
        let body =
            json!({"payment_id": 456, "user_id": 123, "amount": amount, "status": "completed"});
        PaymentEvent::parse(body.as_object().unwrap(), Timestamp::now())
            .unwrap()
            .into()
    }

    #[test]
    fn the_envelope_has_id_type_timestamp_and_payload() {
        let received = chrono::DateTime::parse_from_rfc3339("2025-01-01T10:00:00.5Z")
            .unwrap()
            .to_utc();
        let event = Event::new(movie(), received.into());
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["id"], json!(event.id.to_string()));
        assert_eq!(json["type"], "movie");
        assert_eq!(json["timestamp"], "2025-01-01T10:00:00.500Z");
        assert_eq!(
            json["payload"],
            json!({"movie_id": 1, "title": "The Matrix", "action": "viewed"})
        );
        assert_eq!(json.as_object().unwrap().len(), 4);
    }

    #[test]
    fn each_event_gets_its_own_id() {
        assert_ne!(
            Event::new(movie(), Timestamp::now()).id,
            Event::new(movie(), Timestamp::now()).id
        );
    }

    #[test]
    fn log_summaries_use_the_seed_wording() {
        assert_eq!(movie().to_string(), "Action: viewed, MovieID: 1");
        assert_eq!(
            payment(99.999).to_string(),
            "Status: completed, PaymentID: 456, Amount: 100.00"
        );
        let user = json!({"user_id": 123, "action": "registered"});
        let user: EventPayload = UserEvent::parse(user.as_object().unwrap(), Timestamp::now())
            .unwrap()
            .into();
        assert_eq!(user.to_string(), "Action: registered, UserID: 123");
    }

    #[test]
    fn every_action_has_its_cloudevents_type_and_is_read_back_by_name() {
        assert_eq!(EventAction::all().count(), 13);
        for action in EventAction::all() {
            assert_eq!(
                action.cloudevents_type(),
                format!(
                    "com.cinemaabyss.{}.{}",
                    action.event_type(),
                    action.as_str()
                )
            );
            assert_eq!(
                EventAction::parse(action.event_type(), action.as_str()),
                Some(action)
            );
        }
        assert_eq!(
            EventAction::Payment(PaymentStatus::Completed).cloudevents_type(),
            "com.cinemaabyss.payment.completed"
        );
        assert_eq!(EventAction::parse(EventType::Movie, "completed"), None);
    }

    #[test]
    fn the_entity_id_is_the_key_of_each_kind() {
        assert_eq!(movie().entity_id().get(), 1);
        assert_eq!(payment(1.0).entity_id().get(), 456);
    }
}
