//! Everything that talks to Kafka: client settings, the producer behind the [`EventPublisher`]
//! trait, topic creation and the background health check.

pub mod client;
pub mod health;
mod producer;
mod publisher;
pub mod topics;

pub use health::KafkaStatus;
pub use producer::KafkaPublisher;
pub use publisher::{Delivery, EventPublisher, OutgoingRecord, PublishError, headers};
