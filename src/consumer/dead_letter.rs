//! Records the consumers cannot process go to a dead-letter topic, `<topic>.dlq`, with their
//! key, value and headers, and the reason and their origin in headers of their own, so that none
//! is dropped silently. A letter too large for Kafka is written cut short, saying so and how large
//! the record was. A consumer never moves past such a record before the dead-letter topic has it
//! (see [`super::hold`]).

use rdkafka::Message;

use super::ProcessError;
use super::metrics::ConsumerMetrics;
use crate::kafka::topics::Topics;
use crate::kafka::{Delivery, OutgoingRecord, PublishError, Publisher, Rejection, headers};
use crate::telemetry::untrusted;

/// The header names of a dead-lettered record (README, Kafka), besides the headers of the record
/// it stands for. The AsyncAPI document describes each of [`letter_headers::ALL`].
pub mod letter_headers {
    pub const ERROR: &str = "dlq-error";
    pub const SOURCE_TOPIC: &str = "dlq-source-topic";
    pub const SOURCE_PARTITION: &str = "dlq-source-partition";
    pub const SOURCE_OFFSET: &str = "dlq-source-offset";
    /// Only on a letter cut short: why, and to how many bytes.
    pub const TRUNCATED: &str = "dlq-truncated";
    /// Only on a letter cut short: the record's value and key sizes, in bytes.
    pub const ORIGINAL_SIZE: &str = "dlq-original-size";
    /// Every one of them; a test below keeps it complete.
    pub const ALL: &[&str] = &[
        ERROR,
        SOURCE_TOPIC,
        SOURCE_PARTITION,
        SOURCE_OFFSET,
        TRUNCATED,
        ORIGINAL_SIZE,
    ];
}

/// What a letter cut short keeps of the record's value and key, and of its headers in all.
const TRUNCATED_VALUE_BYTES: usize = 64 * 1024;
const TRUNCATED_KEY_BYTES: usize = 1024;
const TRUNCATED_HEADER_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct DeadLetters {
    publisher: Publisher,
}

/// A dead letter ready to be written, and where it comes from.
#[derive(Debug, Clone)]
pub struct Letter {
    pub record: OutgoingRecord,
    /// `<topic>/<partition>/<offset>` of the record it stands for.
    pub origin: String,
    pub source_topic: String,
    /// Whether this is the letter cut short.
    pub truncated: bool,
}

impl DeadLetters {
    pub fn new(publisher: Publisher) -> Self {
        Self { publisher }
    }

    /// The letter for `record`, which could not be processed because of `error`: the record's
    /// key, value and headers, then the `dlq-*` headers.
    pub fn letter(record: &impl Message, error: &ProcessError) -> Letter {
        let origin = format!(
            "{}/{}/{}",
            record.topic(),
            record.partition(),
            record.offset()
        );
        let copied_headers = headers::copied(record).unwrap_or_else(|_| {
            tracing::warn!(
                "[CONSUMER] A header name of the unprocessable record at {origin} is not UTF-8; its dead letter goes without the record's headers"
            );
            Vec::new()
        });
        Letter {
            record: OutgoingRecord {
                topic: Topics::dead_letter(record.topic()).into(),
                key: record.key().map(<[u8]>::to_vec),
                value: record.payload().unwrap_or_default().to_vec(),
                headers: vec![
                    (letter_headers::ERROR, error.to_string().into()),
                    (
                        letter_headers::SOURCE_TOPIC,
                        record.topic().to_owned().into(),
                    ),
                    (
                        letter_headers::SOURCE_PARTITION,
                        record.partition().to_string().into(),
                    ),
                    (
                        letter_headers::SOURCE_OFFSET,
                        record.offset().to_string().into(),
                    ),
                ],
                copied_headers,
                timestamp: None,
            },
            origin,
            source_topic: record.topic().to_owned(),
            truncated: false,
        }
    }

