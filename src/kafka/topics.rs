//! Creates the service's topics through the admin API, since brokers may not create them.

use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::client;
use crate::config::KafkaConfig;
use crate::domain::EventType;

/// The names of the service's topics, one per event type, under the configured prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    names: [String; 3],
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Self {
            names: EventType::ALL.map(|t| format!("{prefix}{}", t.topic_suffix())),
        }
    }

    /// The topic events of `event_type` go to.
    pub fn topic(&self, event_type: EventType) -> &str {
        &self.names[event_type as usize]
    }

    pub fn all(&self) -> &[String] {
        &self.names
    }
}

/// Creates whichever of the topics are missing; topics that exist are left as they are.
pub async fn ensure_topics(kafka: &KafkaConfig, names: &Topics) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client::common(kafka)
        .create()
        .context("librdkafka rejected the admin client configuration")?;
    let topics: Vec<NewTopic> = names
        .all()
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
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(name) => tracing::info!("Created topic {name}"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => failures.push(format!("{name}: {code}")),
        }
    }
    if !failures.is_empty() {
        bail!("could not create topics: {}", failures.join(", "));
    }
    Ok(())
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
        assert_eq!(plain.topic(EventType::Payment), "payment-events");
        assert_eq!(
            Topics::new("test.").topic(EventType::User),
            "test.user-events"
        );
    }
}
