//! Holding a partition whose next record cannot be processed until its dead letter is written.
//!
//! The partition is paused and rewound to that record, and the consumer goes on polling: it
//! stays in its group (a consumer that stops polling is thrown out after
//! `max.poll.interval.ms`, and its partitions stall on the next member too), and its other
//! partitions go on. The letter is written in the background, retried with a growing pause
//! while Kafka fails, and more slowly while it refuses for good (no permission, no topic); once
//! it is stored, the record's offset is stored and the partition resumes after it. Every held
//! partition is reported ([`HeldPartitions`]: health and a metric), and once one has been held
//! for `KAFKA_DLQ_MAX_HOLD_MS` health turns 503 so that an operator is paged.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::ProcessError;
use super::dead_letter::{DeadLetters, Letter};
use super::metrics::ConsumerMetrics;
use crate::domain::Timestamp;
use crate::kafka::{Delivery, PublishError};
use crate::support::{Backoff, lock};

/// The first pause after a failed attempt, and the longest while Kafka fails; while it refuses
/// for good an operator has to act, and a try every [`REFUSED_RETRY`] is enough.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);
const REFUSED_RETRY: Duration = Duration::from_secs(10);

/// A partition held, as health reports it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HeldPartition {
    pub topic: String,
    pub partition: i32,
    /// The offset of the record whose dead letter is not written yet.
    pub offset: i64,
    /// When the hold began.
    pub since: Timestamp,
    /// Why the letter is not written yet (the last attempt's error); empty before it ends.
    pub reason: String,
    #[serde(skip)]
    held_at: Instant,
}

/// Every partition the consumers of this instance hold now.
#[derive(Clone, Default)]
pub struct HeldPartitions(Arc<Mutex<BTreeMap<(String, i32), HeldPartition>>>);

impl HeldPartitions {
    /// The partitions held now, and whether one has been held for longer than `max_hold`.
    pub fn report(&self, max_hold: Duration) -> (Vec<HeldPartition>, bool) {
        let held = lock(&self.0);
        let too_long = held.values().any(|h| h.held_at.elapsed() > max_hold);
        (held.values().cloned().collect(), too_long)
    }

    fn set(&self, held: HeldPartition) -> usize {
        let topic = held.topic.clone();
        let mut all = lock(&self.0);
        all.insert((topic.clone(), held.partition), held);
        count(&all, &topic)
    }

    fn clear(&self, topic: &str, partition: i32) -> Option<usize> {
        let mut all = lock(&self.0);
        all.remove(&(topic.to_owned(), partition))?;
        Some(count(&all, topic))
    }
}

/// How many partitions of `topic` are held.
fn count(all: &BTreeMap<(String, i32), HeldPartition>, topic: &str) -> usize {
    all.keys().filter(|(t, _)| t == topic).count()
}

/// One consumer's held partitions.
pub struct Holds {
    topic: String,
    held: HashMap<i32, Hold>,
    report: HeldPartitions,
    dead_letters: DeadLetters,
    metrics: Arc<ConsumerMetrics>,
    runtime: Handle,
}

struct Hold {
    record: OwnedMessage,
    letter: Letter,
    attempt: Option<JoinHandle<(Letter, Result<Delivery, PublishError>)>>,
    next_try: Instant,
    backoff: Backoff,
    report: HeldPartition,
}

impl Holds {
    pub fn new(
        topic: &str,
        report: HeldPartitions,
        dead_letters: DeadLetters,
        metrics: Arc<ConsumerMetrics>,
        runtime: Handle,
    ) -> Self {
        Self {
            topic: topic.to_owned(),
            held: HashMap::new(),
            report,
            dead_letters,
            metrics,
            runtime,
        }
    }

    /// Whether records of `partition` are to be left alone for now: they come again once the
    /// hold ends.
    pub fn holds(&self, partition: i32) -> bool {
        self.held.contains_key(&partition)
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Holds `record`'s partition at `record`, which could not be processed, and begins writing
    /// its dead letter.
    pub fn hold<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        record: OwnedMessage,
        error: &ProcessError,
    ) {
        let partition = record.partition();
        pause(consumer, &self.topic, partition, record.offset());
        let letter = DeadLetters::letter(&record, error);
        let report = HeldPartition {
            topic: self.topic.clone(),
            partition,
            offset: record.offset(),
            since: Timestamp::now(),
            reason: String::new(),
            held_at: Instant::now(),
        };
        let mut hold = Hold {
            record,
            letter,
            attempt: None,
            next_try: Instant::now(),
            backoff: Backoff::new(FIRST_RETRY, MAX_RETRY),
            report,
        };
        hold.start(&self.dead_letters, &self.metrics, &self.runtime);
        self.held.insert(partition, hold);
    }

