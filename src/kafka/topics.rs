//! Creates the service's topics through the admin API, since brokers may not create them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::client;
use crate::config::KafkaConfig;
use crate::domain::EventType;

/// The names of the service's topics, one per event type, under the configured prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    movie: Arc<str>,
    user: Arc<str>,
    payment: Arc<str>,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        let name = |t: EventType| format!("{prefix}{}", t.topic_suffix()).into();
        Self {
            movie: name(EventType::Movie),
            user: name(EventType::User),
            payment: name(EventType::Payment),
        }
    }

    /// The topic events of `event_type` go to, shared by every record.
    pub fn topic(&self, event_type: EventType) -> &Arc<str> {
        match event_type {
            EventType::Movie => &self.movie,
            EventType::User => &self.user,
            EventType::Payment => &self.payment,
        }
    }

    /// The event topics.
    pub fn all(&self) -> Vec<String> {
        EventType::ALL.map(|t| self.topic(t).to_string()).to_vec()
    }

    /// Where the consumers put the records of `topic` they cannot process.
    pub fn dead_letter(topic: &str) -> String {
        format!("{topic}.dlq")
    }

    /// The dead-letter topics of the event topics.
    pub fn dead_letters(&self) -> Vec<String> {
        self.all().iter().map(|t| Self::dead_letter(t)).collect()
    }

    /// Every topic the service needs: the event topics and their dead-letter topics.
    pub fn provisioned(&self) -> Vec<String> {
        self.all().into_iter().chain(self.dead_letters()).collect()
    }
}

/// Why topics could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateTopicsError {
    /// The cluster did not answer, or the client could not be made; worth retrying.
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
    /// The cluster refused: retrying helps only if an operator changes something (permissions,
    /// the number of brokers, a topic policy).
    #[error("the cluster refused to create topics: {0}")]
    Refused(String),
}

/// Creates the topics `names` (those the health check found missing); topics that exist by now
/// are left as they are.
pub async fn create_topics(kafka: &KafkaConfig, names: &[String]) -> Result<(), CreateTopicsError> {
    let admin: AdminClient<DefaultClientContext> = client::common(kafka)
        .create()
        .context("librdkafka rejected the admin client configuration")?;
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                kafka.topic_partitions,
                TopicReplication::Fixed(kafka.topic_replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .operation_timeout(Some(Duration::from_secs(5)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .context("the topic creation request failed")?;
    let mut refusals = Vec::new();
    for result in results {
        match result {
            Ok(name) => tracing::info!("Created topic {name}"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => refusals.push(format!("{name}: {code}")),
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(CreateTopicsError::Refused(refusals.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_the_seed_names_under_the_prefix() {
        let plain = Topics::new("");
        assert_eq!(
            plain.all(),
            ["movie-events", "user-events", "payment-events"]
        );
        assert_eq!(&**plain.topic(EventType::Payment), "payment-events");
        assert_eq!(
            &**Topics::new("test.").topic(EventType::User),
            "test.user-events"
        );
        assert_eq!(
            Topics::new("").provisioned(),
            [
                "movie-events",
                "user-events",
                "payment-events",
                "movie-events.dlq",
                "user-events.dlq",
                "payment-events.dlq"
            ]
        );
    }
}
