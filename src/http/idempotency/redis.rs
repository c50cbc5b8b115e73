//! The remembered answers in Redis, for every instance and past every restart.
//!
//! A key is one hash, `<prefix>idempotency:<digest of caller and key>`, kept for the window. It
//! holds the request's fingerprint, and either the answer (status, content type, body) or a
//! claim: a token, a lease (until when the claim holds, on Redis' clock) and `tries`, the times
//! of the attempts whose events may have been stored. Each step is one atomic script:
//!
//! - BEGIN creates the hash and claims it, or reports the answer (a replay), a different request
//!   (mismatch), or a claim still held (409). A claim that lapsed (its instance died: the lease
//!   is the request timeout and a grace) or was left unsure (a 500 after events were handed to
//!   Kafka) is claimed again, and the attempt learns the earlier tries: their records are looked
//!   for before anything is published, so what they stored is answered, not published again.
//! - REMEMBER stores the answer of the claim that holds the token, and drops the claim.
//! - RELEASE ends a claim without an answer: the hash goes when nothing may have been published
//!   by any try, else the claim alone goes and the tries stay.
//!
//! Two requests with the same key on two instances: one claims, the other meets the claim (409)
//! or the answer (a replay), so the event is published once.

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use redis::Script;
use sha2::{Digest, Sha256};

use super::{Begin, Claim, Ending, Remembered, Store};
use crate::http::client::ClientKey;
use crate::shared::{Redis, Unavailable};

/// The most earlier tries a key keeps: a client that retries a failing request without end
/// cannot make its hash grow.
const MAX_TRIES: usize = 16;

/// ARGV: fingerprint, token, lease ms, window ms, most tries. Returns `fresh` with this attempt's
/// time and the earlier tries (comma-separated), `mismatch`, `in_progress`, or `replay` with the
/// answer's status, content type and body.
const BEGIN: &str = r"
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local found = redis.call('HMGET', KEYS[1], 'fp', 'status', 'ctype', 'body', 'lease', 'tries')
if found[1] and found[1] ~= ARGV[1] then return {'mismatch'} end
if found[2] then return {'replay', found[2], found[3] or '', found[4] or ''} end
if found[5] and tonumber(found[5]) > now then return {'in_progress'} end
local earlier = found[6] or ''
local tries = {}
for try in string.gmatch(earlier, '[^,]+') do table.insert(tries, try) end
table.insert(tries, string.format('%d', now))
while #tries > tonumber(ARGV[5]) do table.remove(tries, 1) end
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'token', ARGV[2],
  'lease', string.format('%d', now + tonumber(ARGV[3])), 'tries', table.concat(tries, ','))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]))
return {'fresh', string.format('%d', now), earlier}
";

/// ARGV: token, status, content type, body, window ms.
const REMEMBER: &str = r"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'ctype', ARGV[3], 'body', ARGV[4])
redis.call('HDEL', KEYS[1], 'token', 'lease', 'tries')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// ARGV: token, `1` when the attempt's events may have been stored.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local tries = redis.call('HGET', KEYS[1], 'tries') or ''
if ARGV[2] == '0' and not string.find(tries, ',') then return redis.call('DEL', KEYS[1]) end
redis.call('HDEL', KEYS[1], 'token', 'lease')
return 1
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
                    .arg(millis(self.lease))
                    .arg(millis(self.window))
                    .arg(MAX_TRIES);
            })
            .await?;
        let unreadable = || Unavailable("the idempotency script gave an unreadable answer".into());
        match found.first().map(Vec::as_slice) {
            Some(b"fresh") if found.len() == 3 => Ok(Begin::Fresh(Claim {
                caller: caller.clone(),
                key: key.to_owned(),
                token,
                at: millis_in(&found[1]).ok_or_else(unreadable)?,
                earlier: found[2]
                    .split(|b| *b == b',')
                    .filter(|try_at| !try_at.is_empty())
                    .map(millis_in)
                    .collect::<Option<_>>()
                    .ok_or_else(unreadable)?,
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

    async fn finish(&self, claim: &Claim, ending: Ending) {
        let hash = self.hash_key(&claim.caller, &claim.key);
        let outcome = match ending {
            Ending::Answered(answer) => {
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
            Ending::NothingPublished | Ending::Unsure => {
                let unsure = matches!(ending, Ending::Unsure);
                self.redis
                    .eval::<i64>(&self.release, |call| {
                        call.key(&hash)
                            .arg(claim.token)
                            .arg(if unsure { "1" } else { "0" });
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

/// A time in ms, as the scripts write it.
fn millis_in(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A token no other claim has: a random number (uuid's generator, already at hand).
fn rand_token() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}
