//! The remembered answers, in this process's memory, bounded in time (the window) and in bytes.
//!
//! The byte bound is shared fairly between callers: when it is reached, the caller that holds
//! the most gives up its oldest answers first. So a client that floods the service with distinct
//! keys only ever pushes out its own answers while it holds more than anyone else, and another
//! caller's retry still finds its answer. A request in flight is never forgotten before it ends
//! (a repeat of it must get 409, not publish again), and a request that failed costs nothing.
//!
//! Hand-written rather than a cache crate (moka and the like): those evict by their own policy
//! across all entries, and can neither pin the entries in flight nor keep callers apart.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Begin, Claim, Ending, Remembered, Store};
use crate::http::client::ClientKey;
use crate::shared::Unavailable;
use crate::support::lock;

/// What a key costs beyond its text and its answer: the map's and the queue's slots, the hash.
const ENTRY_OVERHEAD_BYTES: usize = 128;

pub struct MemoryStore {
    window: Duration,
    max_bytes: usize,
    inner: Mutex<Callers>,
}

#[derive(Default)]
struct Callers {
    ids: HashMap<ClientKey, u64>,
    tables: HashMap<u64, Table>,
    /// Every caller by the bytes it holds, to find the largest at once.
    by_bytes: BTreeSet<(usize, u64)>,
    bytes: usize,
    next_serial: u64,
}

/// One caller's keys.
struct Table {
    caller: ClientKey,
    entries: HashMap<String, Entry>,
    /// Answered keys, oldest answer first: the order they expire and are given up in.
    answered: VecDeque<(Instant, String)>,
    bytes: usize,
}

struct Entry {
    serial: u64,
    fingerprint: [u8; 32],
    answer: Option<Remembered>,
}

impl MemoryStore {
    /// Remembers answers for `window`, in at most about `max_bytes`.
    pub fn new(window: Duration, max_bytes: usize) -> Self {
        Self {
            window,
            max_bytes,
            inner: Mutex::default(),
        }
    }

    /// Claims `key` for `caller`'s request with `fingerprint`, or says why not.
    pub fn begin_at(
        &self,
        caller: &ClientKey,
        key: &str,
        fingerprint: [u8; 32],
        now: Instant,
    ) -> Begin {
        let mut callers = self.lock();
        let callers = &mut *callers;
        let next_serial = callers.next_serial;
        let id = *callers.ids.entry(caller.clone()).or_insert(next_serial);
        callers.next_serial += 1;
        let table = callers.tables.entry(id).or_insert_with(|| Table {
            caller: caller.clone(),
            entries: HashMap::new(),
            answered: VecDeque::new(),
            bytes: 0,
        });
        let freed = table.expire(now, self.window);
        if let Some(entry) = table.entries.get(key) {
            let begin = match (&entry.answer, entry.fingerprint == fingerprint) {
                (_, false) => Begin::Mismatch,
                (Some(answer), true) => Begin::Replay(answer.clone()),
                (None, true) => Begin::InProgress,
            };
            callers.charge(id, 0, freed);
            return begin;
        }
        let serial = callers.next_serial;
        callers.next_serial += 1;
        let table = callers
            .tables
            .get_mut(&id)
            .expect("the table was just made");
        table.entries.insert(
            key.to_owned(),
            Entry {
                serial,
                fingerprint,
                answer: None,
            },
        );
        callers.charge(id, key_cost(key), freed);
        Begin::Fresh(Claim {
            caller: caller.clone(),
            key: key.to_owned(),
            token: serial,
            at: super::unix_millis(),
            // A request that failed leaves nothing behind here: there is no earlier attempt
            // to look for (its events have the same ids, for the consumers to tell).
            earlier: Vec::new(),
        })
    }

    /// Ends `claim`'s request: remembers its answer, or, without one, frees the key at no cost.
    /// A claim whose key has since been forgotten and claimed again is left alone.
    pub fn finish_at(&self, claim: &Claim, answer: Option<Remembered>, now: Instant) {
        let mut callers = self.lock();
        let callers = &mut *callers;
        let Some(&id) = callers.ids.get(&claim.caller) else {
            return;
        };
        let Some(table) = callers.tables.get_mut(&id) else {
            return;
        };
        let Some(entry) = table
            .entries
            .get_mut(&claim.key)
            .filter(|e| e.serial == claim.token && e.answer.is_none())
        else {
            return;
        };
        match answer {
            Some(answer) => {
                let cost = answer.body.len() + claim.key.len();
                entry.answer = Some(answer);
                table.answered.push_back((now, claim.key.clone()));
                callers.charge(id, cost, 0);
                callers.make_room(self.max_bytes);
            }
            None => {
                table.entries.remove(&claim.key);
                callers.charge(id, 0, key_cost(&claim.key));
            }
        }
    }

