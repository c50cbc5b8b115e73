//! The remembered answers in Redis, for every instance and past every restart.
//!
//! A key is one hash, `<prefix>idempotency:<digest of caller and key>`. Claiming it is one
//! atomic script: it creates the hash with the request's fingerprint and a token of its own,
//! expiring after a lease (the request timeout and a grace), or reports what is there. The
//! request that holds the token then either stores its answer (status, content type, body, the
//! window as its expiry) or deletes the claim; a claim whose instance died expires with its
//! lease, and a retry may go on. Two requests with the same key on two instances: one claims,
//! the other meets the claim (409) or the answer (a replay), so the event is published once.

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use redis::Script;
use sha2::{Digest, Sha256};

use super::{Begin, Claim, Remembered, Store};
use crate::http::client::ClientKey;
use crate::shared::{Redis, Unavailable};

/// Claims a key, or returns what it holds: `fresh`, `mismatch`, `in_progress`, or `replay` with
/// the answer's status, content type and body.
const BEGIN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'token', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'fresh'}
end
local found = redis.call('HMGET', KEYS[1], 'fp', 'status', 'ctype', 'body')
if found[1] ~= ARGV[1] then return {'mismatch'} end
if not found[2] then return {'in_progress'} end
return {'replay', found[2], found[3] or '', found[4] or ''}
";

/// Stores the answer of the claim holding the token, for the window.
const REMEMBER: &str = r"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'ctype', ARGV[3], 'body', ARGV[4])
redis.call('HDEL', KEYS[1], 'token')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// Deletes the claim holding the token.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

pub struct RedisStore {
    redis: Redis,
    window: Duration,
    lease: Duration,
    begin: Script,
    remember: Script,
    release: Script,
}

impl RedisStore {
    /// Answers are kept for `window`; a claim whose request never ends, for `lease`.
    pub fn new(redis: Redis, window: Duration, lease: Duration) -> Self {
        Self {
            redis,
            window,
            lease,
            begin: Script::new(BEGIN),
            remember: Script::new(REMEMBER),
            release: Script::new(RELEASE),
        }
    }

    /// The hash of `caller`'s `key`: a digest, so that any principal and key make a short key
    /// of safe characters, and callers never meet.
    fn hash_key(&self, caller: &ClientKey, key: &str) -> String {
        let digest = Sha256::new()
            .chain_update(caller.to_string())
            .chain_update(b"\n")
            .chain_update(key)
            .finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.redis.key(&format!("idempotency:{hex}"))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[async_trait]
impl Store for RedisStore {
    async fn begin(
        &self,
        caller: &ClientKey,
        key: &str,
        fingerprint: [u8; 32],
    ) -> Result<Begin, Unavailable> {
        let fingerprint: String = fingerprint.iter().map(|b| format!("{b:02x}")).collect();
        let token = rand_token();
        let hash = self.hash_key(caller, key);
        let found: Vec<Vec<u8>> = self
            .redis
            .eval(&self.begin, |call| {
                call.key(&hash)
                    .arg(&fingerprint)
                    .arg(token)
                    .arg(millis(self.lease));
            })
            .await?;
        match found.first().map(Vec::as_slice) {
            Some(b"fresh") => Ok(Begin::Fresh(Claim {
                caller: caller.clone(),
                key: key.to_owned(),
                token,
            })),
            Some(b"mismatch") => Ok(Begin::Mismatch),
            Some(b"in_progress") => Ok(Begin::InProgress),
            Some(b"replay") if found.len() == 4 => {
                let status = std::str::from_utf8(&found[1])
                    .ok()
                    .and_then(|s| s.parse::<u16>().ok())
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or_else(|| Unavailable("a remembered answer is unreadable".to_owned()))?;
                let content_type = (!found[2].is_empty())
                    .then(|| HeaderValue::from_bytes(&found[2]).ok())
                    .flatten();
                Ok(Begin::Replay(Remembered {
                    status,
                    content_type,
                    body: Bytes::from(found[3].clone()),
                }))
            }
            _ => Err(Unavailable(
                "the idempotency script gave an unexpected answer".to_owned(),
            )),
        }
    }

    async fn finish(&self, claim: &Claim, answer: Option<Remembered>) {
        let hash = self.hash_key(&claim.caller, &claim.key);
        let outcome = match answer {
            Some(answer) => {
                let content_type = answer
                    .content_type
                    .as_ref()
                    .map_or(&[][..], HeaderValue::as_bytes);
                self.redis
                    .eval::<i64>(&self.remember, |call| {
                        call.key(&hash)
                            .arg(claim.token)
                            .arg(answer.status.as_u16())
                            .arg(content_type)
                            .arg(answer.body.as_ref())
                            .arg(millis(self.window));
                    })
                    .await
            }
            None => {
                self.redis
                    .eval::<i64>(&self.release, |call| {
                        call.key(&hash).arg(claim.token);
                    })
                    .await
            }
        };
        // The claim then lapses with its lease: a retry is refused with 409 until then.
        if let Err(error) = outcome {
            tracing::warn!("Could not end an Idempotency-Key claim in Redis: {error}");
        }
    }
}

/// A token no other claim has: a random number (uuid's generator, already at hand).
fn rand_token() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}
