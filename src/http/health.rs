//! Health routes: readiness from the background Kafka check, and a liveness route that never
//! depends on Kafka.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::kafka::KafkaStatus;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// True while Kafka is reachable and has the service's topics.
    pub status: bool,
    pub kafka: KafkaStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always true: the process serves HTTP.
    pub status: bool,
}

/// Readiness: can events be published now?
#[utoipa::path(
    get, path = "/api/events/health", tag = "health",
    responses(
        (status = 200, description = "Kafka is reachable", body = Health),
        (status = 503, description = "Kafka is unreachable or lacks the topics", body = Health),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let kafka = state.kafka_status.borrow().clone();
    let status = kafka.is_healthy();
    let code = if status {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(Health { status, kafka }))
}

/// Liveness: is the process serving?
#[utoipa::path(
    get, path = "/api/events/health/live", tag = "health",
    responses((status = 200, description = "The process is alive", body = Liveness))
)]
pub async fn live() -> Json<Liveness> {
    Json(Liveness { status: true })
}
