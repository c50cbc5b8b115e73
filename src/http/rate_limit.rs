//! Per-client rate limiting of the publishing routes: a token bucket per client (GCRA). A
//! request costs one token whatever it carries, so a batch costs as much as a single event.
//! Over the limit a client is answered 429 with `Retry-After`, before the load shedder and the
//! handler.
//!
//! With `REDIS_URL` a client has one bucket for every instance: each request takes its token in
//! one atomic script (the same GCRA, on Redis' clock). While Redis cannot be reached, each
//! instance falls back to its own buckets (`governor`), with a warning and a metric: a client
//! may then get up to its limit from each instance. Without Redis there are only those.
//!
//! The client is the authenticated principal when there is one, else the peer's address (IPv6
//! by its /64, the block one host usually holds).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use metrics::Counter;
use redis::Script;
use sha2::{Digest, Sha256};

use super::client::ClientKey;
use super::error::ApiError;
use crate::config::RateLimitConfig;
use crate::shared::Redis;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::RATE_LIMIT_FALLBACKS;

/// GCRA in one step, on Redis' clock: the bucket of `KEYS[1]` is its theoretical arrival time,
/// in microseconds; `ARGV[1]` is the microseconds per token, `ARGV[2]` the burst. Returns 0 when
/// the request may go on, else the microseconds until it may.
const TAKE_TOKEN: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + period
local wait = next_tat - now - period * burst
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0
";

/// How often the fallback to the instance's own buckets is logged while it lasts.
const FALLBACK_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The buckets of every client seen recently.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
    config: RateLimitConfig,
    shared: Option<Shared>,
}

/// The buckets in Redis.
struct Shared {
    redis: Redis,
    take_token: Script,
    period_micros: f64,
    fallbacks: Counter,
    /// When the fallback was last logged, in milliseconds since `started`.
    warned_at: AtomicU64,
    started: Instant,
}

impl RateLimit {
    /// Buckets as `config` says, in Redis when there is one.
    pub fn new(config: RateLimitConfig, redis: Option<Redis>, metrics: &Metrics) -> Self {
        // The configuration keeps the rate within 1e9/s, so the period is at least 1 ns.
        let period_nanos = (1e9 / config.per_second).round().max(1.0) as u64;
        let quota = Quota::with_period(Duration::from_nanos(period_nanos))
            .unwrap_or(Quota::per_second(NonZeroU32::MAX))
            .allow_burst(config.burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            config,
            shared: redis.map(|redis| Shared {
                redis,
                take_token: Script::new(TAKE_TOKEN),
                period_micros: 1e6 / config.per_second,
                fallbacks: metrics.counter(RATE_LIMIT_FALLBACKS, &[] as &[(&str, &str)]),
                warned_at: AtomicU64::new(0),
                started: Instant::now(),
            }),
        }
    }

    /// Takes a token from `client`'s bucket in Redis, or in this instance's buckets while Redis
    /// cannot be reached (or when there is none).
    async fn take(&self, client: &ClientKey) -> Result<(), Duration> {
        let Some(shared) = &self.shared else {
            return self.check(client);
        };
        let digest = Sha256::digest(client.to_string());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let key = shared.redis.key(&format!("rate:{hex}"));
        let taken = shared
            .redis
            .eval::<u64>(&shared.take_token, |call| {
                call.key(&key)
                    .arg(shared.period_micros)
                    .arg(self.config.burst.get());
            })
            .await;
        match taken {
            Ok(0) => Ok(()),
            Ok(wait_micros) => Err(Duration::from_micros(wait_micros)),
            Err(error) => {
                shared.fallbacks.increment(1);
                let now = shared.started.elapsed().as_millis() as u64;
                let last = shared.warned_at.load(Ordering::Relaxed);
                let every = FALLBACK_WARNING_EVERY.as_millis() as u64;
                if (last == 0 || now.saturating_sub(last) >= every)
                    && shared
                        .warned_at
                        .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        "Rate limiting with this instance's own buckets: {error} (a client may get its limit from each instance meanwhile)"
                    );
                }
                self.check(client)
            }
        }
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        format!(
            "{} request(s) per second per client, bursts of {}",
            self.config.per_second, self.config.burst
        )
    }

    /// Takes a token from `client`'s bucket, or says how long until one is there.
    fn check(&self, client: &ClientKey) -> Result<(), Duration> {
        self.limiter
            .check_key(client)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Forgets the clients whose bucket is full again: they are indistinguishable from new ones.
    /// Without this the map would keep every client ever seen. The composition root calls it
    /// periodically, in the background, so that no request pays for a sweep of the whole map.
    pub fn forget_idle_clients(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Clients with a bucket in memory.
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }
}

/// The middleware: a request within its client's limit goes on; one beyond it is answered 429.
pub async fn enforce(
    State(limit): State<Arc<RateLimit>>,
    request: Request,
    next: Next,
) -> Response {
    let client = ClientKey::of(&request);
    match limit.take(&client).await {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            tracing::debug!("Rate limited {client} for {wait:?}");
            ApiError::TooManyRequests(retry_after_seconds(wait)).into_response()
        }
    }
}

/// `Retry-After` is in whole seconds: rounded up, so that a client that waits that long finds a
/// token, and at least 1.
fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn limit(per_second: f64, burst: u32) -> RateLimit {
        let config = RateLimitConfig {
            per_second,
            burst: NonZeroU32::new(burst).unwrap(),
        };
        RateLimit::new(config, None, &Metrics::new())
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(10)), 10);
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_for_the_next_token() {
        let limit = limit(0.5, 3);
        let client = ClientKey::Address("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(limit.check(&client), Ok(()));
        }
        let wait = limit.check(&client).unwrap_err();
        assert!(
            wait > Duration::from_millis(1500) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        assert_eq!(
            limit.check(&ClientKey::Address("192.0.2.2".parse().unwrap())),
            Ok(())
        );
    }

    #[test]
    fn clients_whose_bucket_refilled_are_forgotten() {
        let limit = limit(1e9, 1);
        for n in 0..100u8 {
            limit
                .check(&ClientKey::Address(IpAddr::from([192, 0, 2, n])))
                .unwrap();
        }
        assert_eq!(limit.clients(), 100);
        // A token comes back every nanosecond: a millisecond refills every bucket many times.
        std::thread::sleep(Duration::from_millis(1));
        limit.forget_idle_clients();
        assert_eq!(limit.clients(), 0);
    }
}
