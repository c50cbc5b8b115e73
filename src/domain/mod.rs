//! Typed, validated events. Nothing here knows about HTTP or Kafka: a value of these types is a
//! valid event, and the only way to get one from client input is through its parser.

mod batch;
mod event;
mod fields;
mod movie;
mod payment;
#[cfg(test)]
mod properties;
mod user;
mod values;

pub use batch::{BatchErrors, BatchItem, ItemErrors, parse_batch};
pub use event::{Event, EventAction, EventPayload, EventType};
pub use fields::{FieldError, FromJson, ValidationErrors};
pub use movie::{MovieAction, MovieEvent};
pub use payment::{Amount, PaymentEvent, PaymentStatus};
pub use user::{UserAction, UserEvent};
pub use values::{EntityId, Timestamp};

/// Every field name an event parser reads, of any event type, and a batch item's `type`. The
/// HTTP edge reads these fields of a request and skips every other unread; a test below keeps
/// the list complete.
pub const FIELD_NAMES: &[&str] = &[
    "movie_id",
    "title",
    "action",
    "user_id",
    "rating",
    "genres",
    "description",
    "username",
    "email",
    "timestamp",
    "payment_id",
    "amount",
    "status",
    "method_type",
    "type",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_names_are_exactly_the_fields_the_parsers_read() {
        fields::READ.with(|read| read.borrow_mut().clear());
        // Each parser reads every one of its fields, present or not.
        let items = json!([{"type": "movie"}, {"type": "user"}, {"type": "payment"}]);
        assert!(parse_batch(items.as_array().unwrap(), Timestamp::now()).is_err());
        let read = fields::READ.with(|read| read.borrow().clone());
        let listed: std::collections::BTreeSet<String> =
            FIELD_NAMES.iter().map(|name| name.to_string()).collect();
        assert_eq!(read, listed);
    }
}
