//! The event routes: extract, validate into a domain type, publish, answer with where Kafka
//! stored the event.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::{IntoResponses, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::JsonObject;
use crate::domain::{Event, EventPayload, MovieEvent, PaymentEvent, Timestamp, UserEvent};
use crate::kafka::OutgoingRecord;

/// The answer to a stored event.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    /// The topic the event was stored in.
    pub topic: String,
    /// The partition Kafka stored the event in.
    pub partition: i32,
    /// The event's offset in that partition.
    pub offset: i64,
    /// The event, exactly as stored as the record's value.
    #[schema(value_type = Event)]
    pub event: Box<RawValue>,
}

type Created = (StatusCode, Json<PublishResponse>);

/// The answers of every publishing route, for the OpenAPI document only.
#[derive(IntoResponses)]
#[allow(dead_code)] // Described, never constructed: handlers answer with `Created` or `ApiError`.
enum PublishResponses {
    /// Stored in Kafka.
    #[response(status = 201)]
    Created(PublishResponse),
    /// Malformed JSON or an invalid event.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The body is larger than the limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON.
    #[response(status = 415)]
    NotJson(ErrorBody),
    /// Kafka refused the event or did not acknowledge it in time.
    #[response(status = 500)]
    KafkaFailed(ErrorBody),
    /// The producer's queue is full; retry after `Retry-After` seconds.
    #[response(status = 503)]
    Busy(ErrorBody),
}

/// Publish a movie event.
#[utoipa::path(
    post, path = "/api/events/movie", tag = "events",
    request_body = MovieEvent,
    responses(PublishResponses)
)]
pub async fn create_movie_event(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Created, ApiError> {
    let received_at = Timestamp::now();
    let event = MovieEvent::try_from(&body)?;
    publish(&state, event.into(), received_at).await
}

/// Publish a user event.
#[utoipa::path(
    post, path = "/api/events/user", tag = "events",
    request_body = UserEvent,
    responses(PublishResponses)
)]
pub async fn create_user_event(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Created, ApiError> {
    let received_at = Timestamp::now();
    let event = UserEvent::parse(&body, received_at)?;
    publish(&state, event.into(), received_at).await
}

/// Publish a payment event.
#[utoipa::path(
    post, path = "/api/events/payment", tag = "events",
    request_body = PaymentEvent,
    responses(PublishResponses)
)]
pub async fn create_payment_event(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Created, ApiError> {
    let received_at = Timestamp::now();
    let event = PaymentEvent::parse(&body, received_at)?;
    publish(&state, event.into(), received_at).await
}

async fn publish(
    state: &AppState,
    payload: EventPayload,
    received_at: Timestamp,
) -> Result<Created, ApiError> {
    let event = Event::new(payload, received_at);
    // Serialised once: the same bytes become the record's value and the response's `event`.
    let raw = serde_json::value::to_raw_value(&event).map_err(|error| {
        tracing::error!("could not serialise event {}: {error}", event.id);
        ApiError::Internal
    })?;
    let topic = state.topics.topic(event.event_type).to_owned();
    let record = OutgoingRecord::for_event(&event, raw.get().as_bytes().to_vec(), topic.clone());
    let delivery = state.publisher.publish(record).await?;
    tracing::info!(
        "[PRODUCER] Published {} event: {}, {}",
        event.event_type,
        event.id,
        event.payload
    );
    let response = PublishResponse {
        status: "success",
        topic,
        partition: delivery.partition,
        offset: delivery.offset,
        event: raw,
    };
    Ok((StatusCode::CREATED, Json(response)))
}