    /// Ends the holds whose letter is now stored (storing the record's offset and resuming the
    /// partition after it), and starts the attempts that are due.
    pub fn tick<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let mut released = Vec::new();
        for (partition, hold) in &mut self.held {
            if hold
                .attempt
                .as_ref()
                .is_some_and(|attempt| attempt.is_finished())
            {
                let attempt = hold.attempt.take().expect("checked above");
                match self.runtime.block_on(attempt) {
                    Ok((_, Ok(_))) => released.push(*partition),
                    Ok((letter, Err(error))) => {
                        hold.letter = letter;
                        hold.failed(&error, &self.report, &self.metrics);
                    }
                    Err(join_error) => hold.failed(
                        &PublishError::Failed(format!("the attempt failed: {join_error}")),
                        &self.report,
                        &self.metrics,
                    ),
                }
            }
            if hold.attempt.is_none()
                && !released.contains(partition)
                && Instant::now() >= hold.next_try
            {
                hold.start(&self.dead_letters, &self.metrics, &self.runtime);
            }
        }
        for partition in released {
            let Some(hold) = self.held.remove(&partition) else {
                continue;
            };
            if let Err(error) =
                consumer.store_offset(hold.record.topic(), partition, hold.record.offset())
            {
                tracing::warn!("[CONSUMER] Could not store offset: {error}");
            }
            resume(consumer, &self.topic, partition, hold.record.offset() + 1);
            if let Some(held) = self.report.clear(&self.topic, partition) {
                self.metrics.held(held);
            }
        }
    }

    /// Forgets every hold: after a rebalance the group starts each partition again from its
    /// committed offset, which is never past a held record, so a record still unprocessable is
    /// met and held again there, by whichever member has the partition now.
    pub fn forget<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        for (partition, hold) in self.held.drain() {
            if let Some(attempt) = hold.attempt {
                attempt.abort();
            }
            let mut list = TopicPartitionList::new();
            list.add_partition(&self.topic, partition);
            // Resuming a partition no longer assigned is refused, and harmless.
            let _ = consumer.resume(&list);
            if let Some(held) = self.report.clear(&self.topic, partition) {
                self.metrics.held(held);
            }
        }
    }
}

impl Drop for Holds {
    /// At shutdown: a letter not stored by now is not waited for; its record's offset was never
    /// stored, so the record is met again at the next start.
    fn drop(&mut self) {
        for hold in self.held.values() {
            if let Some(attempt) = &hold.attempt {
                attempt.abort();
            }
        }
    }
}

impl Hold {
    fn start(
        &mut self,
        dead_letters: &DeadLetters,
        metrics: &Arc<ConsumerMetrics>,
        runtime: &Handle,
    ) {
        let (dead_letters, metrics) = (dead_letters.clone(), metrics.clone());
        let mut letter = self.letter.clone();
        self.attempt = Some(runtime.spawn(async move {
            let result = dead_letters.write(&mut letter, &metrics).await;
            (letter, result)
        }));
    }

    fn failed(&mut self, error: &PublishError, report: &HeldPartitions, metrics: &ConsumerMetrics) {
        let retryable = error.is_retryable();
        let wait = self.backoff.advance();
        let wait = if retryable { wait } else { REFUSED_RETRY };
        self.next_try = Instant::now() + wait;
        self.report.reason = error.to_string();
        metrics.held(report.set(self.report.clone()));
        tracing::error!(
            "[CONSUMER] Could not write the unprocessable record at {} to {}, holding the partition and retrying in {wait:?}{}: {error}",
            self.letter.origin,
            self.letter.record.topic,
            if retryable {
                ""
            } else {
                " (Kafka refuses it for good: an operator must act)"
            },
        );
    }
}

fn pause<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partition: i32, at: i64) {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    if let Err(error) = consumer.pause(&list) {
        tracing::warn!("[CONSUMER] Could not pause {topic}/{partition}: {error}");
    }
    // Records fetched past `at` are dropped by the caller while the hold lasts, and fetched
    // again from `at` on once it ends.
    if let Err(error) = consumer.seek(topic, partition, Offset::Offset(at), Duration::ZERO) {
        tracing::warn!("[CONSUMER] Could not rewind {topic}/{partition} to {at}: {error}");
    }
}

fn resume<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partition: i32, at: i64) {
    if let Err(error) = consumer.seek(topic, partition, Offset::Offset(at), Duration::ZERO) {
        tracing::warn!("[CONSUMER] Could not move {topic}/{partition} to {at}: {error}");
    }
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    if let Err(error) = consumer.resume(&list) {
        tracing::warn!("[CONSUMER] Could not resume {topic}/{partition}: {error}");
    }
}
