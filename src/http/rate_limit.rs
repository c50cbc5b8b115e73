//! Per-client rate limiting of the publishing routes: a token bucket per client (GCRA, from
//! `governor`). A request costs one token whatever it carries, so a batch costs as much as a
//! single event. Over the limit a client is answered 429 with `Retry-After`, before the load
//! shedder and the handler.
//!
//! The client is the authenticated [`Principal`] when there is one, else the peer's address
//! (IPv6 by its /64, the block one host usually holds).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::client::ClientKey;
use super::error::ApiError;
use crate::config::RateLimitConfig;

/// The buckets of every client seen recently.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
    config: RateLimitConfig,
}

impl RateLimit {
    pub fn new(config: RateLimitConfig) -> Self {
        // The configuration keeps the rate within 1e9/s, so the period is at least 1 ns.
        let period_nanos = (1e9 / config.per_second).round().max(1.0) as u64;
        let quota = Quota::with_period(Duration::from_nanos(period_nanos))
            .unwrap_or(Quota::per_second(NonZeroU32::MAX))
            .allow_burst(config.burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            config,
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
    match limit.check(&client) {
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
        RateLimit::new(RateLimitConfig {
            per_second,
            burst: NonZeroU32::new(burst).unwrap(),
        })
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
