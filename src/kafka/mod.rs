//! Everything that talks to Kafka: client settings, publishing (the [`Publisher`] over a
//! [`Sink`], the rdkafka producer as the real one), records and their headers, topic creation,
//! the background health check, trace context in records, and librdkafka's statistics.

pub mod client;
pub mod headers;
pub mod health;
mod lookup;
mod metrics;
mod producer;
mod publisher;
mod record;
mod reports;
pub mod stats;
pub mod topics;
pub mod trace;
pub mod wire;

pub use health::KafkaStatus;
pub use lookup::{Found, Lookup};
pub use metrics::ProduceMetrics;
pub use producer::{KafkaProducer, KafkaSink, Replacement};
pub use publisher::{
    Delivery, PendingDelivery, PendingLookup, PublishError, Publisher, QueueLevel, Rejection, Sink,
};
pub use record::{CLOUDEVENTS_SPEC_VERSION, HeaderText, OutgoingRecord};
pub use stats::StatsContext;
