//! What a consumer records: the events it processed by type, the records it dead-lettered, the
//! partitions it holds. One set per consumer, that is per topic, registered when it starts.

use metrics::Counter;

use crate::domain::EventType;
use crate::live::OTHER;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::{
    CONSUMER_HELD_PARTITIONS, DEAD_LETTERS, DEAD_LETTERS_TRUNCATED, EVENTS_PROCESSED,
};

pub struct ConsumerMetrics {
    metrics: Metrics,
    topic: String,
    movies: Counter,
    users: Counter,
    payments: Counter,
    others: Counter,
    dead_letters: Counter,
    truncated: Counter,
}

impl ConsumerMetrics {
    pub fn new(metrics: &Metrics, topic: &str) -> Self {
        let processed = |event_type: &str| {
            metrics.counter(
                EVENTS_PROCESSED,
                &[("topic", topic.to_owned()), ("type", event_type.to_owned())],
            )
        };
        let topic_label = [("topic", topic.to_owned())];
        Self {
            metrics: metrics.clone(),
            topic: topic.to_owned(),
            movies: processed(EventType::Movie.as_str()),
            users: processed(EventType::User.as_str()),
            payments: processed(EventType::Payment.as_str()),
            others: processed(OTHER),
            dead_letters: metrics.counter(DEAD_LETTERS, &topic_label),
            truncated: metrics.counter(DEAD_LETTERS_TRUNCATED, &topic_label),
        }
    }

    /// An event processed; `None` for a type this version does not know.
    pub fn processed(&self, event_type: Option<EventType>) {
        match event_type {
            Some(EventType::Movie) => &self.movies,
            Some(EventType::User) => &self.users,
            Some(EventType::Payment) => &self.payments,
            None => &self.others,
        }
        .increment(1);
    }

    /// A record that could not be processed, now in the dead-letter topic (cut short, when it
    /// was too large for Kafka).
    pub fn dead_lettered(&self, truncated: bool) {
        self.dead_letters.increment(1);
        if truncated {
            self.truncated.increment(1);
        }
    }

    /// How many partitions of the topic are held now.
    pub fn held(&self, partitions: usize) {
        self.metrics
            .gauge(CONSUMER_HELD_PARTITIONS, &[("topic", self.topic.clone())])
            .set(partitions as f64);
    }
}
