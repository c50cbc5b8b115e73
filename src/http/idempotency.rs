//! Idempotent retries: a POST with an `Idempotency-Key` header that repeats an earlier
//! successful request (same key, same route, same body) within the window gets the earlier
//! answer again, byte for byte, and publishes nothing; the same key with a different request is
//! refused with 422, and while the first request is still running a repeat gets 409.
//!
//! How far the guarantee reaches: one service instance, for as long as it runs. Keys live in
//! this process's memory, so a repeat that reaches another instance, or this one after a
//! restart, publishes again. Only a 2xx answer is remembered: after a 4xx or 5xx the key is free
//! and a retry is a new attempt (a 500 after a delivery timeout may still have been written by
//! Kafka, so that retry can duplicate the event; consumers are at-least-once anyway). Keys are
//! scoped to the authenticated caller when authentication is on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::auth::Principal;
use super::error::ApiError;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer that repeats a remembered one.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// The header, for the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Described, never constructed: the middleware reads the header itself.
pub struct IdempotencyKeyHeader {
    /// Makes retrying safe: a repeat of a successful request with the same key and body gets
    /// the first answer again (header `Idempotent-Replayed: true`) and publishes nothing; the
    /// same key with another request is a 422.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

/// The remembered answers, bounded in time (`window`) and memory (`max_bytes`).
pub struct IdempotencyStore {
    window: Duration,
    max_bytes: usize,
    body_limit: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<String, Entry>,
    /// Keys in the order they were first used, which is also the order they expire in.
    order: VecDeque<(Instant, String)>,
    /// What the keys, queue items and remembered bodies take, roughly.
    bytes: usize,
}

/// The bookkeeping a key costs beyond its text and its answer: map and queue slots, hash.
const ENTRY_OVERHEAD_BYTES: usize = 128;

struct Entry {
    created: Instant,
    fingerprint: [u8; 32],
    answer: Option<Remembered>,
}

/// A successful answer as it was sent.
#[derive(Clone)]
struct Remembered {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

enum Begin {
    /// The key is new: the request runs, and its answer is remembered if it succeeds.
    Fresh,
    Replay(Remembered),
    InProgress,
    Mismatch,
}

impl IdempotencyStore {
    /// Remembers answers for `window`, in at most about `max_bytes` of memory; request bodies
    /// over `body_limit` are refused as they are everywhere else.
    pub fn new(window: Duration, max_bytes: usize, body_limit: usize) -> Self {
        Self {
            window,
            max_bytes,
            body_limit,
            inner: Mutex::default(),
        }
    }

    fn begin(&self, key: &str, fingerprint: [u8; 32], now: Instant) -> Begin {
        let mut entries = self.lock();
        entries.expire(now, self.window, self.max_bytes);
        if let Some(entry) = entries.by_key.get(key) {
            return match (&entry.answer, entry.fingerprint == fingerprint) {
                (_, false) => Begin::Mismatch,
                (Some(answer), true) => Begin::Replay(answer.clone()),
                (None, true) => Begin::InProgress,
            };
        }
        entries.by_key.insert(
            key.to_owned(),
            Entry {
                created: now,
                fingerprint,
                answer: None,
            },
        );
        entries.order.push_back((now, key.to_owned()));
        entries.bytes += 2 * key.len() + ENTRY_OVERHEAD_BYTES;
        Begin::Fresh
    }

