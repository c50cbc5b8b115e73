//! Kafka reachability, checked in the background so that the health route answers at once from
//! the latest result and never waits on a broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::producer::{KafkaProducer, KafkaSink, Replacement};
use super::topics::Topics;
use crate::domain::Timestamp;
use crate::support::sleep_or_stop;

/// What the last check found.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KafkaStatus {
    /// Whether a metadata request succeeded.
    pub reachable: bool,
    /// How many brokers the cluster reported.
    pub brokers: usize,
    /// The service's event topics that the cluster does not have (yet): events cannot be
    /// published until it has them.
    pub missing_topics: Vec<String>,
    /// The dead-letter topics the cluster does not have (yet). The service is ready without
    /// them, but an unprocessable record then holds its partition until its topic exists.
    pub missing_dead_letter_topics: Vec<String>,
    /// Why the last check failed, if it did.
    pub last_error: Option<String>,
    /// When the last check finished; absent before the first.
    pub checked_at: Option<Timestamp>,
    /// The fatal errors the idempotent producer has hit since the service started; each time
    /// it was replaced by a new one.
    pub producer_fatal_errors: FatalErrors,
}

/// Fatal errors this many times within [`FATAL_WINDOW`] mean that a new producer does not help
/// (say, an ACL that denies idempotent writes): health then answers 503.
pub const FATAL_ERRORS_UNHEALTHY: usize = 3;
pub const FATAL_WINDOW: Duration = Duration::from_secs(60);

/// How often the producer hit a fatal error, and the last one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct FatalErrors {
    pub count: u64,
    /// How many of them came in the last minute; from 3 on, health is 503.
    pub in_last_minute: usize,
    /// The last error, and whether a new producer took over.
    pub last: Option<Replacement>,
}

impl KafkaStatus {
    /// The state before any check: not known to be reachable.
    pub fn unknown(topics: &Topics) -> Self {
        Self {
            reachable: false,
            brokers: 0,
            missing_topics: topics.all().to_vec(),
            missing_dead_letter_topics: topics.dead_letters(),
            last_error: Some("not checked yet".to_owned()),
            checked_at: None,
            producer_fatal_errors: FatalErrors::default(),
        }
    }

    /// Events can be published: the cluster answers, has the event topics, and new producers
    /// do not keep hitting fatal errors.
    pub fn is_healthy(&self) -> bool {
        self.reachable
            && self.missing_topics.is_empty()
            && self.producer_fatal_errors.in_last_minute < FATAL_ERRORS_UNHEALTHY
    }

    /// Whether the process can still publish at all: false once the producer hit a fatal error
    /// and no new one could be made, so that liveness fails and the service is restarted.
    pub fn is_alive(&self) -> bool {
        self.producer_fatal_errors
            .last
            .as_ref()
            .is_none_or(|last| last.replaced)
    }
}

/// Checks the cluster every `interval` until `stop` is cancelled, publishing each result. A
/// producer found with a fatal error is replaced first.
pub async fn run_checks(
    sink: Arc<KafkaSink>,
    topics: Topics,
    replication_factor: i32,
    interval: Duration,
    status: watch::Sender<KafkaStatus>,
    stop: CancellationToken,
) {
    // A check may take as long as the interval, and never less than a round trip needs.
    let timeout = interval.max(Duration::from_millis(500));
    let mut fatal_errors = FatalErrors::default();
    let mut fatal_at = std::collections::VecDeque::new();
    loop {
        if let Some(replacement) = sink.replace_if_fatal() {
            fatal_errors.count += 1;
            fatal_errors.last = Some(replacement);
            fatal_at.push_back(Instant::now());
        }
        while fatal_at
            .front()
            .is_some_and(|at: &Instant| at.elapsed() > FATAL_WINDOW)
        {
            fatal_at.pop_front();
        }
        fatal_errors.in_last_minute = fatal_at.len();
        let producer = sink.producer();
        let wanted = topics.clone();
        let check = tokio::task::spawn_blocking(move || check(&producer, &wanted, timeout));
        let mut next = match check.await {
            Ok(next) => next,
            Err(join_error) => failed(&topics, format!("the health check panicked: {join_error}")),
        };
        next.producer_fatal_errors = fatal_errors.clone();
        explain_missing_topics(&mut next, replication_factor);
        if next.reachable != status.borrow().reachable {
            if next.reachable {
                tracing::info!("Kafka is reachable ({} brokers)", next.brokers);
            } else {
                tracing::warn!(
                    "Kafka is unreachable: {}",
                    next.last_error.as_deref().unwrap_or("")
                );
            }
        }
        status.send_replace(next);
        if !sleep_or_stop(interval, &stop).await {
            return;
        }
    }
}

fn check(producer: &KafkaProducer, topics: &Topics, timeout: Duration) -> KafkaStatus {
    match producer.client().fetch_metadata(None, timeout) {
        Ok(metadata) => {
            let present = |name: &String| {
                metadata.topics().iter().any(|t| {
                    // Just created, a topic may have partitions without leaders yet, and
                    // then nothing can be stored in them.
                    t.name() == name
                        && t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions()
                            .iter()
                            .all(|p| p.leader() >= 0 && p.error().is_none())
                })
            };
            let missing = |names: Vec<String>| names.into_iter().filter(|t| !present(t)).collect();
            KafkaStatus {
                reachable: true,
                brokers: metadata.brokers().len(),
                missing_topics: missing(topics.all().to_vec()),
                missing_dead_letter_topics: missing(topics.dead_letters()),
                last_error: None,
                checked_at: Some(Timestamp::now()),
                producer_fatal_errors: FatalErrors::default(),
            }
        }
        Err(error) => failed(topics, error.to_string()),
    }
}

/// Says why topics the service creates itself are missing, when the cluster cannot have them: a
/// replication factor larger than the brokers it has. Retrying goes on (brokers may join), but
/// an operator reads the reason in health rather than guessing at an endless retry.
fn explain_missing_topics(status: &mut KafkaStatus, replication_factor: i32) {
    let missing =
        !status.missing_topics.is_empty() || !status.missing_dead_letter_topics.is_empty();
    let too_few = usize::try_from(replication_factor).unwrap_or(0) > status.brokers;
    if status.reachable && missing && too_few {
        status.last_error = Some(format!(
            "KAFKA_TOPIC_REPLICATION_FACTOR is {replication_factor} but the cluster has {} broker(s): \
             the missing topics cannot be created; lower it, add brokers, or create the topics",
            status.brokers
        ));
    }
}

fn failed(topics: &Topics, error: String) -> KafkaStatus {
    KafkaStatus {
        last_error: Some(error),
        checked_at: Some(Timestamp::now()),
        ..KafkaStatus::unknown(topics)
    }
}
