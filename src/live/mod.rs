//! The live view of what the consumers process: the latest events (to resume a stream from), a
//! broadcast to the streams that are open, and the running statistics. The consumers report
//! every processed event here; `GET /api/events/stream` and `GET /api/events/stats` read it.
//!
//! Reporting never waits for a reader: a stream that falls behind the broadcast is dropped by its
//! own side (see [`crate::http`]), so a slow client cannot slow the consumers.

mod cursor;
mod event;
mod reader;
mod record;
mod stats;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

use crate::support::lock;
pub use cursor::Cursor;
pub use event::{
    MAX_KEY_BYTES, MAX_PAYLOAD_BYTES, OTHER, PAYLOAD_PREVIEW_BYTES, ProcessedEvent,
    bounded_payload, prefix,
};
pub use reader::LiveReader;
pub use record::{NotAnEvent, read};
pub use stats::{PaymentTotals, Stats, StatsSnapshot, TypeCounts};

/// An event as the live view keeps and sends it.
pub type LiveEvent = Arc<ProcessedEvent>;

/// The most bytes the kept events may take: with the payloads bounded, a full buffer of the
/// largest events fits a few times over in a container's memory.
const MAX_RECENT_BYTES: usize = 8 * 1024 * 1024;

pub struct LiveView {
    inner: Mutex<Inner>,
    /// The latest events kept to resume a stream from, at most (and at most
    /// [`MAX_RECENT_BYTES`] of them).
    capacity: usize,
    broadcast: broadcast::Sender<LiveEvent>,
}

struct Inner {
    recent: VecDeque<LiveEvent>,
    recent_bytes: usize,
    stats: Stats,
}

impl LiveView {
    /// Keeps the latest `recent` events; a stream may fall `backlog` events behind before it is
    /// dropped.
    pub fn new(recent: usize, backlog: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                recent: VecDeque::with_capacity(recent),
                recent_bytes: 0,
                stats: Stats::new(unix_seconds()),
            }),
            capacity: recent,
            broadcast: broadcast::channel(backlog.max(1)).0,
        }
    }

    /// Counts, keeps and announces a processed event.
    pub fn report(&self, event: ProcessedEvent) -> LiveEvent {
        let event = Arc::new(event);
        let mut inner = lock(&self.inner);
        inner
            .stats
            .record(event.event_type, event.action, event.amount, unix_seconds());
        self.keep(&mut inner, event.clone());
        // Under the lock, so that a stream's replay and its live part neither overlap nor gap.
        if self.broadcast.receiver_count() > 0 {
            let _ = self.broadcast.send(event.clone());
        }
        event
    }

    /// Keeps events that were processed before this view began (read back from the topics at
    /// start): a stream can resume from them, but they are neither counted nor announced.
    pub fn remember(&self, events: impl IntoIterator<Item = ProcessedEvent>) {
        let mut inner = lock(&self.inner);
        for event in events {
            self.keep(&mut inner, Arc::new(event));
        }
    }

    fn keep(&self, inner: &mut Inner, event: LiveEvent) {
        inner.recent_bytes += event.size();
        inner.recent.push_back(event);
        while inner.recent.len() > self.capacity || inner.recent_bytes > MAX_RECENT_BYTES {
            let Some(oldest) = inner.recent.pop_front() else {
                break;
            };
            inner.recent_bytes -= oldest.size();
        }
    }

    /// The kept events `cursor` has not seen (all of them for an empty cursor), and a receiver
    /// of every event reported from now on.
    ///
    /// The kept events come in each partition's order: a stream's cursor skips an event that
    /// comes after a later one of its partition, so the replay would lose it (here, or on the
    /// instance a client resumes on). The reader hands them over in that order, but a history
    /// record read past its deadline comes after live ones.
    pub fn follow(&self, cursor: &Cursor) -> (Vec<LiveEvent>, broadcast::Receiver<LiveEvent>) {
        let (unseen, receiver) = {
            let inner = lock(&self.inner);
            let unseen = inner.recent.iter().filter(|event| !cursor.has_seen(event));
            (unseen.cloned().collect(), self.broadcast.subscribe())
        };
        // Outside the lock: the consumers report to the view meanwhile.
        (in_partition_order(unseen, |event| event), receiver)
    }

    /// A receiver of every event reported from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.broadcast.subscribe()
    }

    pub fn stats(&self) -> StatsSnapshot {
        lock(&self.inner).stats.snapshot(unix_seconds())
    }
}

/// `events` with each partition's events in offset order, in the places that partition's
/// events held: the interleaving of partitions stays as it was. `event` finds each one's record.
fn in_partition_order<E>(events: Vec<E>, event: impl Fn(&E) -> &ProcessedEvent) -> Vec<E> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    let mut by_partition: HashMap<(&str, i32), Vec<usize>> = HashMap::new();
    for (place, e) in events.iter().enumerate() {
        let e = event(e);
        by_partition
            .entry((e.topic.as_str(), e.partition))
            .or_default()
            .push(place);
    }
    for places in by_partition.into_values() {
        let mut by_offset = places.clone();
        by_offset.sort_by_key(|&place| event(&events[place]).offset);
        for (place, from) in places.into_iter().zip(by_offset) {
            order[place] = from;
        }
    }
    let mut events: Vec<Option<E>> = events.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|from| events[from].take().expect("each place is taken once"))
        .collect()
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    /// A movie event of `partition` at `offset`, for the live view's tests.
    pub(super) fn at(partition: i32, offset: i64) -> ProcessedEvent {
        ProcessedEvent {
            topic: "movie-events".into(),
            partition,
            offset,
            key: None,
            id: uuid::Uuid::new_v4(),
            event_type: None,
            timestamp: Timestamp::now(),
            action: None,
            payload: serde_json::value::to_raw_value(&1).unwrap(),
            truncated: false,
            payload_bytes: None,
            amount: None,
        }
    }

    #[test]
    fn a_replay_keeps_each_partitions_order_though_the_start_was_read_back_late() {
        let view = LiveView::new(100, 100);
        // Live records first, then what the reader read back at start, older in each partition.
        view.report(at(0, 5));
        view.report(at(1, 9));
        view.remember([at(0, 3), at(1, 7), at(0, 4)]);
        let (kept, _) = view.follow(&Cursor::default());
        let order: Vec<(i32, i64)> = kept.iter().map(|e| (e.partition, e.offset)).collect();
        assert_eq!(order, [(0, 3), (1, 7), (0, 4), (1, 9), (0, 5)]);

        // Resumed past (0, 3): the rest of partition 0 and all of partition 1, none skipped.
        let mut cursor = Cursor::default();
        cursor.advance(&kept[0]);
        let (rest, _) = view.follow(&cursor);
        let mut seen = cursor;
        let sent: Vec<(i32, i64)> = rest
            .iter()
            .filter(|e| {
                !seen.has_seen(e) && {
                    seen.advance(e);
                    true
                }
            })
            .map(|e| (e.partition, e.offset))
            .collect();
        assert_eq!(sent, [(0, 4), (1, 7), (1, 9), (0, 5)]);
    }
}
