//! The live view's own reader of the event topics, so that every instance shows every event,
//! whichever instance of the group processes it.
//!
//! It is a consumer outside the group: it is assigned every partition (it never joins the group,
//! so it takes nothing from the consumers that process) and never commits. At start it reads,
//! per partition, up to the last `recent` records already there, to fill the kept events in the
//! order Kafka timed them: a stream can resume with `Last-Event-ID` on any instance, after a
//! restart too. Live records that arrive meanwhile wait for it, so that every partition goes to
//! the view and its streams in offset order. Those read back that were recorded before the
//! reader was created are kept but not counted: the statistics count the events recorded since
//! this instance started, whichever instance processed them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{LiveView, ProcessedEvent, in_partition_order, read};
use crate::config::KafkaConfig;
use crate::kafka::client;
use crate::support::Backoff;

/// How long a call to the broker (metadata, watermarks) may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the reader looks up from polling to see whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long the records already there may take to read before the reader goes on without the
/// rest (a partition whose leader is away, say): they are then kept as they come.
const HISTORY_DEADLINE: Duration = Duration::from_secs(10);
/// How often the reader looks for partitions added to the topics.
const NEW_PARTITIONS_EVERY: Duration = Duration::from_secs(30);
/// The first wait after a start that failed, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Reads every partition of the event topics into a [`LiveView`].
pub struct LiveReader {
    consumer: BaseConsumer<DefaultConsumerContext>,
    topics: Vec<String>,
    recent: i64,
    /// When it was created, in ms since the epoch: events recorded since are counted.
    started_at: i64,
}

