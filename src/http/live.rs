//! The live view over HTTP: processed events as server-sent events, and the statistics.
//!
//! `GET /api/events/stream` sends each event the built-in consumers process, as they process it,
//! filtered by `type` and `action`. Each SSE id is the stream's [`Cursor`] (the last offset it
//! has seen of each partition); a client that reconnects with `Last-Event-ID`, on any instance,
//! first gets the kept events it has not seen (the last [`crate::live::LiveView`] keeps). A client that falls too far behind is dropped rather than
//! slowing the consumers, one that stops reading is disconnected by the write timeout (see
//! [`super::server`]), and at most `STREAM_MAX_CLIENTS` streams are open at once,
//! `STREAM_MAX_PER_CLIENT` of them per client.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt, stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;

use super::AppState;
use super::client::ClientKey;
use super::error::{ApiError, ErrorBody};
use crate::domain::EventType;
use crate::live::{Cursor, LiveEvent, LiveView, StatsSnapshot};
use crate::support::lock;

/// What the live routes share.
#[derive(Clone)]
pub struct Live {
    pub view: Arc<LiveView>,
    /// The streams open now.
    pub stream_slots: Arc<StreamSlots>,
    /// Cancelled at shutdown, which ends the open streams.
    pub closing: CancellationToken,
}

/// How many streams may be open: in all, and per client.
pub struct StreamSlots {
    total: Arc<Semaphore>,
    per_client: Mutex<HashMap<ClientKey, usize>>,
    max_per_client: usize,
}

impl StreamSlots {
    pub fn new(max_total: usize, max_per_client: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(max_total)),
            per_client: Mutex::default(),
            max_per_client,
        }
    }

    /// A slot for one more stream of `client`, held until the stream ends.
    fn take(self: &Arc<Self>, client: ClientKey) -> Result<StreamSlot, ApiError> {
        let mut per_client = lock(&self.per_client);
        let open = per_client.entry(client.clone()).or_default();
        if *open >= self.max_per_client {
            return Err(ApiError::TooManyStreamsFromClient(self.max_per_client));
        }
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::TooManyStreams)?;
        *open += 1;
        Ok(StreamSlot {
            _total: total,
            slots: self.clone(),
            client,
        })
    }
}

/// One open stream's slot.
struct StreamSlot {
    _total: OwnedSemaphorePermit,
    slots: Arc<StreamSlots>,
    client: ClientKey,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut per_client = lock(&self.slots.per_client);
        if let Some(open) = per_client.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// Which events a stream sends; each list is comma-separated, and absent means all.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamFilter {
    /// Event types to send: `movie`, `user`, `payment`.
    #[serde(rename = "type")]
    #[param(rename = "type", example = "movie,payment")]
    types: Option<String>,
    /// Actions (a payment's statuses) to send, e.g. `viewed,completed`.
    #[param(example = "viewed,completed")]
    action: Option<String>,
}

/// A filter, checked: types must be known.
struct Matcher {
    types: Option<Vec<EventType>>,
    actions: Option<Vec<String>>,
}

impl Matcher {
    fn new(filter: StreamFilter) -> Result<Self, ApiError> {
        let list = |value: Option<String>| {
            value.map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        let types = list(filter.types)
            .map(|names| {
                names
                    .iter()
                    .map(|name| {
                        EventType::from_name(name).ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "unknown event type {name:?} in `type`: use movie, user or payment"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Self {
            types,
            actions: list(filter.action),
        })
    }

    fn matches(&self, event: &LiveEvent) -> bool {
        let type_allowed = self
            .types
            .as_ref()
            .is_none_or(|types| event.event_type.is_some_and(|t| types.contains(&t)));
        let action_allowed = self
            .actions
            .as_ref()
            .is_none_or(|actions| actions.iter().any(|a| a == event.action_name()));
        type_allowed && action_allowed
    }
}

/// Stream processed events (server-sent events).
///
/// Each message is `event: processed`, an `id` naming the last offset the stream has seen of
/// each partition (`<topic>-<partition>-<offset>`, comma-separated), and the event as JSON in
/// `data`. Send `Last-Event-ID` to resume, on any instance, with the kept events not seen yet. A client that falls more than the backlog behind is disconnected.
#[utoipa::path(
    get, path = "/api/events/stream", tag = "live",
    params(StreamFilter),
    responses(
        (status = 200, description = "A stream of processed events", content_type = "text/event-stream", body = String),
        (status = 400, description = "An unknown type in the filter", body = ErrorBody),
        (status = 429, description = "This client has as many streams open as one client may (`STREAM_MAX_PER_CLIENT`)", body = ErrorBody),
        (status = 503, description = "Too many streams are open; retry after `Retry-After`", body = ErrorBody),
    )
)]
pub async fn stream_events(
    State(state): State<AppState>,
    client: ClientKey,
    Query(filter): Query<StreamFilter>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let matcher = Arc::new(Matcher::new(filter)?);
    let permit = state.live.stream_slots.take(client)?;
    let mut cursor = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(Cursor::parse)
        .unwrap_or_default();
    let (kept, receiver) = state.live.view.follow(&cursor);
    let live = stream::unfold((receiver, permit), |(mut receiver, permit)| async move {
        match receiver.recv().await {
            Ok(event) => Some((event, (receiver, permit))),
            Err(RecvError::Lagged(missed)) => {
                tracing::info!("[STREAM] A client fell {missed} events behind and was dropped");
                None
            }
            Err(RecvError::Closed) => None,
        }
    });
    let events = stream::iter(kept)
        .chain(live)
        // Each event once, though it may be kept and broadcast both, or come again after the
        // reader's restart; the cursor moves past filtered-out events too.
        .filter_map(move |event| {
            let send = !cursor.has_seen(&event) && {
                cursor.advance(&event);
                matcher.matches(&event)
            };
            std::future::ready(send.then(|| Ok(to_sse(&event, &cursor))))
        })
        // Open streams must not hold up a graceful shutdown.
        .take_until(state.live.closing.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn to_sse(event: &LiveEvent, cursor: &Cursor) -> SseEvent {
    let data = serde_json::to_string(&**event).unwrap_or_else(|_| "{}".to_owned());
    SseEvent::default()
        .event("processed")
        .id(cursor.encode())
        .data(data)
}

/// What the built-in consumers have processed since the service started.
#[utoipa::path(
    get, path = "/api/events/stats", tag = "live",
    responses((status = 200, body = StatsSnapshot))
)]
pub async fn stats(State(state): State<AppState>) -> Json<StatsSnapshot> {
    Json(state.live.view.stats())
}
