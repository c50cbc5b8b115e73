//! Earlier attempts of a request with an `Idempotency-Key`: the ids its events have on every
//! attempt, the time its records carry, and what earlier attempts whose outcome is unknown
//! stored (see [`super::idempotency`] and [`crate::kafka::Lookup`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::idempotency::Attempt;
use crate::kafka::Found;

/// Who the events of a request are: an attempt under a key, or a request without one.
pub struct Identity(Option<Attempt>);

impl Identity {
    pub fn of(attempt: Option<Extension<Attempt>>) -> Self {
        Self(attempt.map(|Extension(attempt)| attempt))
    }

    /// The id of the request's event number `index`: the same on every attempt under a key,
    /// else a fresh one.
    pub fn event_id(&self, index: usize) -> Uuid {
        self.0
            .as_ref()
            .map_or_else(Uuid::new_v4, |attempt| attempt.event_id(index))
    }

    /// The time an attempt's records carry, for a later attempt to find them by.
    pub fn record_time(&self) -> Option<i64> {
        self.0.as_ref().map(|attempt| attempt.at)
    }
}

/// Of `wanted` (each event's topic and id), those that earlier attempts of the request stored.
pub async fn find_earlier(
    state: &AppState,
    identity: &Identity,
    wanted: &[(Arc<str>, Uuid)],
) -> Result<HashMap<Uuid, Found>, ApiError> {
    let Some(attempt) = identity.0.as_ref().filter(|a| !a.earlier.is_empty()) else {
        return Ok(HashMap::new());
    };
    let mut by_topic: HashMap<Arc<str>, Vec<Uuid>> = HashMap::new();
    for (topic, id) in wanted {
        by_topic.entry(topic.clone()).or_default().push(*id);
    }
    let mut found = HashMap::new();
    for (topic, ids) in by_topic {
        let attempts = attempt.earlier.to_vec();
        found.extend(state.publisher.find(topic, ids, attempts).await?);
    }
    Ok(found)
}
