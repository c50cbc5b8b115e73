//! Builds the application from its configuration and runs it until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, KafkaConfig};
use crate::consumer::{Consumers, DeadLetters, HeldPartitions, Processor};
use crate::http::rate_limit::{self, RateLimit};
use crate::http::{
    self, AppState, Authenticator, Deadlines, IdempotencyStore, InflightBytes, Limits,
    ServerLimits, StreamSlots,
};
use crate::kafka::topics::{CreateTopicsError, Topics, create_topics};
use crate::kafka::{KafkaPublisher, KafkaStatus, health};
use crate::live::{LiveEvent, LiveView};
use crate::metrics;

/// How many processed events the live view keeps, for a stream to resume from.
const LIVE_RECENT_EVENTS: usize = 1000;
/// How many processed events a stream may fall behind before it is dropped.
const LIVE_STREAM_BACKLOG: usize = 1024;

/// The longest wait between two attempts to create the topics while Kafka is away.
const MAX_PROVISION_BACKOFF: Duration = Duration::from_secs(5);

/// A bound, ready-to-run service: HTTP on its listener, the producer, the health check, and (once
/// the topics exist) the consumers.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    publisher: Arc<KafkaPublisher>,
    live: Arc<LiveView>,
    background: Vec<JoinHandle<()>>,
    stop: CancellationToken,
    shutdown_timeout: Duration,
    server_limits: ServerLimits,
}

impl Application {
    /// Binds the listener and starts the Kafka side in the background. Succeeds while Kafka is
    /// down: the service keeps trying and reports itself unhealthy until Kafka answers.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // First, so that a bad key file stops start-up before anything else has started.
        let auth = Authenticator::from_config(&config.auth)?.map(Arc::new);
        match &auth {
            Some(auth) => tracing::info!("HTTP authentication on: {}", auth.describe()),
            None => tracing::info!("HTTP authentication off: every route is open"),
        }
        if auth.is_some() && config.auth.jwt_enabled() && config.auth.jwt_audience.is_none() {
            tracing::warn!(
                "AUTH_JWT_AUDIENCE is not set: bearer tokens issued for any audience are accepted"
            );
        }
        let rate_limit = config.rate_limit.map(|c| Arc::new(RateLimit::new(c)));
        if let Some(rate_limit) = &rate_limit {
            tracing::info!("Rate limiting on: {}", rate_limit.describe());
        }
        // Before any client exists, so that their first statistics are recorded.
        metrics::install();
        let publisher = Arc::new(KafkaPublisher::new(&config.kafka)?);
        let topics = Arc::new(Topics::new(&config.kafka.topic_prefix));
        let stop = CancellationToken::new();
        let (status_tx, kafka_status) = watch::channel(KafkaStatus::unknown(&topics));
        let live = Arc::new(LiveView::new(LIVE_RECENT_EVENTS, LIVE_STREAM_BACKLOG));
        let idempotency = Arc::new(IdempotencyStore::new(
            config.http.idempotency_window,
            config.http.idempotency_max_bytes,
        ));

        let server_limits = server_limits(&config);
        let held = HeldPartitions::default();
        let address = SocketAddr::new(config.http.host, config.http.port);
        let listener = http::listen(address)
            .with_context(|| format!("could not listen on {address} (check HOST and PORT)"))?;

        let health_check = tokio::spawn(health::run_checks(
            publisher.producer().clone(),
            (*topics).clone(),
            config.kafka.health_interval,
            status_tx,
            stop.clone(),
        ));
        let consumers = if config.kafka.consumers_enabled {
            Some(Consumers::new(&config.kafka, topics.all())?)
        } else {
            None
        };
        let kafka_side = tokio::spawn(provision_then_consume(
            config.kafka.clone(),
            topics.clone(),
            kafka_status.clone(),
            consumers.map(|c| {
                let dead_letters = DeadLetters::new(publisher.clone());
                (c, Processor::new(live.clone()), dead_letters, held.clone())
            }),
            stop.clone(),
        ));

