//! Finding records the service wrote earlier, by event id: how a retry learns whether an attempt
//! whose answer was never remembered (its instance died, or Kafka did not confirm in time) was
//! stored after all, so that it is not published twice.
//!
//! Each attempt's records carry the attempt's time as their Kafka timestamp. Per partition of the
//! topic the search starts at the first offset with that timestamp or later (the broker's time
//! index) and reads on until the records are later than the attempt by more than a record may
//! take to be stored (the delivery timeout, and a margin for the clocks of other producers), or
//! until the partition's end. Searches are rare (they follow a crash or a timeout), each is
//! bounded by the delivery timeout, and up to [`MAX_SEARCHES`] run at once, each with a consumer
//! of its own (after an instance died, its clients' retries all search at once: one at a time,
//! the eighth waited out its request's deadline).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use uuid::Uuid;

use super::client;
use super::headers::CE_ID;
use super::publisher::Delivery;
use super::wire;
use crate::config::KafkaConfig;
use crate::support::lock;

/// How far other producers' clocks may be ahead of the one that timed the attempt.
const CLOCK_MARGIN: Duration = Duration::from_secs(2);
/// How long one poll waits.
const POLL: Duration = Duration::from_millis(100);
/// Searches at once, and so consumers kept at most.
pub const MAX_SEARCHES: usize = 8;

/// A record found: where it is, and its event as it was answered (the value's JSON, without the
/// wire format's prefix when it has one).
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub delivery: Delivery,
    pub value: Vec<u8>,
}

/// The consumers searches use: those idle, and how many exist.
#[derive(Default)]
struct Consumers {
    idle: Vec<BaseConsumer<DefaultConsumerContext>>,
    made: usize,
}

/// Searches the topics for records by event id.
pub struct Lookup {
    config: rdkafka::ClientConfig,
    consumers: Mutex<Consumers>,
    /// Signalled when a consumer is handed back.
    returned: Condvar,
    /// How long after its attempt a record may have been stored.
    span: Duration,
    /// The longest one search may take.
    deadline: Duration,
}

impl Lookup {
    pub fn new(kafka: &KafkaConfig) -> Self {
        Self {
            config: client::reader(kafka),
            consumers: Mutex::new(Consumers::default()),
            returned: Condvar::new(),
            span: kafka.delivery_timeout + CLOCK_MARGIN,
            deadline: kafka.delivery_timeout,
        }
    }

    /// The records of `topic` with one of `ids` as their event id, among those written by the
    /// attempts made at `attempts` (ms since the epoch). Blocks: call it off the async workers.
    pub fn find(
        &self,
        topic: &str,
        ids: &[Uuid],
        attempts: &[i64],
    ) -> anyhow::Result<HashMap<Uuid, Found>> {
        let started = Instant::now();
        let consumer = self.take(started)?;
        let result = self.search(&consumer, topic, ids, attempts, started);
        // Nothing stays assigned between searches.
        let _ = consumer.unassign();
        lock(&self.consumers).idle.push(consumer);
        self.returned.notify_one();
        result
    }

