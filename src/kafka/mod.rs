//! Everything that talks to Kafka: client settings, the producer behind the [`EventPublisher`]
//! trait, topic creation, the background health check and librdkafka's statistics.

pub mod client;
pub mod health;
mod producer;
mod publisher;
pub mod stats;
pub mod topics;

pub use health::KafkaStatus;
pub use producer::KafkaPublisher;
pub use publisher::{Delivery, EventPublisher, OutgoingRecord, PublishError, Rejection, headers};
pub use stats::StatsContext;
