//! The event routes: extract, validate into a domain type, publish, answer with where Kafka
//! stored the event. The batch route ([`super::batch`]) prepares and answers its events with the
//! same functions.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::AppendHeaders;
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::{IntoResponses, ToSchema};

use super::AppState;
use super::earlier::{Identity, find_earlier};
use super::error::{ApiError, ErrorBody};
use super::extract::JsonObject;
use super::idempotency::{Attempt, IdempotencyKeyHeader, REPLAYED};
use crate::domain::{
    Event, EventPayload, EventType, MovieEvent, PaymentEvent, Timestamp, UserEvent,
};
use crate::kafka::{Delivery, Found, OutgoingRecord};
use crate::telemetry::trace::current_context_headers;

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

/// A stored event's answer: 201, and `Idempotent-Replayed: true` when an earlier attempt of the
/// request stored it.
type Created = (
    StatusCode,
    AppendHeaders<Option<(HeaderName, HeaderValue)>>,
    Json<PublishResponse>,
);

fn created(answer: PublishResponse, replayed: bool) -> Created {
    let header = replayed.then(|| (REPLAYED, HeaderValue::from_static("true")));
    (StatusCode::CREATED, AppendHeaders(header), Json(answer))
}

/// The answers of the layers in front of every publishing route, for the OpenAPI document only.
#[derive(IntoResponses)]
#[allow(dead_code)] // Described, never constructed: the layers answer with `ApiError`.
pub(super) enum GuardResponses {
    /// No credentials, or wrong ones (only when authentication is on); nothing was published.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A request with this `Idempotency-Key` is still being served; retry after `Retry-After`.
    #[response(status = 409)]
    KeyInProgress(ErrorBody),
    /// This `Idempotency-Key` was used for a different request; nothing was published.
    #[response(status = 422)]
    KeyReused(ErrorBody),
    /// The client is over its rate limit (only when rate limiting is on); retry after
    /// `Retry-After` seconds.
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
}

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
    params(IdempotencyKeyHeader),
    responses(PublishResponses, GuardResponses)
)]
pub async fn create_movie_event(
    State(state): State<AppState>,
    attempt: Option<Extension<Attempt>>,
    JsonObject(body): JsonObject,
) -> Result<Created, ApiError> {
    publish_one(&state, Identity::of(attempt), EventType::Movie, body).await
}

/// Publish a user event.
#[utoipa::path(
    post, path = "/api/events/user", tag = "events",
    request_body = UserEvent,
    params(IdempotencyKeyHeader),
    responses(PublishResponses, GuardResponses)
)]
pub async fn create_user_event(
    State(state): State<AppState>,
    attempt: Option<Extension<Attempt>>,
    JsonObject(body): JsonObject,
) -> Result<Created, ApiError> {
    publish_one(&state, Identity::of(attempt), EventType::User, body).await
}

/// Publish a payment event.
#[utoipa::path(
    post, path = "/api/events/payment", tag = "events",
    request_body = PaymentEvent,
    params(IdempotencyKeyHeader),
    responses(PublishResponses, GuardResponses)
)]
pub async fn create_payment_event(
    State(state): State<AppState>,
    attempt: Option<Extension<Attempt>>,
    JsonObject(body): JsonObject,
) -> Result<Created, ApiError> {
    publish_one(&state, Identity::of(attempt), EventType::Payment, body).await
}

/// An event ready to be published: the event, its serialised form (the record's value and the
/// answer's `event`, the same bytes), its topic and its record.
pub(super) struct Prepared {
    pub(super) event: Event,
    pub(super) raw: Box<RawValue>,
    pub(super) topic: Arc<str>,
}

/// Serialises `payload`, the request's event number `index`, into its event and record. The
/// event is serialised once: the same bytes become the record's value and the response's
/// `event`.
pub(super) fn prepare(
    state: &AppState,
    identity: &Identity,
    index: usize,
    payload: EventPayload,
    received_at: Timestamp,
) -> Result<(Prepared, OutgoingRecord), ApiError> {
    let event = Event::with_id(identity.event_id(index), payload, received_at);
    let raw = serde_json::value::to_raw_value(&event).map_err(|error| {
        tracing::error!("could not serialise event {}: {error}", event.id);
        ApiError::Internal
    })?;
    let topic = state.topics.topic(event.event_type).clone();
    let value = match &state.schema_registry {
        Some(registry) => registry.record_value(event.event_type, raw.get().as_bytes()),
        None => raw.get().as_bytes().to_vec(),
    };
    let mut record = OutgoingRecord::for_event(
        &event,
        value,
        topic.clone(),
        state.cloudevents_source.clone(),
    );
    // Whoever reads the record can continue the request's trace.
    let trace = current_context_headers().into_iter();
    record
        .headers
        .extend(trace.map(|(name, value)| (name, value.into())));
    record.timestamp = identity.record_time();
    Ok((Prepared { event, raw, topic }, record))
}

/// Logs a stored event in the seed's words and describes where it is.
pub(super) fn stored(prepared: Prepared, delivery: Delivery) -> PublishResponse {
    let Prepared { event, raw, topic } = prepared;
    tracing::info!(
        "[PRODUCER] Published {} event: {}, {}",
        event.event_type,
        event.id,
        event.payload
    );
    PublishResponse {
        status: "success",
        topic: topic.to_string(),
        partition: delivery.partition,
        offset: delivery.offset,
        event: raw,
    }
}

/// Describes an event an earlier attempt of the request stored: the answer that attempt would
/// have given, from the record itself.
pub(super) fn stored_earlier(prepared: Prepared, found: Found) -> PublishResponse {
    let Prepared { event, raw, topic } = prepared;
    tracing::info!(
        "[PRODUCER] Found {} event {} stored by an earlier attempt of the request",
        event.event_type,
        event.id
    );
    let stored_event = String::from_utf8(found.value)
        .ok()
        .and_then(|value| RawValue::from_string(value).ok());
    PublishResponse {
        status: "success",
        topic: topic.to_string(),
        partition: found.delivery.partition,
        offset: found.delivery.offset,
        event: stored_event.unwrap_or(raw),
    }
}

/// Validates `body` as an event of `event_type` and publishes it, unless an earlier attempt of
/// the request stored it.
async fn publish_one(
    state: &AppState,
    identity: Identity,
    event_type: EventType,
    body: Map<String, Value>,
) -> Result<Created, ApiError> {
    let received_at = Timestamp::now();
    let payload = EventPayload::parse(event_type, &body, received_at)?;
    // Nothing of the request is held while Kafka is awaited.
    drop(body);
    let (prepared, record) = prepare(state, &identity, 0, payload, received_at)?;
    let wanted = [(prepared.topic.clone(), prepared.event.id)];
    if let Some(found) = find_earlier(state, &identity, &wanted)
        .await?
        .remove(&prepared.event.id)
    {
        return Ok(created(stored_earlier(prepared, found), true));
    }
    let delivery = state.publisher.publish(record).await?;
    Ok(created(stored(prepared, delivery), false))
}
