//! The composition root: builds every part of the service from its configuration, in named
//! steps, and runs it until told to stop.

mod provision;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::Config;
use crate::consumer::{Consumers, DeadLetters, HeldPartitions, Processor};
use crate::http::{self, AppState, Deadlines, Dependencies, ServerLimits};
use crate::kafka::topics::Topics;
use crate::kafka::{KafkaSink, KafkaStatus, ProduceMetrics, Publisher, health};
use crate::live::{LiveEvent, LiveReader, LiveView};
use crate::schema_registry::SchemaRegistry;
use crate::shared::Redis;
use crate::support::every;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::UPKEEP_EVERY;
use provision::{ConsumerSide, provision_then_consume};

/// How many processed events the live view keeps, for a stream to resume from.
const LIVE_RECENT_EVENTS: usize = 1000;
/// How many processed events a stream may fall behind before it is dropped.
const LIVE_STREAM_BACKLOG: usize = 1024;
/// How often clients whose rate-limit bucket has refilled are forgotten.
const FORGET_IDLE_CLIENTS_EVERY: Duration = Duration::from_secs(10);
/// How often idempotency answers older than their window are swept out of memory.
const FORGET_OLD_ANSWERS_EVERY: Duration = Duration::from_secs(10);
/// Descriptors kept for everything but client connections (Kafka's sockets, files).
const RESERVED_FILES: u64 = 256;

/// A bound, ready-to-run service: HTTP on its listener, the producer, the health check, and (once
/// the topics exist) the consumers.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    sink: Arc<KafkaSink>,
    processor: Processor,
    /// What runs beside the HTTP server until `stop`, each named for the shutdown's log.
    background: Vec<(&'static str, JoinHandle<()>)>,
    stop: CancellationToken,
    /// Stops everything when the application is dropped without a shutdown (a test that
    /// failed, a runtime shutting down): the consumers' threads end, and the runtime with them.
    stop_on_drop: DropGuard,
    shutdown_timeout: Duration,
    server_limits: ServerLimits,
}

impl Application {
    /// Registers the value schemas (with `SCHEMA_REGISTRY_URL`), binds the listener and starts
    /// the Kafka side in the background. Succeeds while Kafka is down: the service keeps trying
    /// and reports itself unhealthy until Kafka answers. Fails when the schema registry refuses a
    /// schema, or does not answer within `SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let topics = Arc::new(Topics::new(&config.kafka.topic_prefix));
        let sink = Arc::new(KafkaSink::new(&config.kafka, &metrics)?);
        let publisher = Publisher::new(
            sink.clone(),
            ProduceMetrics::new(&metrics, &topics.provisioned()),
        );
        let stop = CancellationToken::new();
        let (status_tx, kafka_status) = watch::channel(KafkaStatus::unknown(&topics));
        let live = Arc::new(LiveView::new(LIVE_RECENT_EVENTS, LIVE_STREAM_BACKLOG));
        let held = HeldPartitions::default();
        let redis = config
            .redis
            .as_ref()
            .map(|redis| Redis::new(redis, &metrics))
            .transpose()?;
        // Before the service serves: with the wire format, every record carries its schema's id.
        let schema_registry = match &config.schema_registry {
            Some(registry) => Some(SchemaRegistry::start(registry, &topics).await?),
            None => None,
        };
        // Before anything runs, so that a bad key file stops start-up at once.
        let state = AppState::new(
            &config,
            Dependencies {
                publisher: publisher.clone(),
                kafka_status: kafka_status.clone(),
                live: live.clone(),
                held: held.clone(),
                metrics: metrics.clone(),
                redis: redis.clone(),
                schema_registry: schema_registry.clone(),
                closing: stop.clone(),
            },
        )?;
        for line in state.describe(&config) {
            tracing::info!("{line}");
        }
        let server_limits = server_limits(&config);
        let address = SocketAddr::new(config.http.host, config.http.port);
        let listener = http::listen(address)
            .with_context(|| format!("could not listen on {address} (check HOST and PORT)"))?;

