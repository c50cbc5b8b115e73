//! Records the consumers cannot process go to a dead-letter topic, `<topic>.dlq`, with their
//! key, value and headers, and the reason and their origin in headers of their own, so that none
//! is dropped silently. A consumer never moves past such a record before the dead-letter topic
//! has it: while the write fails, it retries and the partition waits.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::Headers;
use tokio_util::sync::CancellationToken;

use super::ProcessError;
use crate::kafka::topics::Topics;
use crate::kafka::{EventPublisher, OutgoingRecord};

/// The header names of a dead-lettered record (README, Kafka).
mod headers {
    pub const ERROR: &str = "dlq-error";
    pub const SOURCE_TOPIC: &str = "dlq-source-topic";
    pub const SOURCE_PARTITION: &str = "dlq-source-partition";
    pub const SOURCE_OFFSET: &str = "dlq-source-offset";
}

/// The longest wait between two attempts to write a dead letter.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct DeadLetters {
    publisher: Arc<dyn EventPublisher>,
}

impl DeadLetters {
    pub fn new(publisher: Arc<dyn EventPublisher>) -> Self {
        Self { publisher }
    }

    /// Writes `record` with the reason it failed to its dead-letter topic, retrying until the
    /// broker has it. The letter carries the record's headers, then the `dlq-*` ones. Returns
    /// false when `stop` came first: the record is then not stored and its offset must not be.
    pub async fn divert(
        &self,
        record: &impl Message,
        error: &ProcessError,
        stop: &CancellationToken,
    ) -> bool {
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
        let letter = OutgoingRecord {
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
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.publisher.publish(letter.clone()).await {
                Ok(stored) => {
                    crate::metrics::dead_lettered(record.topic());
                    tracing::warn!(
                        "[CONSUMER] Unprocessable record at {origin} sent to {} (partition {}, offset {}): {error}",
                        letter.topic,
                        stored.partition,
                        stored.offset
                    );
                    return true;
                }
                Err(publish_error) => tracing::error!(
                    "[CONSUMER] Could not write the unprocessable record at {origin} to {}, holding the partition and retrying in {backoff:?}: {publish_error}",
                    letter.topic
                ),
            }
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
        }
    }
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
