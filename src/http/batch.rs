//! The batch route: every item validated before any is published, the items published
//! together, and the batch's status decided from its items' results ([`BatchOutcome`]).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::{IntoResponses, ToSchema};

use super::AppState;
use super::earlier::{Identity, find_earlier};
use super::error::{ApiError, ErrorBody, with_retry_after};
use super::events::{GuardResponses, Prepared, PublishResponse, prepare, stored, stored_earlier};
use super::extract::JsonArray;
use super::idempotency::{Attempt, IdempotencyKeyHeader, MaybePublished, REPLAYED};
use crate::domain::{BatchItem, Event, Timestamp, parse_batch};
use crate::kafka::{Found, OutgoingRecord, PublishError};

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