    /// Writes `letter` once. A letter Kafka refuses as too large is written again at once, cut
    /// short; any other failure is the caller's to retry (or to report, when it is for good).
    pub async fn write(
        &self,
        letter: &mut Letter,
        metrics: &ConsumerMetrics,
    ) -> Result<Delivery, PublishError> {
        let result = match self.publisher.publish(letter.record.clone()).await {
            Err(PublishError::Rejected {
                reason: Rejection::TooLarge,
                message,
            }) if !letter.truncated => {
                *letter = letter.cut_short(&message);
                self.publisher.publish(letter.record.clone()).await
            }
            other => other,
        };
        if let Ok(stored) = &result {
            metrics.dead_lettered(letter.truncated);
            tracing::warn!(
                "[CONSUMER] Unprocessable record at {} sent to {} (partition {}, offset {}){}: {}",
                letter.origin,
                letter.record.topic,
                stored.partition,
                stored.offset,
                if letter.truncated { ", cut short" } else { "" },
                untrusted(
                    letter
                        .record
                        .header(letter_headers::ERROR)
                        .unwrap_or_default()
                ),
            );
        }
        result
    }
}

impl Letter {
    /// This letter with its value and key cut short, its copied headers dropped when they are
    /// large, and headers saying so.
    fn cut_short(&self, kafka_error: &str) -> Letter {
        let record = &self.record;
        let mut short = record.clone();
        short.value.truncate(TRUNCATED_VALUE_BYTES);
        if let Some(key) = &mut short.key {
            key.truncate(TRUNCATED_KEY_BYTES);
        }
        let header_bytes: usize = record
            .copied_headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        let dropped = header_bytes > TRUNCATED_HEADER_BYTES;
        if dropped {
            short.copied_headers.clear();
        }
        short.headers.push((
            letter_headers::TRUNCATED,
            format!(
                "cut to {} of {} value bytes{}: {kafka_error}",
                short.value.len(),
                record.value.len(),
                if dropped {
                    ", the record's headers dropped"
                } else {
                    ""
                }
            )
            .into(),
        ));
        short.headers.push((
            letter_headers::ORIGINAL_SIZE,
            format!(
                "value={} key={} headers={header_bytes}",
                record.value.len(),
                record.key.as_ref().map_or(0, Vec::len)
            )
            .into(),
        ));
        Letter {
            record: short,
            origin: self.origin.clone(),
            source_topic: self.source_topic.clone(),
            truncated: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    #[test]
    fn a_letter_cut_short_keeps_its_origin_and_says_how_large_the_record_was() {
        let record = OwnedMessage::new(
            Some(vec![b'x'; 1_000_000]),
            Some(vec![b'k'; 5000]),
            "movie-events".into(),
            Timestamp::NotAvailable,
            2,
            7,
            None,
        );
        let letter = DeadLetters::letter(&record, &ProcessError::Empty);
        let short = letter.cut_short("Broker: Message size too large");
        assert!(short.truncated);
        assert_eq!(short.record.value.len(), TRUNCATED_VALUE_BYTES);
        assert_eq!(
            short.record.key.as_ref().unwrap().len(),
            TRUNCATED_KEY_BYTES
        );
        assert_eq!(&*short.record.topic, "movie-events.dlq");
        let header = |name| short.record.header(name).unwrap_or_default();
        assert_eq!(header(letter_headers::SOURCE_TOPIC), "movie-events");
        assert_eq!(header(letter_headers::SOURCE_PARTITION), "2");
        assert_eq!(header(letter_headers::SOURCE_OFFSET), "7");
        assert_eq!(
            header(letter_headers::ORIGINAL_SIZE),
            "value=1000000 key=5000 headers=0"
        );
        assert!(
            header(letter_headers::TRUNCATED)
                .starts_with("cut to 65536 of 1000000 value bytes: Broker: Message size too large")
        );
        // Every header either letter carries is one the contract lists.
        for (name, _) in letter.record.headers.iter().chain(&short.record.headers) {
            assert!(letter_headers::ALL.contains(name), "{name} is not listed");
        }
    }
}
