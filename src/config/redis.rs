//! The state several instances share, in Redis: idempotency keys and rate-limit buckets. Without
//! `REDIS_URL` that state stays in each instance's memory.

use std::time::Duration;

use anyhow::bail;
use secrecy::ExposeSecret;

use super::env::Env;
use super::security::Secret;

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `REDIS_URL`: `redis://[[user]:password@]host[:port][/db]`. It may hold a password, so it
    /// is kept as a secret.
    pub url: Secret,
    /// `REDIS_KEY_PREFIX`: prepended to every key the service writes (default
    /// `events-service:`), so that several deployments can share one Redis.
    pub key_prefix: String,
    /// `REDIS_TIMEOUT_MS`: the longest one Redis operation may take before it counts as failed
    /// (default 250 ms): a Redis that hangs must not hang requests.
    pub timeout: Duration,
}

pub(super) fn redis_config(env: &Env) -> anyhow::Result<Option<RedisConfig>> {
    let Some(url) = env.optional("REDIS_URL") else {
        return Ok(None);
    };
    let url = Secret::from(url);
    if !url.expose_secret().starts_with("redis://") {
        // The URL may hold a password: it is not repeated.
        bail!("REDIS_URL must be a redis:// URL (TLS, rediss://, is not supported)");
    }
    Ok(Some(RedisConfig {
        url,
        key_prefix: env.get("REDIS_KEY_PREFIX", "events-service:".to_owned())?,
        timeout: env.millis("REDIS_TIMEOUT_MS", 250)?,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::tests::config;
    use secrecy::ExposeSecret;

    #[test]
    fn without_a_url_state_stays_in_memory() {
        assert!(config(&[]).unwrap().redis.is_none());
        assert!(
            config(&[("REDIS_KEY_PREFIX", "x:")])
                .unwrap()
                .redis
                .is_none()
        );
    }

    #[test]
    fn a_url_turns_shared_state_on_and_its_password_stays_out_of_messages() {
        let c = config(&[("REDIS_URL", "redis://:hunter2@cache:6379/1")]).unwrap();
        let redis = c.redis.unwrap();
        assert_eq!(redis.url.expose_secret(), "redis://:hunter2@cache:6379/1");
        assert_eq!(redis.key_prefix, "events-service:");
        assert_eq!(redis.timeout.as_millis(), 250);
        assert!(!format!("{redis:?}").contains("hunter2"));
        let err = config(&[("REDIS_URL", "rediss://:hunter2@cache")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("REDIS_URL") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
