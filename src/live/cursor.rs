//! Where a stream is: the last offset it has seen of each partition. It is the stream's SSE id,
//! so a client that reconnects with `Last-Event-ID` resumes exactly, on any instance: every
//! instance keeps the same events of each partition in the same order, though it may read the
//! partitions interleaved differently.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::ProcessedEvent;

/// The most partitions a cursor names: more than any deployment has, few enough that a forged
/// `Last-Event-ID` cannot make a stream's ids large.
const MAX_PARTITIONS: usize = 256;

/// Per topic, per partition, the last offset seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cursor(BTreeMap<String, BTreeMap<i32, i64>>);

impl Cursor {
    /// Reads `<topic>-<partition>-<offset>` entries separated by commas (a single event's id,
    /// as earlier versions sent, is a cursor of one entry). Entries that do not read so are
    /// ignored.
    pub fn parse(text: &str) -> Self {
        let entries = text.split(',').filter_map(|entry| {
            let mut parts = entry.trim().rsplitn(3, '-');
            let offset = parts.next()?.parse().ok()?;
            let partition = parts.next()?.parse().ok()?;
            let topic = parts.next().filter(|t| !t.is_empty())?;
            Some((topic, partition, offset))
        });
        let mut cursor = Self::default();
        for (topic, partition, offset) in entries.take(MAX_PARTITIONS) {
            cursor
                .0
                .entry(topic.to_owned())
                .or_default()
                .insert(partition, offset);
        }
        cursor
    }

    /// Whether `event` is at or before where the cursor is in its partition.
    pub fn has_seen(&self, event: &ProcessedEvent) -> bool {
        self.0
            .get(event.topic.as_str())
            .and_then(|partitions| partitions.get(&event.partition))
            .is_some_and(|offset| event.offset <= *offset)
    }

    /// Moves the cursor past `event`.
    pub fn advance(&mut self, event: &ProcessedEvent) {
        let partitions = match self.0.get_mut(event.topic.as_str()) {
            Some(partitions) => partitions,
            None => self.0.entry(event.topic.clone()).or_default(),
        };
        let at = partitions.entry(event.partition).or_insert(event.offset);
        *at = (*at).max(event.offset);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The cursor as [`Cursor::parse`] reads it.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        for (topic, partitions) in &self.0 {
            for (partition, offset) in partitions {
                if !text.is_empty() {
                    text.push(',');
                }
                let _ = write!(text, "{topic}-{partition}-{offset}");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_wrote_and_an_old_single_id_is_one_entry() {
        let cursor = Cursor::parse("test.movie-events-2-42,user-events-0-7");
        assert_eq!(cursor.encode(), "test.movie-events-2-42,user-events-0-7");
        assert_eq!(
            Cursor::parse("movie-events-0-3").encode(),
            "movie-events-0-3"
        );
    }

    #[test]
    fn forged_cursors_are_read_as_far_as_they_make_sense_and_stay_small() {
        assert!(Cursor::parse("").is_empty());
        assert!(Cursor::parse("garbage,-1-2,a-b-c,movie-events-x-1").is_empty());
        let huge: Vec<String> = (0..10_000).map(|p| format!("t-{p}-1")).collect();
        assert_eq!(Cursor::parse(&huge.join(",")).0["t"].len(), MAX_PARTITIONS);
    }
}
