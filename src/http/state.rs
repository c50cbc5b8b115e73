//! What the handlers share, and the one function that builds it from the configuration: the
//! service's start-up and every test build it the same way, so a test cannot drift from what
//! runs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::admission::InflightBytes;
use super::asyncapi;
use super::auth::Authenticator;
use super::idempotency::{Idempotency, MemoryStore, RedisStore, Store};
use super::live::{Live, StreamSlots};
use super::metrics::HttpMetrics;
use super::rate_limit::RateLimit;
use crate::config::Config;
use crate::consumer::HeldPartitions;
use crate::kafka::topics::Topics;
use crate::kafka::{KafkaStatus, Publisher};
use crate::live::LiveView;
use crate::schema_registry::SchemaRegistry;
use crate::shared::{Redis, RedisStatus};
use crate::telemetry::Metrics;
use crate::telemetry::metrics::IDEMPOTENCY_UNAVAILABLE;

/// How much longer than the request timeout an `Idempotency-Key` claim lasts in Redis, when the
/// instance that made it never ends it.
const CLAIM_GRACE: Duration = Duration::from_secs(5);

/// What the handlers share. Cloned for every request (each extractor and layer takes its own):
/// one reference count, not one per part (cloning the parts one by one, a cancellation token's
/// lock among them, was 7% of the service's CPU under load).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub publisher: Publisher,
    pub topics: Arc<Topics>,
    pub kafka_status: watch::Receiver<KafkaStatus>,
    pub limits: Limits,
    /// Checks credentials on every route but the open ones; `None` when authentication is off.
    pub auth: Option<Arc<Authenticator>>,
    /// Limits each client's publishing requests; `None` when rate limiting is off.
    pub rate_limit: Option<Arc<RateLimit>>,
    /// The remembered answers to requests with an `Idempotency-Key`.
    pub idempotency: Idempotency,
    /// What the last check of Redis found, when it is configured.
    pub redis: Option<watch::Receiver<RedisStatus>>,
    /// The `ce_source` of every record (`CLOUDEVENTS_SOURCE`), shared by all of them.
    pub cloudevents_source: Arc<str>,
    /// The live view: the event stream and the statistics.
    pub live: Live,
    /// The request bytes the publishing requests in progress may still take.
    pub inflight: Arc<InflightBytes>,
    /// The partitions the consumers hold, for health.
    pub held: HeldPartitions,
    /// Everything the application records, rendered by `/metrics`.
    pub metrics: Metrics,
    pub http_metrics: Arc<HttpMetrics>,
    /// The AsyncAPI document of this configuration, rendered once.
    pub asyncapi: Bytes,
    /// Where the value schemas are registered, when `SCHEMA_REGISTRY_URL` is set: with the wire
    /// format, every record's value carries its schema's id.
    pub schema_registry: Option<SchemaRegistry>,
}

/// The limits the router enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_bytes: usize,
    pub request_timeout: Duration,
    /// Event requests served at once; more are answered 503 at once.
    pub concurrent_requests: usize,
    pub batch_max_events: usize,
    /// How long a consumer may hold a partition before health turns 503.
    pub dlq_max_hold: Duration,
}

/// What the HTTP edge needs from the layers below, made by the composition root.
pub struct Dependencies {
    pub publisher: Publisher,
    pub kafka_status: watch::Receiver<KafkaStatus>,
    pub live: Arc<LiveView>,
    pub held: HeldPartitions,
    pub metrics: Metrics,
    /// Where instances share their state, when `REDIS_URL` is set.
    pub redis: Option<Redis>,
    /// Where the value schemas are registered, when `SCHEMA_REGISTRY_URL` is set.
    pub schema_registry: Option<SchemaRegistry>,
    /// Cancelled at shutdown: open streams end.
    pub closing: CancellationToken,
}

