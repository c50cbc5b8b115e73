//! Test helpers: the broker under test, an in-process service on a free port, and an independent
//! consumer to read records back. The service binary as a child process is in `service.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use events_service::kafka::KafkaSink;
use events_service::live::LiveEvent;
use events_service::{Application, Config};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

pub use crate::service::ServiceProcess;

/// How long a test waits for something that should happen within a few seconds.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The broker the tests run against. The test command (`scripts/test.sh`) starts one and sets
/// this; without it the tests fail rather than skip.
pub fn brokers() -> String {
    std::env::var("TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "TEST_KAFKA_BROKERS is not set: these tests need a real Kafka broker. \
             Run scripts/test.sh, which starts one, or set TEST_KAFKA_BROKERS=host:port."
        )
    })
}

/// Variables for a service isolated from every other test: its own topics and group.
pub fn isolated_vars(brokers: &str) -> Vec<(String, String)> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    [
        ("KAFKA_BROKERS", brokers.to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("KAFKA_TOPIC_PREFIX", format!("test-{run}.")),
        ("KAFKA_GROUP_ID", format!("test-{run}")),
        ("KAFKA_HEALTH_INTERVAL_MS", "200".to_owned()),
        ("LOG_LEVEL", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Replaces or adds `overrides` in `vars`.
pub fn with(mut vars: Vec<(String, String)>, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    for (name, value) in overrides {
        vars.retain(|(k, _)| k != name);
        vars.push((name.to_string(), value.to_string()));
    }
    vars
}

/// The value of `name` in `vars`.
pub fn var<'a>(vars: &'a [(String, String)], name: &str) -> &'a str {
    vars.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// A service running in this process.
pub struct TestApp {
    pub address: String,
    pub topic_prefix: String,
    pub group_id: String,
    pub client: reqwest::Client,
    pub processed: broadcast::Receiver<LiveEvent>,
    /// The producer's side, to reach the producer in use.
    pub sink: Arc<KafkaSink>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(vars: Vec<(String, String)>) -> TestApp {
        let topic_prefix = var(&vars, "KAFKA_TOPIC_PREFIX").to_owned();
        let group_id = var(&vars, "KAFKA_GROUP_ID").to_owned();
        let config = Config::from_vars(vars).expect("test configuration is valid");
        let app = Application::build(config)
            .await
            .expect("the service builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let processed = app.processed_events();
        let sink = app.kafka_sink();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        TestApp {
            address,
            topic_prefix,
            group_id,
            client: reqwest::Client::new(),
            processed,
            sink,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn topic(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.topic_prefix)
    }

    pub async fn post(&self, kind: &str, body: &Value) -> (reqwest::StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/api/events/{kind}", self.address))
            .json(body)
            .send()
            .await
            .expect("the service answers");
        let status = response.status();
        (status, response.json().await.expect("the answer is JSON"))
    }

    pub async fn health(&self) -> (reqwest::StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}/api/events/health", self.address))
            .send()
            .await
            .expect("the service answers");
        let status = response.status();
        (status, response.json().await.expect("the answer is JSON"))
    }

    pub async fn wait_until_healthy(&self) {
        wait_until_healthy(&self.address).await;
    }

    /// Shuts the service down and waits for it to finish, cleanly.
    pub async fn stop(self) {
        self.stop_within(DEADLINE)
            .await
            .expect("stops cleanly, within its shutdown timeout");
    }

    /// Shuts the service down and says how it ended, failing when it takes longer than `within`.
    pub async fn stop_within(mut self, within: Duration) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(within, task)
            .await
            .unwrap_or_else(|_| panic!("did not stop within {within:?}"))
            .expect("no panic")
    }
}

/// A consumer that shares nothing with the service: no group, explicit assignment.
fn independent_consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "unused-independent-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("the test consumer is created")
}

/// Reads the record at `topic`/`partition`/`offset`.
pub fn read_record(brokers: &str, topic: &str, partition: i32, offset: i64) -> OwnedMessage {
    let consumer = independent_consumer(brokers);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .expect("a valid offset");
    consumer.assign(&assignment).expect("assignment works");
    let started = Instant::now();
    while started.elapsed() < DEADLINE {
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let record = result.expect("the record is readable").detach();
            assert_eq!(record.offset(), offset, "read from the requested offset");
            return record;
        }
    }
    panic!("no record at {topic}/{partition}/{offset} within {DEADLINE:?}");
}

/// Reads every record of `topic`/`partition` up to (not including) `end`.
pub fn read_partition(brokers: &str, topic: &str, partition: i32, end: i64) -> Vec<OwnedMessage> {
    let consumer = independent_consumer(brokers);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .expect("a valid offset");
    consumer.assign(&assignment).expect("assignment works");
    let started = Instant::now();
    let mut records = Vec::new();
    while records.last().map_or(0, |r: &OwnedMessage| r.offset() + 1) < end {
        assert!(
            started.elapsed() < DEADLINE,
            "read {} records of {end} within {DEADLINE:?}",
            records.len()
        );
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            records.push(result.expect("the record is readable").detach());
        }
    }
    records
}

/// The value of header `name` of `record`, as text.
pub fn header(record: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    record.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
    })
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

/// Polls `address`'s health route until it says 200.
pub async fn wait_until_healthy(address: &str) {
    let started = Instant::now();
    let client = reqwest::Client::new();
    loop {
        let status = client
            .get(format!("{address}/api/events/health"))
            .send()
            .await
            .map(|r| r.status());
        if matches!(status, Ok(s) if s == 200) {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "not healthy after {DEADLINE:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The offset `group` has committed for `topic`/`partition`, if any.
pub fn committed_offset(brokers: &str, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("the test consumer is created");
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(topic, partition);
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("the group answers");
    match committed.find_partition(topic, partition)?.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

/// A producer of records the service did not write (other producers' records, poison), allowed
/// records up to 2 MB.
pub fn foreign_producer(brokers: &str) -> rdkafka::producer::FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "2000000")
        .create()
        .expect("the test producer is created")
}

/// Stores `value` under `key` on `topic`/`partition` and returns its offset.
pub async fn produce_to(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: i32,
    key: &[u8],
    value: &[u8],
) -> i64 {
    let record = rdkafka::producer::FutureRecord::to(topic)
        .key(key)
        .payload(value)
        .partition(partition);
    producer
        .send(record, DEADLINE)
        .await
        .unwrap_or_else(|(error, _)| {
            panic!("the record for {topic}/{partition} is stored: {error}")
        })
        .offset
}

/// Polls `check` every 50 ms until it returns something, which is returned; fails with `what`
/// after the deadline.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the metric line `series` (name and labels, exactly as rendered) at `address`.
pub async fn metric(address: &str, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("{address}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A batch of `count` movie events, each with a description of `description_bytes` bytes.
pub fn large_movies(count: usize, description_bytes: usize) -> Value {
    let description = "d".repeat(description_bytes);
    json!((0..count)
        .map(|n| json!({"type": "movie", "movie_id": n + 1, "title": "T", "action": "viewed", "description": description}))
        .collect::<Vec<_>>())
}

/// Waits until the service at `address` lists no dead-letter topic as missing. They are created
/// beside start-up until health shows them all: one a test deletes before that is created again.
pub async fn wait_for_dead_letter_topics(address: &str) {
    let url = format!("{address}/api/events/health");
    eventually("the dead-letter topics to be provisioned", || async {
        let body: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
        let missing = &body["kafka"]["missing_dead_letter_topics"];
        (missing.as_array().is_some_and(Vec::is_empty)).then_some(())
    })
    .await;
}
