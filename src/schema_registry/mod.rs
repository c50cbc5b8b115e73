//! The schema registry (`SCHEMA_REGISTRY_URL`): each event topic's value schema (the records'
//! contract, [`crate::contract`]) registered under the subject `<topic>-value`, and the ids the
//! registry gave them, which the records carry in the Confluent wire format when
//! `SCHEMA_REGISTRY_WIRE_FORMAT` is on.
//!
//! Start-up registers every subject before the service serves ([`SchemaRegistry::start`]), so a
//! record never goes out without its schema's id. A registry that refuses a schema (409, the
//! subject's compatibility rule; or any other 4xx) stops start-up at once, naming the subject:
//! this version's events break the subject's contract, and serving would write records its
//! consumers cannot read. A registry that does not answer (or answers 5xx) is tried again with
//! backoff until `SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS`, then start-up fails saying so. Once
//! serving, a background task registers the subjects again now and then (the same schema is
//! answered with the same id, and a subject someone deleted comes back); what it finds is
//! health's, and never stops publishing: the ids are known.

mod client;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::bail;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use client::Client;
pub use client::RegistryError;

use crate::config::SchemaRegistryConfig;
use crate::contract;
use crate::domain::{EventType, Timestamp};
use crate::kafka::topics::Topics;
use crate::kafka::wire;
use crate::support::{Backoff, sleep_or_stop};

/// The first wait after a failed attempt, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(10);
/// How often the subjects are registered again while the registry answers.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// What the last attempt found.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SchemaRegistryStatus {
    /// Whether the registry answered the last attempt (start-up's, then the background's).
    pub reachable: bool,
    /// Whether record values carry the schema's id (`SCHEMA_REGISTRY_WIRE_FORMAT`).
    pub wire_format: bool,
    /// Each event topic's subject and its schema's id.
    pub subjects: Vec<RegisteredSubject>,
    /// Why the last attempt failed, if it did. The ids stay those registered before.
    pub last_error: Option<String>,
    /// When the last attempt finished.
    pub checked_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RegisteredSubject {
    /// `<topic>-value`.
    pub subject: String,
    /// The id the registry gave the topic's value schema.
    pub id: u32,
}

/// One event type's subject and the schema registered under it.
struct Subject {
    event_type: EventType,
    name: String,
    schema: String,
    /// The id the registry answered last.
    id: AtomicU32,
}

/// The registry and what it gave, cheap to clone.
#[derive(Clone)]
pub struct SchemaRegistry(Arc<Inner>);

struct Inner {
    client: Client,
    /// In [`EventType::ALL`]'s order.
    subjects: Vec<Subject>,
    wire_format: bool,
    status: watch::Sender<SchemaRegistryStatus>,
}

impl SchemaRegistry {
    /// Registers the value schemas of `topics`' event topics in `config`'s registry, trying
    /// again while it does not answer until the start-up timeout; an error naming the subject
    /// when the registry refuses one, naming the registry when it never answered.
    pub async fn start(config: &SchemaRegistryConfig, topics: &Topics) -> anyhow::Result<Self> {
        let client = Client::new(config)?;
        let deadline = Instant::now() + config.startup_timeout;
        let mut backoff = Backoff::new(FIRST_RETRY, MAX_RETRY);
        let subjects: Vec<_> = EventType::ALL
            .into_iter()
            .map(|event_type| Subject {
                event_type,
                name: format!("{}-value", topics.topic(event_type)),
                schema: contract::value_schema(event_type).to_string(),
                id: AtomicU32::new(0),
            })
            .collect();
        let ids = loop {
            match register_all(&client, &subjects).await {
                Ok(ids) => break ids,
                Err(error) if !error.is_transient() => bail!("{error}; not starting"),
                Err(error) => {
                    let pause = backoff.advance();
                    if Instant::now() + pause >= deadline {
                        bail!(
                            "{error}; gave up after SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS ({} ms), not starting",
                            config.startup_timeout.as_millis()
                        );
                    }
                    tracing::warn!("{error}; trying again in {} ms", pause.as_millis());
                    tokio::time::sleep(pause).await;
                }
            }
        };
        for (subject, id) in subjects.iter().zip(&ids) {
            subject.id.store(*id, Ordering::Relaxed);
            tracing::info!("Schema registry: {} is schema id {id}", subject.name);
        }
        let (status, _) = watch::channel(SchemaRegistryStatus {
            reachable: true,
            wire_format: config.wire_format,
            subjects: status_subjects(&subjects),
            last_error: None,
            checked_at: Timestamp::now(),
        });
        Ok(Self(Arc::new(Inner {
            client,
            subjects,
            wire_format: config.wire_format,
            status,
        })))
    }