impl AppState {
    /// The state `config` asks for, over `dependencies`. Fails when a configured key cannot be
    /// read (`AUTH_JWT_RS256_PUBLIC_KEY_FILE`).
    pub fn new(config: &Config, dependencies: Dependencies) -> anyhow::Result<Self> {
        let auth = Authenticator::from_config(&config.auth)?.map(Arc::new);
        let metrics = &dependencies.metrics;
        let redis = dependencies.redis;
        let rate_limit = config
            .rate_limit
            .map(|c| Arc::new(RateLimit::new(c, redis.clone(), metrics)));
        let http = &config.http;
        let wire_format = (config.schema_registry.as_ref()).is_some_and(|r| r.wire_format);
        let store: Arc<dyn Store> = match &redis {
            Some(redis) => Arc::new(RedisStore::new(
                redis.clone(),
                http.idempotency_window,
                // A claim outlives its request, and then lapses: its instance may have died.
                http.request_timeout + CLAIM_GRACE,
            )),
            None => Arc::new(MemoryStore::new(
                http.idempotency_window,
                http.idempotency_max_bytes,
            )),
        };
        Ok(Self(Arc::new(Shared {
            publisher: dependencies.publisher,
            topics: Arc::new(Topics::new(&config.kafka.topic_prefix)),
            kafka_status: dependencies.kafka_status,
            limits: Limits {
                body_bytes: http.body_limit_bytes,
                request_timeout: http.request_timeout,
                concurrent_requests: http.max_concurrent_requests,
                batch_max_events: http.batch_max_events,
                dlq_max_hold: config.kafka.dlq_max_hold,
            },
            auth,
            rate_limit,
            idempotency: Idempotency {
                store,
                unavailable: metrics.counter(IDEMPOTENCY_UNAVAILABLE, &[] as &[(&str, &str)]),
            },
            redis: redis.as_ref().map(Redis::status),
            cloudevents_source: config.kafka.cloudevents_source.as_str().into(),
            live: Live {
                view: dependencies.live,
                stream_slots: Arc::new(StreamSlots::new(
                    http.stream_max_clients,
                    http.stream_max_per_client,
                )),
                closing: dependencies.closing,
            },
            inflight: Arc::new(InflightBytes::new(
                http.max_inflight_bytes,
                http.body_limit_bytes,
            )),
            held: dependencies.held,
            http_metrics: Arc::new(HttpMetrics::new(&dependencies.metrics)),
            metrics: dependencies.metrics,
            asyncapi: asyncapi::document(&config.kafka, wire_format)
                .to_string()
                .into(),
            schema_registry: dependencies.schema_registry,
        })))
    }

    /// This state with `store` remembering the idempotency answers (tests put stores of their
    /// own in).
    pub fn with_idempotency_store(&self, store: Arc<dyn Store>) -> Self {
        let mut shared = Shared::clone(&self.0);
        shared.idempotency.store = store;
        Self(Arc::new(shared))
    }

    /// One line each for the start-up log: authentication and rate limiting, on or off.
    pub fn describe(&self, config: &Config) -> Vec<String> {
        let mut lines = vec![match &self.auth {
            Some(auth) => format!("HTTP authentication on: {}", auth.describe()),
            None => "HTTP authentication off: every route is open".to_owned(),
        }];
        if self.auth.is_some() && config.auth.jwt_enabled() && config.auth.jwt_audience.is_none() {
            lines.push(
                "AUTH_JWT_AUDIENCE is not set: bearer tokens issued for any audience are accepted"
                    .to_owned(),
            );
        }
        if let Some(rate_limit) = &self.rate_limit {
            lines.push(format!("Rate limiting on: {}", rate_limit.describe()));
        }
        lines.push(match &self.schema_registry {
            Some(registry) if registry.wire_format() => format!(
                "Value schemas registered in the schema registry at {}; record values carry their ids (the wire format)",
                registry.url()
            ),
            Some(registry) => format!(
                "Value schemas registered in the schema registry at {}; record values are plain JSON",
                registry.url()
            ),
            None => "No schema registry (no SCHEMA_REGISTRY_URL)".to_owned(),
        });
        lines.push(match &config.redis {
            Some(redis) => format!(
                "Idempotency keys and rate limits are shared through Redis (keys under {:?})",
                redis.key_prefix
            ),
            None => {
                "Idempotency keys and rate limits are kept in this instance's memory (no REDIS_URL)"
                    .to_owned()
            }
        });
        lines
    }
}
