//! The event routes: extract, validate into a domain type, publish, answer with where Kafka
//! stored the event.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::{IntoResponses, ToSchema};

use super::AppState;
use super::earlier::{Identity, find_earlier};
use super::error::{ApiError, ErrorBody, with_retry_after};
use super::extract::{JsonArray, JsonObject};
use super::idempotency::{Attempt, IdempotencyKeyHeader, MaybePublished, REPLAYED};
use crate::domain::{
    BatchItem, Event, EventPayload, EventType, MovieEvent, PaymentEvent, Timestamp, UserEvent,
    parse_batch,
};
use crate::kafka::{Delivery, Found, OutgoingRecord, PublishError};
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

/// The answer to a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// `success` when every event was stored, else `error`.
    pub status: &'static str,
    /// How many events were not stored, when some were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// One result per item, in the order of the request.
    pub results: Vec<ItemResult>,
}

/// What became of one item of a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ItemResult {
    Stored(PublishResponse),
    Failed(FailedItem),
}

/// An item Kafka did not store (or did not confirm in time).
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedItem {
    /// Always `error`.
    #[schema(example = "error")]
    pub status: &'static str,
    pub error: String,
    /// The event as it would have been stored.
    #[schema(value_type = Event)]
    pub event: Box<RawValue>,
    /// Why, for the batch's status.
    #[serde(skip)]
    #[schema(ignore)]
    pub cause: PublishError,
}

/// The answers of the layers in front of every publishing route, for the OpenAPI document only.
#[derive(IntoResponses)]
#[allow(dead_code)] // Described, never constructed: the layers answer with `ApiError`.
enum GuardResponses {
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

/// The answers of the batch route, for the OpenAPI document only.
#[derive(IntoResponses)]
#[allow(dead_code)] // Described, never constructed: the handler builds its answers directly.
enum BatchResponses {
    /// Every event was stored.
    #[response(status = 201)]
    Created(BatchResponse),
    /// Malformed JSON, an empty batch, or invalid items (each named in `items`); nothing was
    /// published.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The body or the batch is larger than its limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON.
    #[response(status = 415)]
    NotJson(ErrorBody),
    /// Some events were not stored; `results` says which.
    #[response(status = 500)]
    KafkaFailed(BatchResponse),
    /// At capacity: nothing was published (an `ErrorBody`), or some events found the queue full
    /// (a `BatchResponse`). Retry after `Retry-After` seconds.
    #[response(status = 503)]
    Busy(ErrorBody),
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

/// Publish several events of any types at once.
///
/// Every item is validated before anything is published: one invalid item fails the batch with
/// 400, naming each bad item and field. The events are then published concurrently. 201 means
/// every event is stored; otherwise the answer is 500 (503 when the only trouble was a full
/// queue) and `results` says, item by item, which were stored and which not.
#[utoipa::path(
    post, path = "/api/events/batch", tag = "events",
    request_body(content = Vec<BatchItem>, description = "Up to BATCH_MAX_EVENTS (default 1000) typed events"),
    params(IdempotencyKeyHeader),
    responses(BatchResponses, GuardResponses)
)]
pub async fn create_batch(
    State(state): State<AppState>,
    attempt: Option<Extension<Attempt>>,
    JsonArray(items): JsonArray,
) -> Result<Response, ApiError> {
    // The extractor read no more than the limit's items, and refused the batch if it held more.
    if items.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    let identity = Identity::of(attempt);
    let received_at = Timestamp::now();
    let mut prepared = Vec::with_capacity(items.len());
    let mut records = Vec::with_capacity(items.len());
    for (index, payload) in parse_batch(&items, received_at)?.into_iter().enumerate() {
        let (event, record) = prepare(&state, &identity, index, payload, received_at)?;
        prepared.push(event);
        records.push(record);
    }
    // Nothing of the request is held while Kafka is awaited.
    drop(items);
    let wanted: Vec<_> = prepared
        .iter()
        .map(|p| (p.topic.clone(), p.event.id))
        .collect();
    let mut earlier = find_earlier(&state, &identity, &wanted).await?;
    // What an earlier attempt stored is answered as stored; only the rest is published now.
    let found: Vec<Option<Found>> = prepared
        .iter()
        .map(|p| earlier.remove(&p.event.id))
        .collect();
    let all_found = found.iter().all(Option::is_some);
    let to_publish: Vec<OutgoingRecord> = records
        .into_iter()
        .zip(&found)
        .filter_map(|(record, found)| found.is_none().then_some(record))
        .collect();
    let mut outcomes = match to_publish.is_empty() {
        true => Vec::new(),
        false => state.publisher.publish_batch(to_publish).await?,
    }
    .into_iter();
    let results: Vec<ItemResult> = prepared
        .into_iter()
        .zip(found)
        .map(|(prepared, found)| match found {
            Some(found) => ItemResult::Stored(stored_earlier(prepared, found)),
            None => match outcomes.next() {
                Some(Ok(delivery)) => ItemResult::Stored(stored(prepared, delivery)),
                Some(Err(error)) => failed(prepared, error),
                None => failed(prepared, PublishError::Failed("not published".into())),
            },
        })
        .collect();
    let outcome = BatchOutcome::of(&results);
    let body = BatchResponse {
        status: if outcome.all_stored() {
            "success"
        } else {
            "error"
        },
        error: outcome.message(results.len()),
        results,
    };
    let status = outcome.status();
    let mut response = with_retry_after(status, (status, Json(body)).into_response());
    if !outcome.all_stored() {
        // Some of its events were handed to Kafka: they may be stored, unconfirmed.
        response.extensions_mut().insert(MaybePublished);
    } else if all_found {
        let replayed = HeaderValue::from_static("true");
        response.headers_mut().insert(REPLAYED, replayed);
    }
    Ok(response)
}