    /// Ends the request that began `key` at `began`; a key that has since been forgotten and
    /// begun again belongs to another request and is left alone.
    fn finish(&self, key: &str, began: Instant, answer: Option<Remembered>) {
        let mut guard = self.lock();
        let entries = &mut *guard;
        let Some(entry) = entries.by_key.get_mut(key).filter(|e| e.created == began) else {
            return;
        };
        match answer {
            Some(answer) => {
                entries.bytes += answer.body.len();
                entry.answer = Some(answer);
            }
            // Its queue item stays behind, counted, and is dropped when it comes up.
            None => {
                entries.by_key.remove(key);
                entries.bytes -= key.len();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the maps half-updated in a harmful way.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Entries {
    /// Forgets keys older than the window, and the oldest keys while memory is over its bound.
    fn expire(&mut self, now: Instant, window: Duration, max_bytes: usize) {
        while let Some((created, key)) = self.order.front() {
            let current = self.by_key.get(key).is_some_and(|e| e.created == *created);
            if current && now.duration_since(*created) < window && self.bytes < max_bytes {
                break;
            }
            if current && let Some(entry) = self.by_key.remove(key) {
                self.bytes -= key.len() + entry.answer.map_or(0, |a| a.body.len());
            }
            self.bytes -= key.len() + ENTRY_OVERHEAD_BYTES;
            self.order.pop_front();
        }
    }
}

/// Releases the key if the request ends without an answer to remember, including when its
/// future is dropped (the client went away, or the request timed out).
struct Pending<'a> {
    store: &'a IdempotencyStore,
    key: String,
    began: Instant,
    answer: Option<Remembered>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.store.finish(&self.key, self.began, self.answer.take());
    }
}

/// The middleware on the publishing routes.
pub async fn idempotency(
    State(store): State<Arc<IdempotencyStore>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = request.headers().get(&IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let key = match valid_key(key) {
        Ok(key) => scoped(request.extensions().get::<Principal>(), key),
        Err(error) => return error.into_response(),
    };
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, store.body_limit).await {
        Ok(body) => body,
        Err(_) => return ApiError::PayloadTooLarge(store.body_limit).into_response(),
    };
    let fingerprint = fingerprint(parts.method.as_str(), parts.uri.path(), &body);
    let began = Instant::now();
    match store.begin(&key, fingerprint, began) {
        Begin::Replay(answer) => return replay(answer),
        Begin::InProgress => return ApiError::IdempotencyKeyInProgress.into_response(),
        Begin::Mismatch => return ApiError::IdempotencyKeyReused.into_response(),
        Begin::Fresh => {}
    }
    let mut pending = Pending {
        store: &store,
        key,
        began,
        answer: None,
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Our own handler's JSON, already in memory: reading it whole cannot fail or grow unbounded.
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        return ApiError::Internal.into_response();
    };
    pending.answer = Some(Remembered {
        status: parts.status,
        content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
        body: body.clone(),
    });
    Response::from_parts(parts, Body::from(body))
}

fn valid_key(value: &HeaderValue) -> Result<&str, ApiError> {
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::BadRequest(format!(
            "the Idempotency-Key header must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    // Visible ASCII is valid UTF-8.
    value.to_str().map_err(|_| ApiError::Internal)
}

/// Keys of different callers never meet.
fn scoped(principal: Option<&Principal>, key: &str) -> String {
    match principal {
        Some(principal) => format!("{principal}\n{key}"),
        None => key.to_owned(),
    }
}

/// What makes two requests "the same": the route and the exact body bytes.
fn fingerprint(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [method.as_bytes(), b" ", path.as_bytes(), b"\n", body] {
        hash.update(part);
    }
    hash.finalize().into()
}

fn replay(answer: Remembered) -> Response {
    let mut response = (answer.status, answer.body).into_response();
    let headers = response.headers_mut();
    if let Some(content_type) = answer.content_type {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &'static str) -> Remembered {
        Remembered {
            status: StatusCode::CREATED,
            content_type: None,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn store() -> IdempotencyStore {
        // Room for three keys of one letter with five-byte answers.
        IdempotencyStore::new(
            Duration::from_secs(60),
            3 * (ENTRY_OVERHEAD_BYTES + 7),
            1024,
        )
    }

    #[test]
    fn a_remembered_answer_is_replayed_for_the_same_fingerprint_only() {
        let (store, now) = (store(), Instant::now());
        assert!(matches!(store.begin("k", [1; 32], now), Begin::Fresh));
        assert!(matches!(store.begin("k", [1; 32], now), Begin::InProgress));
        store.finish("k", now, Some(answer("first")));
        match store.begin("k", [1; 32], now) {
            Begin::Replay(remembered) => assert_eq!(remembered.body, "first"),
            _ => panic!("expected a replay"),
        }
        assert!(matches!(store.begin("k", [2; 32], now), Begin::Mismatch));
    }

    #[test]
    fn a_failed_request_frees_its_key() {
        let (store, now) = (store(), Instant::now());
        assert!(matches!(store.begin("k", [1; 32], now), Begin::Fresh));
        store.finish("k", now, None);
        assert!(matches!(store.begin("k", [2; 32], now), Begin::Fresh));
    }

    #[test]
    fn keys_are_forgotten_after_the_window() {
        let (store, now) = (store(), Instant::now());
        store.begin("k", [1; 32], now);
        store.finish("k", now, Some(answer("first")));
        let later = now + Duration::from_secs(61);
        assert!(matches!(store.begin("k", [2; 32], later), Begin::Fresh));
    }

    #[test]
    fn the_oldest_keys_make_room_when_memory_is_full() {
        let (store, now) = (store(), Instant::now());
        for key in ["a", "b", "c", "d"] {
            assert!(matches!(store.begin(key, [1; 32], now), Begin::Fresh));
            store.finish(key, now, Some(answer("12345")));
        }
        assert!(matches!(store.begin("a", [2; 32], now), Begin::Fresh));
        assert!(matches!(store.begin("d", [2; 32], now), Begin::Mismatch));
        assert!(store.lock().by_key.len() <= 3);
        assert!(store.lock().bytes <= 3 * (ENTRY_OVERHEAD_BYTES + 7));
    }

    #[test]
    fn a_key_reused_after_a_failure_is_not_evicted_by_its_old_place_in_line() {
        let (store, now) = (store(), Instant::now());
        store.begin("k", [1; 32], now);
        store.finish("k", now, None);
        let later = now + Duration::from_secs(30);
        store.begin("k", [1; 32], later);
        store.finish("k", later, Some(answer("second")));
        // The first use's queue item is older than the window; the key's current entry is not.
        let after_first_window = now + Duration::from_secs(61);
        assert!(matches!(
            store.begin("k", [1; 32], after_first_window),
            Begin::Replay(_)
        ));
    }

    #[test]
    fn a_request_whose_key_was_forgotten_does_not_finish_its_successor() {
        let (store, now) = (store(), Instant::now());
        store.begin("k", [1; 32], now);
        let later = now + Duration::from_secs(61);
        assert!(matches!(store.begin("k", [2; 32], later), Begin::Fresh));
        store.finish("k", now, None);
        assert!(matches!(
            store.begin("k", [2; 32], later),
            Begin::InProgress
        ));
    }

    #[test]
    fn keys_must_be_visible_ascii() {
        for bad in ["", "has space", &"x".repeat(256)] {
            assert!(
                valid_key(&HeaderValue::from_str(bad).unwrap()).is_err(),
                "{bad:?}"
            );
        }
        assert!(valid_key(&HeaderValue::from_static("order-42_retry:1")).is_ok());
    }
}
