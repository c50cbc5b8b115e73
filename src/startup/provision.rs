//! Topics first, then the consumers: what runs in the background once the service is up, while
//! Kafka may still be away.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::consumer::{Consumers, DeadLetters, HeldPartitions, Processor};
use crate::kafka::KafkaStatus;
use crate::kafka::topics::{CreateTopicsError, Topics, create_topics};
use crate::live::{LiveReader, LiveView};
use crate::support::Backoff;

/// The longest wait between two attempts to create the topics while Kafka is away.
const MAX_PROVISION_BACKOFF: Duration = Duration::from_secs(5);
/// The first wait.
const FIRST_PROVISION_BACKOFF: Duration = Duration::from_millis(200);

/// The consumers and what they need, ready to run.
pub struct ConsumerSide {
    pub consumers: Consumers,
    pub processor: Processor,
    pub dead_letters: DeadLetters,
    pub held: HeldPartitions,
    /// The live view, and its reader of every partition.
    pub live: (LiveReader, Arc<LiveView>),
}

/// Creates the topics the health check finds missing (retrying while Kafka is away or refuses),
/// runs the consumers until `stop` once the event topics exist, and meanwhile keeps trying to
/// create the dead-letter topics still missing. Topics that already exist are never created, so
/// a service without permission to create topics works on topics an operator made; without the
/// dead-letter topics it is ready too, and an unprocessable record holds its partition until
/// its topic exists (health says so).
pub async fn provision_then_consume(
    kafka: KafkaConfig,
    topics: Arc<Topics>,
    mut status: watch::Receiver<KafkaStatus>,
    consumers: Option<ConsumerSide>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(FIRST_PROVISION_BACKOFF, MAX_PROVISION_BACKOFF);
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
                if !next_check(&mut status, &stop).await {
                    return;
                }
                continue;
            }
            Err(error) => log_refusal(&error, backoff.next_pause()),
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
    if let Some(side) = consumers {
        let ConsumerSide {
            consumers,
            processor,
            dead_letters,
            held,
            live: (reader, live),
        } = side;
        let reading = tokio::spawn(reader.run(live, stop.clone()));
        if let Err(error) = consumers.run(processor, dead_letters, held, stop).await {
            tracing::error!("[CONSUMER] The consumers stopped: {error:#}");
        }
        let _ = reading.await;
    }
    let _ = dead_letter_topics.await;
}

/// Creates the dead-letter topics the health check finds missing, until none is or `stop`.
async fn provision_dead_letter_topics(
    kafka: KafkaConfig,
    mut status: watch::Receiver<KafkaStatus>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(FIRST_PROVISION_BACKOFF, MAX_PROVISION_BACKOFF);
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
                if !next_check(&mut status, &stop).await {
                    return;
                }
                continue;
            }
            Err(error) => log_refusal(&error, backoff.next_pause()),
        }
        if !backoff.wait(&stop).await {
            return;
        }
    }
}

/// Waits for the health check's next result; false when `stop` (or the check's end) came first.
async fn next_check(status: &mut watch::Receiver<KafkaStatus>, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        changed = status.changed() => changed.is_ok(),
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
