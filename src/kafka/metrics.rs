//! What the Kafka layer records: every record handed to the producer, by topic and outcome, and
//! the time to its acknowledgement.

use std::collections::HashMap;
use std::time::Duration;

use metrics::{Counter, Histogram};

use super::publisher::{Delivery, PublishError};
use crate::telemetry::Metrics;
use crate::telemetry::metrics::{KAFKA_PRODUCE, KAFKA_PRODUCE_DURATION, KAFKA_PRODUCER_QUEUE};

/// The produce instruments of each topic the service writes, registered up front.
pub struct ProduceMetrics {
    metrics: Metrics,
    topics: HashMap<String, TopicInstruments>,
}

struct TopicInstruments {
    stored: Counter,
    queue_full: Counter,
    timed_out: Counter,
    failed: Counter,
    duration: Histogram,
}

impl ProduceMetrics {
    /// Instruments for `topics` (the event topics and their dead-letter topics).
    pub fn new(metrics: &Metrics, topics: &[String]) -> Self {
        let topics = topics
            .iter()
            .map(|topic| (topic.clone(), TopicInstruments::new(metrics, topic)))
            .collect();
        Self {
            metrics: metrics.clone(),
            topics,
        }
    }

    /// A record the producer was asked for, with its outcome and (for an acknowledged one) the
    /// time from enqueueing to the broker's acknowledgement.
    pub fn record(&self, topic: &str, result: &Result<Delivery, PublishError>, took: Duration) {
        match self.topics.get(topic) {
            Some(instruments) => instruments.record(result, took),
            // A topic not known up front (none today) is registered for this record only.
            None => TopicInstruments::new(&self.metrics, topic).record(result, took),
        }
    }

    /// Records awaiting the broker's acknowledgement, sampled when the metrics are scraped.
    pub fn queued(&self, events: usize) {
        self.metrics
            .gauge(KAFKA_PRODUCER_QUEUE, &[] as &[(&str, &str)])
            .set(events as f64);
    }
}

impl TopicInstruments {
    fn new(metrics: &Metrics, topic: &str) -> Self {
        let counter = |result: &'static str| {
            metrics.counter(
                KAFKA_PRODUCE,
                &[("topic", topic.to_owned()), ("result", result.to_owned())],
            )
        };
        Self {
            stored: counter("stored"),
            queue_full: counter("queue_full"),
            timed_out: counter("timed_out"),
            failed: counter("failed"),
            duration: metrics.histogram(KAFKA_PRODUCE_DURATION, &[("topic", topic.to_owned())]),
        }
    }

    fn record(&self, result: &Result<Delivery, PublishError>, took: Duration) {
        match result {
            Ok(_) => {
                self.stored.increment(1);
                self.duration.record(took);
            }
            Err(PublishError::QueueFull) => self.queue_full.increment(1),
            Err(PublishError::TimedOut(_)) => self.timed_out.increment(1),
            Err(PublishError::Failed(_) | PublishError::Rejected { .. }) => {
                self.failed.increment(1)
            }
        }
    }
}