impl LiveReader {
    /// Creates the reader (so that a bad configuration stops start-up) without reading yet.
    pub fn new(kafka: &KafkaConfig, topics: &[String], recent: usize) -> anyhow::Result<Self> {
        let consumer = client::live_reader(kafka)
            .create()
            .context("librdkafka rejected the live view's consumer configuration (check the RDKAFKA_* variables)")?;
        Ok(Self {
            consumer,
            topics: topics.to_vec(),
            recent: i64::try_from(recent).unwrap_or(i64::MAX),
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| {
                    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
                }),
        })
    }

    /// Reads into `live` until `stop`, on a thread of its own (like the consumers). Call once
    /// the topics exist. Topics just created may not show their partitions, or their leaders,
    /// to this client yet: the start is tried again with backoff until it can assign them all.
    pub async fn run(self, live: Arc<LiveView>, stop: CancellationToken) {
        let mut backoff = Backoff::new(FIRST_RETRY, MAX_RETRY);
        let mut reader = self;
        let history = loop {
            let started = tokio::task::spawn_blocking(move || {
                let history = reader.start();
                (reader, history)
            });
            let history = match started.await {
                Ok((back, history)) => {
                    reader = back;
                    history
                }
                Err(error) => {
                    tracing::error!("[LIVE] The live view's reader failed: {error}");
                    return;
                }
            };
            match history {
                Ok(history) => break history,
                Err(error) => tracing::warn!(
                    "[LIVE] The live view cannot read the topics yet: {error:#}; trying again in {} ms",
                    backoff.next_pause().as_millis()
                ),
            }
            if !backoff.wait(&stop).await {
                return;
            }
        };
        let reading = tokio::task::spawn_blocking(move || reader.read(history, &live, &stop));
        if let Err(error) = reading.await {
            tracing::error!("[LIVE] The live view's reader failed: {error}");
        }
    }

    fn read(self, mut history: History, live: &LiveView, stop: &CancellationToken) {
        let mut looked_for_partitions = Instant::now();
        while !stop.is_cancelled() {
            if looked_for_partitions.elapsed() >= NEW_PARTITIONS_EVERY {
                looked_for_partitions = Instant::now();
                if let Err(error) = self.assign_new_partitions(&mut history) {
                    tracing::warn!("[LIVE] Could not look for new partitions: {error:#}");
                }
            }
            match self.consumer.poll(POLL_INTERVAL) {
                None => {}
                Some(Ok(record)) => match read(&record) {
                    Ok((event, _)) if history.wants(&record) => {
                        history.keep(event, &record);
                    }
                    // Live records wait for the history of their partitions, to come after it.
                    Ok((event, _)) if !history.settled => {
                        history.hold(event, &record);
                    }
                    Ok((event, _)) => {
                        live.report(event);
                    }
                    // The consumers that process it say so (and write its dead letter).
                    Err(_) => {}
                },
                Some(Err(error)) => tracing::warn!("[LIVE] Error: {error}"),
            }
            history.settle(live, &self.consumer);
        }
    }

    /// Assigns every partition, each from up to `recent` records before its end.
    fn start(&self) -> anyhow::Result<History> {
        let mut history = History {
            counted_from: self.started_at,
            most_held: usize::try_from(self.recent).unwrap_or(usize::MAX),
            ..History::default()
        };
        let assignment = self.new_partitions(&mut history)?;
        self.consumer
            .assign(&assignment)
            .context("could not assign the partitions")?;
        Ok(history)
    }

    fn assign_new_partitions(&self, history: &mut History) -> anyhow::Result<()> {
        let added = self.new_partitions(history)?;
        if added.count() > 0 {
            self.consumer
                .incremental_assign(&added)
                .context("could not assign the new partitions")?;
        }
        Ok(())
    }

    /// The partitions not yet read, each from where reading it begins: up to `recent` records
    /// before its end (noted in `history`) for those there at start, its beginning for those
    /// added since.
    fn new_partitions(&self, history: &mut History) -> anyhow::Result<TopicPartitionList> {
        let mut added = TopicPartitionList::new();
        let first = history.ends.is_empty() && history.read.is_empty();
        for topic in &self.topics {
            let metadata = self
                .consumer
                .fetch_metadata(Some(topic), BROKER_TIMEOUT)
                .with_context(|| format!("could not read the metadata of {topic}"))?;
            let partitions = match metadata.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => t.partitions(),
                // Looking for new partitions: the next look has this topic's.
                _ if !first => continue,
                // Created a moment ago: the start is tried again.
                Some(t) => anyhow::bail!("{topic} has no partitions to read yet ({:?})", t.error()),
                None => anyhow::bail!("{topic} is not in the metadata yet"),
            };
            for partition in partitions {
                let at = (topic.clone(), partition.id());
                if history.read.contains(&at) {
                    continue;
                }
                let offset = match first {
                    true => {
                        let (low, high) = self
                            .consumer
                            .fetch_watermarks(topic, partition.id(), BROKER_TIMEOUT)
                            .with_context(|| format!("could not read the offsets of {topic}"))?;
                        if high > low {
                            history.ends.insert(at.clone(), high);
                        }
                        Offset::Offset(low.max(high - self.recent))
                    }
                    false => Offset::Beginning,
                };
                history.read.insert(at);
                added
                    .add_partition_offset(topic, partition.id(), offset)
                    .context("could not name a partition")?;
            }
        }
        Ok(added)
    }
}

/// The records that were there before the reader started, gathered to be kept in time order.
#[derive(Default)]
struct History {
    /// Per partition not yet read to its end at start, that end.
    ends: HashMap<(String, i32), i64>,
    /// The partitions assigned.
    read: HashSet<(String, i32)>,
    /// The events gathered.
    events: Vec<Gathered>,
    started: Option<Instant>,
    settled: bool,
    /// Live records held until the history is handed over, and the most that may wait (the
    /// view keeps no more): past that it is handed over as it is.
    held: usize,
    most_held: usize,
    /// Gathered events recorded at or after this time (ms since the epoch) are counted too.
    counted_from: i64,
}

impl History {
    /// Whether `record` was there before the reader started.
    fn wants(&self, record: &impl Message) -> bool {
        let at = (record.topic().to_owned(), record.partition());
        self.ends.get(&at).is_some_and(|end| record.offset() < *end)
    }

