//! The one shared rdkafka producer behind [`EventPublisher`].

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::client;
use super::publisher::{Delivery, EventPublisher, OutgoingRecord, PublishError};
use crate::config::KafkaConfig;

/// Extra time beyond librdkafka's own `message.timeout.ms` before a request gives up waiting for
/// the delivery report, in case the report itself is late.
const REPORT_GRACE: Duration = Duration::from_secs(1);

pub struct KafkaPublisher {
    producer: FutureProducer,
    delivery_timeout: Duration,
}

impl KafkaPublisher {
    /// Creates the producer. It connects lazily: this succeeds while the broker is down, and
    /// fails only on a configuration librdkafka rejects (for example a bad `RDKAFKA_*` option).
    pub fn new(kafka: &KafkaConfig) -> anyhow::Result<Self> {
        let producer = client::producer(kafka).create().context(
            "librdkafka rejected the producer configuration (check the RDKAFKA_* variables)",
        )?;
        Ok(Self {
            producer,
            delivery_timeout: kafka.delivery_timeout,
        })
    }

    /// The underlying client, for metadata requests.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Waits until every queued record is delivered or has failed. Blocks the calling thread.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

#[async_trait]
impl EventPublisher for KafkaPublisher {
    async fn publish(&self, record: OutgoingRecord) -> Result<Delivery, PublishError> {
        let headers = record.headers.iter().fold(
            OwnedHeaders::new_with_capacity(record.headers.len()),
            |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                })
            },
        );
        let future_record = FutureRecord::to(&record.topic)
            .key(&record.key)
            .payload(&record.value)
            .headers(headers);
        // `send_result` hands a full queue back at once; `send` would sleep and retry.
        let delivery = self
            .producer
            .send_result(future_record)
            .map_err(|(error, _)| classify(error, self.delivery_timeout))?;
        match tokio::time::timeout(self.delivery_timeout + REPORT_GRACE, delivery).await {
            Ok(Ok(Ok(stored))) => Ok(Delivery {
                partition: stored.partition,
                offset: stored.offset,
            }),
            Ok(Ok(Err((error, _)))) => Err(classify(error, self.delivery_timeout)),
            Ok(Err(_canceled)) => Err(PublishError::Failed("the producer was shut down".into())),
            Err(_elapsed) => Err(PublishError::TimedOut(self.delivery_timeout.as_millis())),
        }
    }
}

fn classify(error: KafkaError, delivery_timeout: Duration) -> PublishError {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => PublishError::QueueFull,
        Some(RDKafkaErrorCode::MessageTimedOut) => {
            PublishError::TimedOut(delivery_timeout.as_millis())
        }
        _ => PublishError::Failed(error.to_string()),
    }
}