        let state = AppState {
            publisher: publisher.clone(),
            topics,
            kafka_status,
            limits: Limits {
                body_bytes: config.http.body_limit_bytes,
                request_timeout: config.http.request_timeout,
                concurrent_requests: config.http.max_concurrent_requests,
                batch_max_events: config.http.batch_max_events,
                dlq_max_hold: config.kafka.dlq_max_hold,
            },
            auth,
            rate_limit: rate_limit.clone(),
            idempotency: idempotency.clone(),
            // Leaked once per application: a few bytes, for no copy per record.
            cloudevents_source: Box::leak(config.kafka.cloudevents_source.clone().into_boxed_str()),
            live: http::Live {
                view: live.clone(),
                stream_slots: Arc::new(StreamSlots::new(
                    config.http.stream_max_clients,
                    config.http.stream_max_per_client,
                )),
                closing: stop.clone(),
            },
            inflight: Arc::new(InflightBytes::new(
                config.http.max_inflight_bytes,
                config.http.body_limit_bytes,
            )),
            held,
        };
        let metrics_upkeep = tokio::spawn(metrics::keep_up(stop.clone()));
        let forget_old_answers = tokio::spawn(forget_old_answers(idempotency, stop.clone()));
        let mut background = vec![health_check, kafka_side, metrics_upkeep, forget_old_answers];
        if let Some(rate_limit) = rate_limit {
            background.push(tokio::spawn(rate_limit::forget_idle_clients(
                rate_limit,
                rate_limit::FORGET_IDLE_CLIENTS_EVERY,
                stop.clone(),
            )));
        }
        Ok(Self {
            listener,
            router: http::router(state),
            publisher,
            live,
            background,
            stop,
            shutdown_timeout: config.http.shutdown_timeout,
            server_limits,
        })
    }

    /// The port the service listens on (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Events as the built-in consumers process them.
    pub fn processed_events(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    /// Serves until `shutdown` resolves, then stops within the shutdown timeout: stops accepting,
    /// finishes the requests in flight, flushes the producer and commits what the consumers
    /// processed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let address = self.listener.local_addr()?;
        tracing::info!("Events Service listening on http://{address}");
        let stop = self.stop.clone();
        let server = tokio::spawn(http::serve(
            self.listener,
            self.router,
            self.server_limits,
            stop.clone().cancelled_owned(),
        ));

        shutdown.await;
        tracing::info!("Shutting down: finishing requests in flight");
        stop.cancel();
        let deadline = Instant::now() + self.shutdown_timeout;

        match timeout_at(deadline, server).await {
            Ok(Ok(())) => tracing::info!("HTTP server stopped"),
            Ok(Err(join_error)) => tracing::error!("HTTP server task failed: {join_error}"),
            Err(_) => tracing::warn!("Requests were still in flight at the shutdown deadline"),
        }

        let publisher = self.publisher.clone();
        let flush_for = deadline.saturating_duration_since(Instant::now());
        match tokio::task::spawn_blocking(move || publisher.flush(flush_for)).await {
            Ok(Ok(())) => tracing::info!("[PRODUCER] Flushed"),
            Ok(Err(error)) => tracing::warn!("[PRODUCER] Flush incomplete: {error}"),
            Err(join_error) => tracing::error!("[PRODUCER] Flush failed: {join_error}"),
        }

        for task in self.background {
            if timeout_at(deadline, task).await.is_err() {
                tracing::warn!("A background task did not stop before the shutdown deadline");
            }
        }
        tracing::info!("Events Service stopped");
        Ok(())
    }
}