    fn keep(&mut self, event: ProcessedEvent, record: &impl Message) {
        let time = time_of(record);
        let counted = time >= self.counted_from;
        self.events.push(Gathered {
            time,
            counted,
            event,
        });
    }

    /// A live record is counted and announced whatever its time, as when none waits.
    fn hold(&mut self, event: ProcessedEvent, record: &impl Message) {
        self.held += 1;
        self.events.push(Gathered {
            time: time_of(record),
            counted: true,
            event,
        });
    }

    /// Once every partition was read to its end at start (or the deadline passed, or too many
    /// live records wait), hands the gathered events and the live records held meanwhile to
    /// `live` ([`hand_over`]); a history record read after that is kept as it comes.
    fn settle(&mut self, live: &LiveView, consumer: &BaseConsumer<DefaultConsumerContext>) {
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.settled && self.events.is_empty() {
            return;
        }
        if !self.settled {
            let caught_up = consumer.position().is_ok_and(|positions| {
                self.ends.iter().all(|((topic, partition), end)| {
                    positions
                        .find_partition(topic, *partition)
                        .and_then(|p| p.offset().to_raw())
                        .is_some_and(|position| position >= *end)
                })
            });
            if !caught_up && started.elapsed() < HISTORY_DEADLINE && self.held < self.most_held {
                return;
            }
            self.settled = true;
        }
        hand_over(std::mem::take(&mut self.events), live);
    }
}

/// An event gathered at start: its record's time (ms since the epoch), and whether it is
/// counted and announced or only kept.
struct Gathered {
    time: i64,
    counted: bool,
    event: ProcessedEvent,
}

fn time_of(record: &impl Message) -> i64 {
    record.timestamp().to_millis().unwrap_or(0)
}

/// Hands `events` to `live` in time order, but each partition's in offset order, since a stream
/// skips an event that comes after a later one of its partition: those counted are reported
/// (counted and announced to the open streams), the others kept only.
fn hand_over(mut events: Vec<Gathered>, live: &LiveView) {
    events.sort_by_key(|gathered| gathered.time);
    for gathered in in_partition_order(events, |gathered| &gathered.event) {
        if gathered.counted {
            live.report(gathered.event);
        } else {
            live.remember([gathered.event]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::Cursor;
    use crate::live::tests::at;

    #[test]
    fn the_history_and_the_live_records_held_meanwhile_go_out_in_each_partitions_order() {
        let live = LiveView::new(100, 100);
        let (_, mut stream) = live.follow(&Cursor::default());
        // Two instances' clocks: partition 0's offset 8 was timed before its offset 7; offset 9
        // is a live record held while the history was read, counted though its producer timed
        // it early. Read back, what was recorded before time 100 is not counted.
        let gathered = |time, counted_from, event| Gathered {
            time,
            counted: time >= counted_from,
            event,
        };
        let events = vec![
            gathered(150, 100, at(0, 7)),
            gathered(120, 100, at(0, 8)),
            gathered(50, 100, at(1, 2)),
            gathered(60, i64::MIN, at(0, 9)),
            gathered(130, 100, at(1, 3)),
        ];
        hand_over(events, &live);
        let (kept, _) = live.follow(&Cursor::default());
        let kept: Vec<(i32, i64)> = kept.iter().map(|e| (e.partition, e.offset)).collect();
        assert_eq!(kept, [(1, 2), (0, 7), (0, 8), (1, 3), (0, 9)]);
        let mut announced = Vec::new();
        while let Ok(event) = stream.try_recv() {
            announced.push((event.partition, event.offset));
        }
        assert_eq!(
            announced,
            [(0, 7), (0, 8), (1, 3), (0, 9)],
            "(1, 2) is before the count"
        );
        assert_eq!(live.stats().processed_total, 4);
    }
}