    /// Forgets every answer older than the window, and the callers left with no keys.
    pub fn expire_at(&self, now: Instant) {
        let mut callers = self.lock();
        let ids: Vec<u64> = callers.tables.keys().copied().collect();
        for id in ids {
            let freed = callers
                .tables
                .get_mut(&id)
                .map_or(0, |table| table.expire(now, self.window));
            callers.charge(id, 0, freed);
        }
    }

    /// The bytes held in all, and by `caller` (for tests and the metrics).
    pub fn usage(&self, caller: &ClientKey) -> (usize, usize) {
        let callers = self.lock();
        let own = callers
            .ids
            .get(caller)
            .and_then(|id| callers.tables.get(id))
            .map_or(0, |table| table.bytes);
        (callers.bytes, own)
    }

    fn lock(&self) -> MutexGuard<'_, Callers> {
        // The bookkeeping is updated in one step under the lock: a panic elsewhere cannot leave
        // it half-done.
        lock(&self.inner)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn begin(
        &self,
        caller: &ClientKey,
        key: &str,
        fingerprint: [u8; 32],
    ) -> Result<Begin, Unavailable> {
        Ok(self.begin_at(caller, key, fingerprint, Instant::now()))
    }

    async fn finish(&self, claim: &Claim, ending: Ending) {
        let answer = match ending {
            Ending::Answered(answer) => Some(answer),
            Ending::NothingPublished | Ending::Unsure => None,
        };
        self.finish_at(claim, answer, Instant::now());
    }

    fn expire(&self) {
        self.expire_at(Instant::now());
    }
}

/// What claiming a key costs until it is answered: its text and the bookkeeping.
fn key_cost(key: &str) -> usize {
    key.len() + ENTRY_OVERHEAD_BYTES
}

impl Callers {
    /// Adds `added` and removes `removed` bytes to caller `id`'s account, forgetting the caller
    /// once it holds nothing.
    fn charge(&mut self, id: u64, added: usize, removed: usize) {
        let Some(table) = self.tables.get_mut(&id) else {
            return;
        };
        self.by_bytes.remove(&(table.bytes, id));
        table.bytes = table.bytes + added - removed.min(table.bytes + added);
        self.bytes = self.bytes + added - removed.min(self.bytes + added);
        if table.entries.is_empty() {
            let caller = table.caller.clone();
            self.tables.remove(&id);
            self.ids.remove(&caller);
        } else {
            self.by_bytes.insert((table.bytes, id));
        }
    }

    /// Gives up answers, the largest holder's oldest first, until the store fits `max_bytes`
    /// (or only requests in flight are left).
    fn make_room(&mut self, max_bytes: usize) {
        while self.bytes > max_bytes {
            let largest = self
                .by_bytes
                .iter()
                .rev()
                .map(|(_, id)| *id)
                .find(|id| self.tables.get(id).is_some_and(|t| !t.answered.is_empty()));
            let Some(id) = largest else { return };
            let freed = self
                .tables
                .get_mut(&id)
                .map_or(0, |table| table.forget_oldest());
            self.charge(id, 0, freed);
        }
    }
}

impl Table {
    /// Forgets the answers older than `window`; returns the bytes freed.
    fn expire(&mut self, now: Instant, window: Duration) -> usize {
        let mut freed = 0;
        while let Some((answered_at, _)) = self.answered.front() {
            if now.duration_since(*answered_at) < window {
                break;
            }
            freed += self.forget_oldest();
        }
        freed
    }

    /// Forgets the oldest answer; returns the bytes freed.
    fn forget_oldest(&mut self) -> usize {
        let Some((_, key)) = self.answered.pop_front() else {
            return 0;
        };
        let answer = self
            .entries
            .remove(&key)
            .and_then(|entry| entry.answer)
            .map_or(0, |answer| answer.body.len());
        answer + key.len() + key_cost(&key)
    }
}

#[cfg(test)]
mod tests;