/// Creates the topics the health check finds missing (retrying while Kafka is away or refuses),
/// runs the consumers until `stop` once the event topics exist, and meanwhile keeps trying to
/// create the dead-letter topics still missing. Topics that already exist are never created, so
/// a service without permission to create topics works on topics an operator made; without the
/// dead-letter topics it is ready too, and an unprocessable record holds its partition until
/// its topic exists (health says so).
async fn provision_then_consume(
    kafka: KafkaConfig,
    topics: Arc<Topics>,
    mut status: watch::Receiver<KafkaStatus>,
    consumers: Option<(Consumers, Processor, DeadLetters, HeldPartitions)>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(MAX_PROVISION_BACKOFF);
    loop {
        let missing = {
            let status = status.borrow_and_update();
            match (status.reachable, status.missing_topics.is_empty()) {
                (true, true) => break,
                (true, false) => [
                    &status.missing_topics[..],
                    &status.missing_dead_letter_topics[..],
                ]
                .concat(),
                // Not known yet: try them all; those that exist are left alone.
                (false, _) => topics.provisioned(),
            }
        };
        match create_topics(&kafka, &missing).await {
            // Consumers start once the cluster's metadata shows the topics, at the next check:
            // subscribing earlier can meet "unknown topic" while the new topics propagate.
            Ok(()) => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = status.changed() => match changed {
                        Ok(()) => continue,
                        Err(_health_check_ended) => return,
                    },
                }
            }
            Err(error) => log_refusal(&error, backoff.next_wait()),
        }
        if !backoff.wait(&stop).await {
            return;
        }
    }
    let dead_letter_topics = tokio::spawn(provision_dead_letter_topics(
        kafka.clone(),
        status.clone(),
        stop.clone(),
    ));
    if let Some((consumers, processor, dead_letters, held)) = consumers {
        if let Err(error) = consumers.run(processor, dead_letters, held, stop).await {
            tracing::error!("[CONSUMER] The consumers stopped: {error:#}");
        }
    }
    let _ = dead_letter_topics.await;
}

/// Creates the dead-letter topics the health check finds missing, until none is or `stop`.
async fn provision_dead_letter_topics(
    kafka: KafkaConfig,
    mut status: watch::Receiver<KafkaStatus>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(MAX_PROVISION_BACKOFF);
    loop {
        let missing = status
            .borrow_and_update()
            .missing_dead_letter_topics
            .clone();
        if missing.is_empty() {
            return;
        }
        match create_topics(&kafka, &missing).await {
            // The next check shows them.
            Ok(()) => {
                backoff.reset();
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = status.changed() => match changed {
                        Ok(()) => continue,
                        Err(_health_check_ended) => return,
                    },
                }
            }
            Err(error) => log_refusal(&error, backoff.next_wait()),
        }
        if !backoff.wait(&stop).await {
            return;
        }
    }
}

fn log_refusal(error: &CreateTopicsError, retry_in: Duration) {
    match error {
        CreateTopicsError::Refused(_) => {
            tracing::error!("Could not create topics, retrying in {retry_in:?}: {error}")
        }
        _ => tracing::warn!("Could not create topics yet, retrying in {retry_in:?}: {error:#}"),
    }
}

/// A pause that doubles after each wait, up to a ceiling.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);

    fn new(max: Duration) -> Self {
        Self {
            next: Self::FIRST,
            max,
        }
    }

    fn next_wait(&self) -> Duration {
        self.next
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// Waits the next pause; false when `stop` came first.
    async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(pause) => true,
        }
    }
}

/// The deadlines and the connection limit, the limit kept below the open-file limit (raised to
/// its hard limit first) with room for the Kafka clients' sockets and the files the process
/// opens.
fn server_limits(config: &Config) -> ServerLimits {
    /// Descriptors kept for everything but client connections.
    const RESERVED_FILES: u64 = 256;
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

/// Sweeps the idempotency answers older than their window out of memory until `stop`.
async fn forget_old_answers(store: Arc<IdempotencyStore>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(http::idempotency::EXPIRE_EVERY) => {
                store.expire(std::time::Instant::now());
            }
        }
    }
}
