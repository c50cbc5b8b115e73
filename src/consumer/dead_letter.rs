//! Records the consumers cannot process go to a dead-letter topic, `<topic>.dlq`, with their
//! key, value and headers, and the reason and their origin in headers of their own, so that none
//! is dropped silently. A letter too large for Kafka is written cut short, saying so and how large
//! the record was. A consumer never moves past such a record before the dead-letter topic has it
//! (see [`super::hold`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rdkafka::Message;
use rdkafka::message::Headers;

use super::ProcessError;
use crate::kafka::topics::Topics;
use crate::kafka::{Delivery, EventPublisher, OutgoingRecord, PublishError, Rejection};
use crate::telemetry::untrusted;

/// The header names of a dead-lettered record (README, Kafka).
mod headers {
    pub const ERROR: &str = "dlq-error";
    pub const SOURCE_TOPIC: &str = "dlq-source-topic";
    pub const SOURCE_PARTITION: &str = "dlq-source-partition";
    pub const SOURCE_OFFSET: &str = "dlq-source-offset";
    /// Only on a letter cut short: why, and to how many bytes.
    pub const TRUNCATED: &str = "dlq-truncated";
    /// Only on a letter cut short: the record's value and key sizes, in bytes.
    pub const ORIGINAL_SIZE: &str = "dlq-original-size";
}

/// What a letter cut short keeps of the record's value and key, and of its headers in all.
const TRUNCATED_VALUE_BYTES: usize = 64 * 1024;
const TRUNCATED_KEY_BYTES: usize = 1024;
const TRUNCATED_HEADER_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct DeadLetters {
    publisher: Arc<dyn EventPublisher>,
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
    pub fn new(publisher: Arc<dyn EventPublisher>) -> Self {
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
        let copied_headers = original_headers(record).unwrap_or_else(|| {
            tracing::warn!(
                "[CONSUMER] A header name of the unprocessable record at {origin} is not UTF-8; its dead letter goes without the record's headers"
            );
            Vec::new()
        });
        Letter {
            record: OutgoingRecord {
                topic: Topics::dead_letter(record.topic()),
                key: record.key().map(<[u8]>::to_vec),
                value: record.payload().unwrap_or_default().to_vec(),
                headers: vec![
                    (headers::ERROR, error.to_string().into()),
                    (headers::SOURCE_TOPIC, record.topic().to_owned().into()),
                    (
                        headers::SOURCE_PARTITION,
                        record.partition().to_string().into(),
                    ),
                    (headers::SOURCE_OFFSET, record.offset().to_string().into()),
                ],
                copied_headers,
            },
            origin,
            source_topic: record.topic().to_owned(),
            truncated: false,
        }
    }

    /// Writes `letter` once. A letter Kafka refuses as too large is written again at once, cut
    /// short; any other failure is the caller's to retry (or to report, when it is for good).
    pub async fn write(&self, letter: &mut Letter) -> Result<Delivery, PublishError> {
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
            crate::metrics::dead_lettered(&letter.source_topic, letter.truncated);
            tracing::warn!(
                "[CONSUMER] Unprocessable record at {} sent to {} (partition {}, offset {}){}: {}",
                letter.origin,
                letter.record.topic,
                stored.partition,
                stored.offset,
                if letter.truncated { ", cut short" } else { "" },
                untrusted(&header(&letter.record, headers::ERROR)),
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
            headers::TRUNCATED,
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
            headers::ORIGINAL_SIZE,
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

fn header(record: &OutgoingRecord, name: &str) -> String {
    record
        .headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

/// `record`'s headers, in order, names and values as they are. None when a name is not UTF-8:
/// any producer can write one, and rdkafka's header accessor panics on it, which must not stop
/// the consumer.
fn original_headers(record: &impl Message) -> Option<Vec<(String, Option<Vec<u8>>)>> {
    let Some(headers) = record.headers() else {
        return Some(Vec::new());
    };
    catch_unwind(AssertUnwindSafe(|| {
        headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect()
    }))
    .ok()
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
        assert_eq!(short.record.topic, "movie-events.dlq");
        assert_eq!(header(&short.record, headers::SOURCE_TOPIC), "movie-events");
        assert_eq!(header(&short.record, headers::SOURCE_PARTITION), "2");
        assert_eq!(header(&short.record, headers::SOURCE_OFFSET), "7");
        assert_eq!(
            header(&short.record, headers::ORIGINAL_SIZE),
            "value=1000000 key=5000 headers=0"
        );
        assert!(
            header(&short.record, headers::TRUNCATED)
                .starts_with("cut to 65536 of 1000000 value bytes: Broker: Message size too large")
        );
    }
}