    /// An idle consumer, or a new one while fewer than [`MAX_SEARCHES`] exist, or the first one
    /// handed back before the search's deadline.
    fn take(&self, started: Instant) -> anyhow::Result<BaseConsumer<DefaultConsumerContext>> {
        let mut consumers = lock(&self.consumers);
        loop {
            if let Some(consumer) = consumers.idle.pop() {
                return Ok(consumer);
            }
            if consumers.made < MAX_SEARCHES {
                consumers.made += 1;
                drop(consumers);
                return self
                    .config
                    .create()
                    .inspect_err(|_| lock(&self.consumers).made -= 1)
                    .context("could not create a consumer that looks for earlier records");
            }
            let left = self.deadline.saturating_sub(started.elapsed());
            anyhow::ensure!(
                !left.is_zero(),
                "{MAX_SEARCHES} searches for earlier records were running for the whole deadline"
            );
            consumers = self
                .returned
                .wait_timeout(consumers, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn search(
        &self,
        consumer: &BaseConsumer<DefaultConsumerContext>,
        topic: &str,
        ids: &[Uuid],
        attempts: &[i64],
        started: Instant,
    ) -> anyhow::Result<HashMap<Uuid, Found>> {
        let mut wanted: HashMap<String, Uuid> =
            ids.iter().map(|id| (id.to_string(), *id)).collect();
        let mut found = HashMap::new();
        let metadata = consumer
            .fetch_metadata(Some(topic), self.deadline)
            .with_context(|| format!("could not read the metadata of {topic}"))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut attempts = attempts.to_vec();
        attempts.sort_unstable();
        attempts.dedup();
        for attempt in attempts {
            if wanted.is_empty() {
                break;
            }
            let window = Window {
                topic,
                partitions: &partitions,
                from: attempt,
                until: attempt + i64::try_from(self.span.as_millis()).unwrap_or(i64::MAX),
            };
            self.search_window(consumer, &window, &mut wanted, &mut found, started)?;
        }
        Ok(found)
    }

    /// Reads each partition from the first record timed `from` or later until a record later
    /// than `until`, or its end, taking the `wanted` records into `found`.
    fn search_window(
        &self,
        consumer: &BaseConsumer<DefaultConsumerContext>,
        window: &Window<'_>,
        wanted: &mut HashMap<String, Uuid>,
        found: &mut HashMap<Uuid, Found>,
        started: Instant,
    ) -> anyhow::Result<()> {
        let topic = window.topic;
        let mut times = TopicPartitionList::new();
        for partition in window.partitions {
            times
                .add_partition_offset(topic, *partition, Offset::Offset(window.from))
                .context("could not name a partition")?;
        }
        let starts = consumer
            .offsets_for_times(times, self.deadline)
            .with_context(|| format!("could not look up the offsets of {topic} by time"))?;
        // Per partition, where the search ends at the latest: the end it has now.
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for element in starts.elements() {
            // No record that late in the partition: nothing of the attempt is there.
            let Offset::Offset(start) = element.offset() else {
                continue;
            };
            let partition = element.partition();
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, self.deadline)
                .with_context(|| format!("could not read the offsets of {topic}"))?;
            if start < high {
                ends.insert(partition, high);
                assignment
                    .add_partition_offset(topic, partition, Offset::Offset(start))
                    .context("could not name a partition")?;
            }
        }
        consumer
            .assign(&assignment)
            .context("could not assign the partitions to search")?;
        while !ends.is_empty() && !wanted.is_empty() {
            anyhow::ensure!(
                started.elapsed() < self.deadline,
                "the search for earlier records of {topic} took longer than {} ms",
                self.deadline.as_millis()
            );
            let Some(polled) = consumer.poll(POLL) else {
                continue;
            };
            let record = polled.with_context(|| format!("could not read {topic}"))?;
            let partition = record.partition();
            let Some(end) = ends.get(&partition).copied() else {
                continue;
            };
            if let Some(id) = event_id(&record).and_then(|id| wanted.remove(id)) {
                let delivery = Delivery {
                    partition,
                    offset: record.offset(),
                };
                let value = wire::data(record.payload().unwrap_or_default()).to_vec();
                found.insert(id, Found { delivery, value });
            }
            let time = record.timestamp().to_millis().unwrap_or(i64::MAX);
            if record.offset() + 1 >= end || time > window.until {
                ends.remove(&partition);
            }
        }
        Ok(())
    }
}

/// One attempt's stretch of a topic.
struct Window<'a> {
    topic: &'a str,
    partitions: &'a [i32],
    /// The attempt's time, ms since the epoch.
    from: i64,
    /// Records timed later (by any producer's clock) were stored after the attempt's.
    until: i64,
}

/// The event id a record of the service's carries (its `ce_id` header).
fn event_id<M: Message>(record: &M) -> Option<&str> {
    let headers = record.headers()?;
    headers
        .iter()
        .find(|header| header.key == CE_ID)
        .and_then(|header| std::str::from_utf8(header.value?).ok())
}