    /// What the last attempt found, and every later one.
    pub fn status(&self) -> watch::Receiver<SchemaRegistryStatus> {
        self.0.status.subscribe()
    }

    /// The registry's base URL, without credentials.
    pub fn url(&self) -> &str {
        self.0.client.url()
    }

    pub fn wire_format(&self) -> bool {
        self.0.wire_format
    }

    /// The id of the schema registered for `event_type`'s topic.
    pub fn schema_id(&self, event_type: EventType) -> u32 {
        self.subject(event_type)
            .map_or(0, |subject| subject.id.load(Ordering::Relaxed))
    }

    /// The value of a record of `event_type` whose event is `json`: `json` itself, or with the
    /// wire format, after the id of the topic's schema.
    pub fn record_value(&self, event_type: EventType, json: &[u8]) -> Vec<u8> {
        match self.0.wire_format {
            true => wire::frame(self.schema_id(event_type), json),
            false => json.to_vec(),
        }
    }

    fn subject(&self, event_type: EventType) -> Option<&Subject> {
        self.0.subjects.iter().find(|s| s.event_type == event_type)
    }

    /// Registers every subject again; the ids answered replace the old ones (a subject deleted
    /// and registered anew may get another), and the outcome is published for health.
    pub async fn register_again(&self) -> Result<(), RegistryError> {
        let outcome = register_all(&self.0.client, &self.0.subjects).await;
        if let Ok(ids) = &outcome {
            for (subject, id) in self.0.subjects.iter().zip(ids) {
                if subject.id.swap(*id, Ordering::Relaxed) != *id {
                    tracing::warn!("Schema registry: {} is now schema id {id}", subject.name);
                }
            }
        }
        let error = outcome.as_ref().err().map(ToString::to_string);
        let was = self.0.status.borrow().last_error.clone();
        if error != was {
            match (&outcome, &error) {
                (Err(e), Some(text)) if e.is_transient() => tracing::warn!("{text}"),
                (Err(_), Some(text)) => tracing::error!("{text}"),
                _ => tracing::info!("Schema registry: reached again, every subject registered"),
            }
        }
        self.0.status.send_replace(SchemaRegistryStatus {
            reachable: !matches!(outcome, Err(RegistryError::Unreachable { .. })),
            wire_format: self.0.wire_format,
            subjects: status_subjects(&self.0.subjects),
            last_error: error,
            checked_at: Timestamp::now(),
        });
        outcome.map(|_| ())
    }

    /// Registers the subjects again every so often until `stop`, sooner (with backoff) after
    /// an attempt that failed.
    pub async fn keep_registered(self, stop: CancellationToken) {
        let mut backoff = Backoff::new(FIRST_RETRY, MAX_RETRY);
        let mut pause = RECHECK_EVERY;
        while sleep_or_stop(pause, &stop).await {
            pause = match self.register_again().await {
                Ok(()) => {
                    backoff.reset();
                    RECHECK_EVERY
                }
                Err(_) => backoff.advance(),
            };
        }
    }
}

/// Registers each subject's schema in turn; their ids, or the first failure.
async fn register_all(client: &Client, subjects: &[Subject]) -> Result<Vec<u32>, RegistryError> {
    let mut ids = Vec::with_capacity(subjects.len());
    for subject in subjects {
        ids.push(client.register(&subject.name, &subject.schema).await?);
    }
    Ok(ids)
}

fn status_subjects(subjects: &[Subject]) -> Vec<RegisteredSubject> {
    subjects
        .iter()
        .map(|subject| RegisteredSubject {
            subject: subject.name.clone(),
            id: subject.id.load(Ordering::Relaxed),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn a_registry_that_never_answers_stops_start_up_by_the_deadline_naming_the_variable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = Config::from_vars([
            (
                "SCHEMA_REGISTRY_URL".to_owned(),
                format!("http://127.0.0.1:{port}/apis/ccompat/v7"),
            ),
            (
                "SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS".to_owned(),
                "700".to_owned(),
            ),
        ])
        .unwrap();
        let started = std::time::Instant::now();
        let result = SchemaRegistry::start(
            config.schema_registry.as_ref().unwrap(),
            &Topics::new(&config.kafka.topic_prefix),
        )
        .await;
        let error = result.err().expect("start-up fails").to_string();
        assert!(
            error.contains("SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS (700 ms)")
                && error.contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
        // Several attempts (200 ms, then 400 ms), and no wait past the deadline.
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }
}