        let processor = Processor::new();
        let consumers = match config.kafka.consumers_enabled {
            true => Some(ConsumerSide {
                consumers: Consumers::new(&config.kafka, &topics.all(), &metrics)?,
                processor: processor.clone(),
                dead_letters: DeadLetters::new(publisher),
                held,
                live: (
                    LiveReader::new(&config.kafka, &topics.all(), LIVE_RECENT_EVENTS)?,
                    live.clone(),
                ),
            }),
            false => None,
        };
        let mut background = vec![
            (
                "the Kafka health check",
                tokio::spawn(health::run_checks(
                    sink.clone(),
                    (*topics).clone(),
                    config.kafka.topic_replication_factor,
                    config.kafka.health_interval,
                    status_tx,
                    stop.clone(),
                )),
            ),
            (
                "the consumers (their final commit)",
                tokio::spawn(provision_then_consume(
                    config.kafka.clone(),
                    topics,
                    kafka_status,
                    consumers,
                    stop.clone(),
                )),
            ),
        ];
        if let Some(redis) = redis {
            let interval = config.kafka.health_interval;
            let task = tokio::spawn(redis.keep_connected(interval, stop.clone()));
            background.push(("the Redis connection", task));
        }
        if let Some(registry) = schema_registry {
            let task = tokio::spawn(registry.keep_registered(stop.clone()));
            background.push(("the schema registration", task));
        }
        background.extend(upkeep(&state, &stop));
        Ok(Self {
            listener,
            router: http::router(state.clone()),
            state,
            sink,
            processor,
            background,
            stop_on_drop: stop.clone().drop_guard(),
            stop,
            shutdown_timeout: config.http.shutdown_timeout,
            server_limits,
        })
    }

    /// The port the service listens on (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Events as this instance's consumers process them (the live view shows those of every
    /// instance).
    pub fn processed_events(&self) -> broadcast::Receiver<LiveEvent> {
        self.processor.subscribe()
    }

    /// The producer's side of Kafka, for tests that need to reach it (to inject a fatal error,
    /// say).
    pub fn kafka_sink(&self) -> Arc<KafkaSink> {
        self.sink.clone()
    }

    /// Serves until `shutdown` resolves, then stops within the shutdown timeout: stops accepting,
    /// finishes the requests in flight, flushes the producer and commits what the consumers
    /// processed. An error when any of that did not finish in time: requests may have been cut
    /// off, or records left unflushed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let _stop_on_drop = self.stop_on_drop;
        let address = self.listener.local_addr()?;
        tracing::info!("Events Service listening on http://{address}");
        let stop = self.stop.clone();
        let server = tokio::spawn(http::serve(
            self.listener,
            self.router,
            self.server_limits,
            self.state.http_metrics.clone(),
            stop.clone().cancelled_owned(),
        ));

        shutdown.await;
        tracing::info!("Shutting down: finishing requests in flight");
        stop.cancel();
        let deadline = Instant::now() + self.shutdown_timeout;
        let mut unfinished = Vec::new();

        match timeout_at(deadline, server).await {
            Ok(Ok(())) => tracing::info!("HTTP server stopped"),
            Ok(Err(join_error)) => {
                tracing::error!("HTTP server task failed: {join_error}");
                unfinished.push("the HTTP server failed".to_owned());
            }
            Err(_) => {
                tracing::warn!("Requests were still in flight at the shutdown deadline");
                unfinished.push("requests were still in flight".to_owned());
            }
        }

        let sink = self.sink.clone();
        let flush_for = deadline.saturating_duration_since(Instant::now());
        match tokio::task::spawn_blocking(move || sink.flush(flush_for)).await {
            Ok(Ok(())) => tracing::info!("[PRODUCER] Flushed"),
            Ok(Err(error)) => {
                tracing::warn!("[PRODUCER] Flush incomplete: {error}");
                unfinished.push("the producer was not flushed".to_owned());
            }
            Err(join_error) => {
                tracing::error!("[PRODUCER] Flush failed: {join_error}");
                unfinished.push("the producer was not flushed".to_owned());
            }
        }

        for (name, task) in self.background {
            if timeout_at(deadline, task).await.is_err() {
                tracing::warn!("{name} did not stop before the shutdown deadline");
                unfinished.push(format!("{name} did not stop"));
                break;
            }
        }
        if !unfinished.is_empty() {
            bail!(
                "the shutdown did not finish within SHUTDOWN_TIMEOUT_MS ({} ms): {}",
                self.shutdown_timeout.as_millis(),
                unfinished.join("; ")
            );
        }
        tracing::info!("Events Service stopped");
        Ok(())
    }
}

/// The periodic upkeep of the state: histograms folded, idle rate-limit buckets and old
/// idempotency answers forgotten.
fn upkeep(state: &AppState, stop: &CancellationToken) -> Vec<(&'static str, JoinHandle<()>)> {
    let metrics = state.metrics.clone();
    let mut tasks = vec![(
        "the metrics' upkeep",
        tokio::spawn(every(UPKEEP_EVERY, stop.clone(), move || {
            metrics.upkeep();
            std::future::ready(())
        })),
    )];
    let idempotency = state.idempotency.store.clone();
    let expire = every(FORGET_OLD_ANSWERS_EVERY, stop.clone(), move || {
        idempotency.expire();
        std::future::ready(())
    });
    tasks.push(("the idempotency sweep", tokio::spawn(expire)));
    if let Some(rate_limit) = state.rate_limit.clone() {
        let forget = every(FORGET_IDLE_CLIENTS_EVERY, stop.clone(), move || {
            rate_limit.forget_idle_clients();
            std::future::ready(())
        });
        tasks.push(("the rate limit's sweep", tokio::spawn(forget)));
    }
    tasks
}

/// The deadlines and the connection limit, the limit kept below the open-file limit (raised to
/// its hard limit first) with room for the Kafka clients' sockets and the files the process
/// opens.
fn server_limits(config: &Config) -> ServerLimits {
    let mut max_connections = config.http.max_connections;
    match http::raise_open_file_limit() {
        Ok(limit) => {
            let fits = usize::try_from(limit.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
            if max_connections > fits {
                tracing::warn!(
                    "HTTP_MAX_CONNECTIONS lowered from {max_connections} to {fits}: the open-file limit is {limit}"
                );
                max_connections = fits.max(1);
            }
        }
        Err(error) => tracing::warn!("Could not read or raise the open-file limit: {error}"),
    }
    ServerLimits {
        deadlines: Deadlines {
            header: config.http.header_timeout,
            idle: config.http.idle_timeout,
            write: config.http.write_timeout,
        },
        max_connections,
    }
}
