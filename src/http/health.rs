//! Health routes: readiness from the background Kafka check, and a liveness route that never
//! depends on Kafka.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::consumer::HeldPartition;
use crate::kafka::KafkaStatus;
use crate::schema_registry::SchemaRegistryStatus;
use crate::shared::RedisStatus;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// True while Kafka is reachable and has the service's topics, and no consumer has held a
    /// partition for longer than `KAFKA_DLQ_MAX_HOLD_MS`.
    pub status: bool,
    pub kafka: KafkaStatus,
    pub consumers: ConsumersHealth,
    /// Where idempotency keys and rate limits are shared, when `REDIS_URL` is set. Readiness
    /// does not depend on it: while it is unreachable, requests with an `Idempotency-Key` are
    /// answered 503 and rate limits are kept per instance, and every other request is served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisStatus>,
    /// The value schemas in the schema registry, when `SCHEMA_REGISTRY_URL` is set: whether the
    /// registry was reached (at start-up, then every 30 s) and each subject's id. Readiness does
    /// not depend on it: start-up registered every schema, so every record has its id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<SchemaRegistryStatus>,
}

/// What the built-in consumers report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumersHealth {
    /// False once a partition has been held for longer than `KAFKA_DLQ_MAX_HOLD_MS`.
    pub status: bool,
    /// Partitions held because a record's dead letter cannot be written (the record's offset,
    /// since when, and Kafka's last refusal). Records after it wait; the other partitions go on.
    /// An operator fixes the cause (the `.dlq` topic, its permissions, its size limit).
    pub held_partitions: Vec<HeldPartition>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// True while the process serves HTTP and can still publish: false only once the producer
    /// hit a fatal error and no new one could be made, so that the service is restarted.
    pub status: bool,
}

/// Readiness: can events be published now, and are the consumers keeping up?
#[utoipa::path(
    get, path = "/api/events/health", tag = "health",
    responses(
        (status = 200, description = "Kafka is reachable and the consumers are not stuck", body = Health),
        (status = 503, description = "Kafka is unreachable or lacks the topics, or a consumer has held a partition for too long", body = Health),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let kafka = state.kafka_status.borrow().clone();
    let (held_partitions, held_too_long) = state.held.report(state.limits.dlq_max_hold);
    let consumers = ConsumersHealth {
        status: !held_too_long,
        held_partitions,
    };
    let status = kafka.is_healthy() && consumers.status;
    let code = if status {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Health {
            status,
            kafka,
            consumers,
            redis: state.redis.as_ref().map(|status| status.borrow().clone()),
            schema_registry: (state.schema_registry.as_ref()).map(|r| r.status().borrow().clone()),
        }),
    )
}

/// Liveness: is the process serving, and can it still publish once Kafka is there? Never depends
/// on Kafka being reachable.
#[utoipa::path(
    get, path = "/api/events/health/live", tag = "health",
    responses(
        (status = 200, description = "The process is alive", body = Liveness),
        (status = 503, description = "The producer cannot be replaced after a fatal error: restart the service", body = Liveness),
    )
)]
pub async fn live(State(state): State<AppState>) -> (StatusCode, Json<Liveness>) {
    let status = state.kafka_status.borrow().is_alive();
    let code = if status {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(Liveness { status }))
}
