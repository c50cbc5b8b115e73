//! State several instances of the service share, in Redis: the idempotency answers and the
//! rate-limit buckets live there when `REDIS_URL` is set, so that a retry or a client meets the
//! same state on every instance, and after a restart.
//!
//! One connection (redis' connection manager, which reconnects by itself) serves every request;
//! every operation is bounded by `REDIS_TIMEOUT_MS`, so a Redis that hangs fails requests fast
//! rather than holding them. A background task connects (at start-up Redis may not be up yet),
//! pings, and publishes what it found for health.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics::Counter;
use redis::aio::ConnectionManager;
use redis::{Client, FromRedisValue, Script, ScriptInvocation};
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::sync::{OnceCell, watch};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::config::RedisConfig;
use crate::domain::Timestamp;
use crate::support::sleep_or_stop;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::REDIS_FAILURES;

/// What the last check of Redis found.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RedisStatus {
    /// Whether a PING was answered.
    pub reachable: bool,
    /// Why the last check failed, if it did.
    pub last_error: Option<String>,
    /// When the last check finished; absent before the first.
    pub checked_at: Option<Timestamp>,
}

/// Redis could not be asked (not connected, an error, or no answer within the timeout).
#[derive(Debug, Clone, thiserror::Error)]
#[error("Redis is unavailable: {0}")]
pub struct Unavailable(pub String);

/// The shared state's store, cheap to clone.
#[derive(Clone)]
pub struct Redis(Arc<Inner>);

struct Inner {
    client: Client,
    connection: OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    status: watch::Sender<RedisStatus>,
    failures: Counter,
}

impl Redis {
    /// A store on `config`'s Redis; it connects in the background ([`Redis::keep_connected`]).
    pub fn new(config: &RedisConfig, metrics: &Metrics) -> anyhow::Result<Self> {
        let client =
            Client::open(config.url.expose_secret()).context("REDIS_URL is not a Redis URL")?;
        let (status, _) = watch::channel(RedisStatus {
            reachable: false,
            last_error: Some("not checked yet".to_owned()),
            checked_at: None,
        });
        Ok(Self(Arc::new(Inner {
            client,
            connection: OnceCell::new(),
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            status,
            failures: metrics.counter(REDIS_FAILURES, &[] as &[(&str, &str)]),
        })))
    }

    /// `name` under the configured prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.0.prefix)
    }

    /// What the last check found, and every later one.
    pub fn status(&self) -> watch::Receiver<RedisStatus> {
        self.0.status.subscribe()
    }

    /// Runs `script` with the keys and arguments `invocation` adds, within the timeout.
    pub async fn eval<T: FromRedisValue>(
        &self,
        script: &Script,
        invocation: impl FnOnce(&mut ScriptInvocation<'_>),
    ) -> Result<T, Unavailable> {
        let result = self.eval_bounded(script, invocation).await;
        if result.is_err() {
            self.0.failures.increment(1);
        }
        result
    }

    async fn eval_bounded<T: FromRedisValue>(
        &self,
        script: &Script,
        invocation: impl FnOnce(&mut ScriptInvocation<'_>),
    ) -> Result<T, Unavailable> {
        let mut connection = match self.0.connection.get() {
            Some(connection) => connection.clone(),
            None => self.first_connection().await?,
        };
        let mut call = script.prepare_invoke();
        invocation(&mut call);
        match tokio::time::timeout(self.0.timeout, call.invoke_async(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Unavailable(error.to_string())),
            Err(_) => Err(Unavailable(format!(
                "no answer within REDIS_TIMEOUT_MS ({} ms)",
                self.0.timeout.as_millis()
            ))),
        }
    }

    /// The connection, for a request that came before there was one: at start-up it waits, within
    /// the timeout, for the first connection attempt to finish, so that an instance that is
    /// ready (readiness is Kafka's) does not refuse its first keyed requests while it connects.
    async fn first_connection(&self) -> Result<ConnectionManager, Unavailable> {
        let mut status = self.0.status.subscribe();
        let checked = status.wait_for(|status| status.checked_at.is_some());
        let _ = tokio::time::timeout(self.0.timeout, checked).await;
        (self.0.connection.get().cloned()).ok_or_else(|| Unavailable("not connected".to_owned()))
    }

    /// Connects (again and again until Redis answers), then pings every `interval`, publishing
    /// each result, until `stop`.
    pub async fn keep_connected(self, interval: Duration, stop: CancellationToken) {
        loop {
            let outcome = self.check().await;
            let reachable = outcome.is_ok();
            if reachable != self.0.status.borrow().reachable {
                match &outcome {
                    Ok(()) => tracing::info!("Redis is reachable"),
                    Err(error) => tracing::warn!("Redis is unreachable: {error}"),
                }
            }
            self.0.status.send_replace(RedisStatus {
                reachable,
                last_error: outcome.err(),
                checked_at: Some(Timestamp::now()),
            });
            if !sleep_or_stop(interval, &stop).await {
                return;
            }
        }
    }

    async fn check(&self) -> Result<(), String> {
        let timeout = self.0.timeout.max(Duration::from_millis(500));
        let connection = tokio::time::timeout(timeout, self.connect())
            .await
            .map_err(|_| "no connection within the timeout".to_owned())??;
        let mut connection = connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("no answer to PING within the timeout".to_owned()),
        }
    }

    async fn connect(&self) -> Result<&ConnectionManager, String> {
        self.0
            .connection
            .get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.0.timeout.max(Duration::from_millis(500))))
                    .set_response_timeout(Some(self.0.timeout));
                ConnectionManager::new_with_config(self.0.client.clone(), config)
                    .await
                    .map_err(|error| error.to_string())
            })
            .await
    }
}
