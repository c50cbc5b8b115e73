//! Idempotent retries: a POST with an `Idempotency-Key` header that repeats an earlier
//! successful request (same key, same route, same body) within the window gets the earlier
//! answer again, byte for byte, and publishes nothing; the same key with a different request is
//! refused with 422, and while the first request is still running a repeat gets 409.
//!
//! How far the guarantee reaches: with `REDIS_URL`, every instance and every restart within the
//! window ([`RedisStore`]); without it, one instance for as long as it runs ([`MemoryStore`]).
//! Every attempt of a request gets the same event ids ([`Attempt`]). Only a 2xx answer is
//! remembered; an attempt that ends otherwise after handing events to Kafka may have stored
//! some, and Redis keeps its time so that the next attempt looks for them before publishing
//! (see `super::earlier`). Keys are scoped to the caller: the authenticated principal, or the
//! client's address when authentication is off; callers share the memory fairly ([`memory`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;
use uuid::Uuid;

use super::client::ClientKey;
use super::error::ApiError;
use super::extract::JsonLimits;
use crate::shared::Unavailable;

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

mod memory;
mod redis;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// Where the answers are remembered: this instance's memory, or Redis for every instance.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Claims `key` for `caller`'s request with `fingerprint`, or says what is there already.
    async fn begin(
        &self,
        caller: &ClientKey,
        key: &str,
        fingerprint: [u8; 32],
    ) -> Result<Begin, Unavailable>;

    /// Ends `claim`'s request: remembers its answer, or frees the key (keeping, where the store
    /// can, the attempt's time when its events may have been stored). A claim whose key has
    /// since been forgotten and claimed again is left alone.
    async fn finish(&self, claim: &Claim, ending: Ending);

    /// Forgets what is older than the window, when the store has to do that itself.
    fn expire(&self) {}
}

/// A successful answer as it was sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Remembered {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// What a store found for a key.
#[derive(Debug)]
pub enum Begin {
    /// The key is new and now claimed: the request runs, and its answer is remembered if it
    /// succeeds.
    Fresh(Claim),
    Replay(Remembered),
    InProgress,
    Mismatch,
}

/// A claim on a key, for the request that made it: only that request may end it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub caller: ClientKey,
    pub key: String,
    /// Tells this claim from a later one on the same key.
    pub token: u64,
    /// When it was made, ms since the epoch: its records are timed so.
    pub at: i64,
    /// The times of earlier attempts with this key and request that ended without an answer
    /// while their events may have been stored: a request that failed after handing events to
    /// Kafka, or whose instance died (its claim lapsed). Their records are looked for first.
    pub earlier: Vec<i64>,
}

/// How a claimed request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// Successfully: its answer is remembered.
    Answered(Remembered),
    /// Without publishing anything (refused, or the queue was full).
    NothingPublished,
    /// Without an answer to remember, while some of its events may have been stored.
    Unsure,
}

/// Marks an answer given after events were handed to Kafka without all being confirmed: the
/// handlers set it, so that the attempt is remembered as one whose events may exist.
#[derive(Debug, Clone, Copy)]
pub struct MaybePublished;

/// An attempt of a request with an `Idempotency-Key`, for its handler. Its events' ids derive
/// from the caller, the key and the request, so every attempt of the request has the same ids;
/// its records carry the attempt's time; and the records of the `earlier` attempts are looked
/// for before anything is published, so that what one of them stored is answered, not
/// published again.
#[derive(Debug, Clone)]
pub struct Attempt {
    seed: [u8; 32],
    /// When this attempt claimed the key, ms since the epoch.
    pub at: i64,
    pub earlier: Arc<[i64]>,
}

impl Attempt {
    /// The id of the request's event number `index` (from 0): a UUID (version 8) from the
    /// request's digest, the same on every attempt.
    pub fn event_id(&self, index: usize) -> Uuid {
        let digest = Sha256::new()
            .chain_update(self.seed)
            .chain_update((index as u64).to_be_bytes())
            .finalize();
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::new_v8(bytes)
    }
}

/// Milliseconds since the epoch, now.
fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Frees the key if the request ends without an answer to remember, including when its future
/// is dropped (the client went away, or the request timed out).
struct Pending {
    store: Arc<dyn Store>,
    claim: Option<Claim>,
}

impl Pending {
    /// Ends the claim now.
    async fn finish(mut self, ending: Ending) {
        if let Some(claim) = self.claim.take() {
            self.store.finish(&claim, ending).await;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            let store = self.store.clone();
            // Cut off mid-way: what it handed to Kafka may be stored.
            tokio::spawn(async move { store.finish(&claim, Ending::Unsure).await });
        }
    }
}

/// The middleware on the publishing routes.
/// The middleware's state: the store, and the count of requests it could not serve.
#[derive(Clone)]
pub struct Idempotency {
    pub store: Arc<dyn Store>,
    pub unavailable: metrics::Counter,
}

pub async fn idempotency(
    State(Idempotency { store, unavailable }): State<Idempotency>,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = request.headers().get(&IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let key = match valid_key(key) {
        Ok(key) => key.to_owned(),
        Err(error) => return error.into_response(),
    };
    let caller = ClientKey::of(&request);
    let limit = request
        .extensions()
        .get::<JsonLimits>()
        .map_or(usize::MAX, |limit| limit.body_bytes);
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, limit).await {
        Ok(body) => body,
        Err(_) => return ApiError::PayloadTooLarge(limit).into_response(),
    };
    let fingerprint = fingerprint(parts.method.as_str(), parts.uri.path(), &body);
    let claim = match store.begin(&caller, &key, fingerprint).await {
        Ok(Begin::Fresh(claim)) => claim,
        Ok(Begin::Replay(answer)) => return replay(answer),
        Ok(Begin::InProgress) => return ApiError::IdempotencyKeyInProgress.into_response(),
        Ok(Begin::Mismatch) => return ApiError::IdempotencyKeyReused.into_response(),
        // Never a silent duplicate: without the store, a keyed request is not served.
        Err(error) => {
            tracing::warn!("Idempotency-Key request refused: {error}");
            unavailable.increment(1);
            return ApiError::IdempotencyUnavailable.into_response();
        }
    };
    let attempt = Attempt {
        seed: Sha256::new()
            .chain_update(caller.to_string())
            .chain_update(b"\n")
            .chain_update(&key)
            .chain_update(b"\n")
            .chain_update(fingerprint)
            .finalize()
            .into(),
        at: claim.at,
        earlier: claim.earlier.clone().into(),
    };
    let pending = Pending {
        store: store.clone(),
        claim: Some(claim),
    };
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(attempt);
    let response = next.run(request).await;
    if !response.status().is_success() {
        let ending = match response.extensions().get::<MaybePublished>() {
            Some(_) => Ending::Unsure,
            None => Ending::NothingPublished,
        };
        pending.finish(ending).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    // Our own handler's JSON, already in memory: reading it whole cannot fail or grow unbounded.
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        return ApiError::Internal.into_response();
    };
    let answer = Remembered {
        status: parts.status,
        content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
        body: body.clone(),
    };
    pending.finish(Ending::Answered(answer)).await;
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
