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

pub use batch::{BatchErrors, BatchItem, ItemErrors, parse_batch};
pub use event::{Event, EventPayload, EventType};
pub use fields::{EntityId, FieldError, FromJson, Timestamp, ValidationErrors};
pub use movie::{MovieAction, MovieEvent};
pub use payment::{PaymentEvent, PaymentStatus};
pub use user::{UserAction, UserEvent};
