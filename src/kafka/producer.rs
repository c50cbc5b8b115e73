//! The one shared rdkafka producer behind [`EventPublisher`].

use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use super::client;
use super::publisher::{Delivery, EventPublisher, OutgoingRecord, PublishError, Rejection};
use super::stats::StatsContext;
use crate::config::KafkaConfig;
use crate::metrics;

/// Extra time beyond librdkafka's own `message.timeout.ms` before a request gives up waiting for
/// the delivery report, in case the report itself is late.
const REPORT_GRACE: Duration = crate::config::DELIVERY_REPORT_GRACE;

pub struct KafkaPublisher {
    producer: FutureProducer<StatsContext>,
    delivery_timeout: Duration,
    /// The producer queue's capacity in records (`queue.buffering.max.messages`).
    queue_capacity: usize,
}

impl KafkaPublisher {
    /// Creates the producer. It connects lazily: this succeeds while the broker is down, and
    /// fails only on a configuration librdkafka rejects (for example a bad `RDKAFKA_*` option).
    pub fn new(kafka: &KafkaConfig) -> anyhow::Result<Self> {
        let config = client::producer(kafka);
        let queue_capacity = config
            .get("queue.buffering.max.messages")
            .and_then(|n| n.parse().ok())
            .context("queue.buffering.max.messages must be a number")?;
        let producer = config
            .create_with_context(StatsContext::producer())
            .context(
                "librdkafka rejected the producer configuration (check the RDKAFKA_* variables)",
            )?;
        Ok(Self {
            producer,
            delivery_timeout: kafka.delivery_timeout,
            queue_capacity,
        })
    }

    /// The underlying client, for metadata requests.
    pub fn producer(&self) -> &FutureProducer<StatsContext> {
        &self.producer
    }

    /// Waits until every queued record is delivered or has failed. Blocks the calling thread.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    /// Hands `record` to librdkafka's queue (which copies it) without waiting for anything.
    fn enqueue(&self, record: &OutgoingRecord) -> Result<DeliveryFuture, PublishError> {
        let copied = record.copied_headers.iter().map(|(key, value)| Header {
            key: key.as_str(),
            value: value.as_deref(),
        });
        let own = record.headers.iter().map(|(key, value)| Header {
            key,
            value: Some(value.as_bytes()),
        });
        let headers = copied.chain(own).fold(
            OwnedHeaders::new_with_capacity(record.copied_headers.len() + record.headers.len()),
            |h, header| h.insert(header),
        );
        let mut future_record = FutureRecord::to(&record.topic)
            .payload(&record.value)
            .headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key);
        }
        // `send_result` hands a full queue back at once; `send` would sleep and retry.
        self.producer
            .send_result(future_record)
            .map_err(|(error, _)| self.classify(error))
    }

    /// Waits for the broker's acknowledgement of an enqueued record, never past the timeout.
    async fn delivered(&self, delivery: DeliveryFuture) -> Result<Delivery, PublishError> {
        match tokio::time::timeout(self.delivery_timeout + REPORT_GRACE, delivery).await {
            Ok(Ok(Ok(stored))) => Ok(Delivery {
                partition: stored.partition,
                offset: stored.offset,
            }),
            Ok(Ok(Err((error, _)))) => Err(self.classify(error)),
            Ok(Err(_canceled)) => Err(PublishError::Failed("the producer was shut down".into())),
            Err(_elapsed) => Err(PublishError::TimedOut(self.delivery_timeout.as_millis())),
        }
    }

    fn classify(&self, error: KafkaError) -> PublishError {
        use RDKafkaErrorCode as Code;
        let rejected = |reason| PublishError::Rejected {
            reason,
            message: error.to_string(),
        };
        match error.rdkafka_error_code() {
            Some(Code::QueueFull) => PublishError::QueueFull,
            Some(Code::MessageTimedOut) => {
                PublishError::TimedOut(self.delivery_timeout.as_millis())
            }
            Some(
                Code::MessageSizeTooLarge | Code::MessageBatchTooLarge | Code::InvalidMessageSize,
            ) => rejected(Rejection::TooLarge),
            Some(Code::TopicAuthorizationFailed | Code::ClusterAuthorizationFailed) => {
                rejected(Rejection::NotAuthorized)
            }
            Some(Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::UnknownPartition) => {
                rejected(Rejection::UnknownTopic)
            }
            Some(
                Code::InvalidRecord
                | Code::InvalidMessage
                | Code::InvalidTopic
                | Code::PolicyViolation,
            ) => rejected(Rejection::Invalid),
            _ => PublishError::Failed(error.to_string()),
        }
    }
}

#[async_trait]
impl EventPublisher for KafkaPublisher {
    async fn publish(&self, record: OutgoingRecord) -> Result<Delivery, PublishError> {
        let started = Instant::now();
        let result = match self.enqueue(&record) {
            Ok(delivery) => self.delivered(delivery).await,
            Err(error) => Err(error),
        };
        metrics::produced(&record.topic, &result, started.elapsed());
        result
    }

    async fn publish_batch(
        &self,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<Result<Delivery, PublishError>>, PublishError> {
        // Refuse a batch that cannot fit rather than publish part of it. Other requests may
        // still fill the queue meanwhile; those records then fail one by one with QueueFull.
        let queued = usize::try_from(self.producer.in_flight_count()).unwrap_or(0);
        if queued + records.len() > self.queue_capacity {
            for record in &records {
                metrics::produced(&record.topic, &Err(PublishError::QueueFull), Duration::ZERO);
            }
            return Err(PublishError::QueueFull);
        }
        // Everything is queued before anything is awaited, so the batch travels together.
        let started = Instant::now();
        let deliveries: Vec<_> = records.iter().map(|r| self.enqueue(r)).collect();
        Ok(join_all(
            deliveries
                .into_iter()
                .zip(&records)
                .map(|(delivery, record)| async move {
                    let result = match delivery {
                        Ok(delivery) => self.delivered(delivery).await,
                        Err(error) => Err(error),
                    };
                    metrics::produced(&record.topic, &result, started.elapsed());
                    result
                }),
        )
        .await)
    }

    fn queued(&self) -> Option<u64> {
        u64::try_from(self.producer.in_flight_count()).ok()
    }
}