fn failed(prepared: Prepared, error: PublishError) -> ItemResult {
    tracing::error!(
        "[PRODUCER] Could not publish {} event {}: {error}",
        prepared.event.event_type,
        prepared.event.id
    );
    ItemResult::Failed(FailedItem {
        status: "error",
        error: error.to_string(),
        event: prepared.raw,
        cause: error,
    })
}

/// What a batch's answer says, from its items' results: every one stored (201), some found the
/// queue full and the rest were stored (503: the client should retry those later), or some
/// failed otherwise (500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    Stored,
    QueueFull { failed: usize },
    Failed { failed: usize },
}

impl BatchOutcome {
    pub fn of(results: &[ItemResult]) -> Self {
        let failures = results.iter().filter_map(|r| match r {
            ItemResult::Failed(item) => Some(&item.cause),
            ItemResult::Stored(_) => None,
        });
        let (mut failed, mut only_queue_full) = (0, true);
        for cause in failures {
            failed += 1;
            only_queue_full &= matches!(cause, PublishError::QueueFull);
        }
        match failed {
            0 => BatchOutcome::Stored,
            failed if only_queue_full => BatchOutcome::QueueFull { failed },
            failed => BatchOutcome::Failed { failed },
        }
    }

    pub fn all_stored(self) -> bool {
        self == BatchOutcome::Stored
    }

    pub fn status(self) -> StatusCode {
        match self {
            BatchOutcome::Stored => StatusCode::CREATED,
            BatchOutcome::QueueFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            BatchOutcome::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The answer's `error`, for a batch of `items`.
    pub fn message(self, items: usize) -> Option<String> {
        match self {
            BatchOutcome::Stored => None,
            BatchOutcome::QueueFull { failed } => Some(format!(
                "{failed} of {items} events were not stored: the producer's queue is full"
            )),
            BatchOutcome::Failed { failed } => {
                Some(format!("{failed} of {items} events were not stored"))
            }
        }
    }
}

/// An event ready to be published: the event, its serialised form (the record's value and the
/// answer's `event`, the same bytes), its topic and its record.
struct Prepared {
    event: Event,
    raw: Box<RawValue>,
    topic: Arc<str>,
}

/// Serialises `payload`, the request's event number `index`, into its event and record. The
/// event is serialised once: the same bytes become the record's value and the response's
/// `event`.
fn prepare(
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
fn stored(prepared: Prepared, delivery: Delivery) -> PublishResponse {
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
fn stored_earlier(prepared: Prepared, found: Found) -> PublishResponse {
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
