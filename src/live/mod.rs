//! The live view of what the consumers process: the latest events (to resume a stream from), a
//! broadcast to the streams that are open, and the running statistics. The consumers report
//! every processed event here; `GET /api/events/stream` and `GET /api/events/stats` read it.
//!
//! Reporting never waits for a reader: a stream that falls behind the broadcast is dropped by its
//! own side (see [`crate::http`]), so a slow client cannot slow the consumers.

mod event;
mod stats;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

use crate::support::lock;
pub use event::{
    MAX_KEY_BYTES, MAX_PAYLOAD_BYTES, OTHER, PAYLOAD_PREVIEW_BYTES, ProcessedEvent,
    bounded_payload, prefix,
};
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
        inner.recent_bytes += event.size();
        inner.recent.push_back(event.clone());
        while inner.recent.len() > self.capacity || inner.recent_bytes > MAX_RECENT_BYTES {
            let Some(oldest) = inner.recent.pop_front() else {
                break;
            };
            inner.recent_bytes -= oldest.size();
        }
        // Under the lock, so that a stream's replay and its live part neither overlap nor gap.
        if self.broadcast.receiver_count() > 0 {
            let _ = self.broadcast.send(event.clone());
        }
        event
    }

    /// The events kept after the one with `last_id` (all kept events when it is not among them,
    /// or `None`), and a receiver of every event reported from now on.
    pub fn follow(
        &self,
        last_id: Option<&str>,
    ) -> (Vec<LiveEvent>, broadcast::Receiver<LiveEvent>) {
        let inner = lock(&self.inner);
        let receiver = self.broadcast.subscribe();
        let start = last_id
            .and_then(|id| inner.recent.iter().rposition(|e| e.stream_id() == id))
            .map_or(0, |position| position + 1);
        (inner.recent.range(start..).cloned().collect(), receiver)
    }

    /// A receiver of every event reported from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.broadcast.subscribe()
    }

    pub fn stats(&self) -> StatsSnapshot {
        lock(&self.inner).stats.snapshot(unix_seconds())
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
