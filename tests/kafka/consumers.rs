use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use rdkafka::Message;

use crate::helpers::{
    DEADLINE, ServiceProcess, TestApp, brokers, committed_offset, header, isolated_vars,
    read_partition, var, wait_for_dead_letter_topics, with,
};

/// Headers as a producer other than the service might write them: text, bytes that are not
/// UTF-8, and a null value.
fn foreign_headers() -> Vec<(String, Option<Vec<u8>>)> {
    vec![
        ("trace-id".to_owned(), Some(b"abc-123".to_vec())),
        ("raw".to_owned(), Some(vec![0xff, 0x00, 0x80])),
        ("nothing".to_owned(), None),
    ]
}

fn owned_headers(headers: &[(String, Option<Vec<u8>>)]) -> OwnedHeaders {
    headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: value.as_deref(),
        })
    })
}

/// Every header of `record`, in order.
fn headers_of(record: &OwnedMessage) -> Vec<(String, Option<Vec<u8>>)> {
    record.headers().map_or_else(Vec::new, |headers| {
        headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect()
    })
}

/// Asserts that `letter` is the dead letter of the record at `topic`/0/`offset` that had
/// `original` headers: those first, unchanged, then the four `dlq-*` ones.
fn assert_dead_letter_headers(
    letter: &OwnedMessage,
    original: &[(String, Option<Vec<u8>>)],
    topic: &str,
    offset: i64,
) {
    let headers = headers_of(letter);
    assert_eq!(
        &headers[..original.len().min(headers.len())],
        original,
        "the letter keeps the record's headers, first"
    );
    let added: Vec<&str> = headers[original.len()..]
        .iter()
        .map(|(key, _)| key.as_str())
        .collect();
    assert_eq!(
        added,
        [
            "dlq-error",
            "dlq-source-topic",
            "dlq-source-partition",
            "dlq-source-offset"
        ]
    );
    assert_eq!(header(letter, "dlq-source-topic").as_deref(), Some(topic));
    assert_eq!(header(letter, "dlq-source-partition").as_deref(), Some("0"));
    assert_eq!(
        header(letter, "dlq-source-offset"),
        Some(offset.to_string())
    );
    assert!(header(letter, "dlq-error").is_some_and(|e| !e.is_empty()));
}

/// Waits until the app's consumers announce the event with `id`.
async fn processed(app: &mut TestApp, id: &str) -> events_service::live::LiveEvent {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match app.processed.recv().await {
                Ok(event) if event.id.to_string() == id => return event,
                Ok(_) => continue,
                Err(error) => panic!("the processed-event channel failed: {error}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("event {id} was not processed within {DEADLINE:?}"))
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn the_built_in_consumers_process_an_event_posted_over_http() {
    // Without librdkafka's automatic commits (periodic, and on close), the commit found after
    // shutdown can only be the service's own final commit.
    let vars = with(
        isolated_vars(&brokers()),
        &[("RDKAFKA_CONSUMER_ENABLE_AUTO_COMMIT", "false")],
    );
    let mut app = TestApp::spawn(vars).await;
    app.wait_until_healthy().await;
    let (status, response) = app
        .post(
            "payment",
            &json!({"payment_id": 9, "user_id": 3, "amount": 12.5, "status": "pending"}),
        )
        .await;
    assert_eq!(status, 201, "{response}");
    let id = response["event"]["id"].as_str().unwrap().to_owned();

    let processed = processed(&mut app, &id).await;

    assert_eq!(processed.topic, app.topic("payment-events"));
    assert_eq!(
        processed.partition as i64,
        response["partition"].as_i64().unwrap()
    );
    assert_eq!(processed.offset, response["offset"].as_i64().unwrap());
    assert_eq!(processed.key.as_deref(), Some("9"));
    assert_eq!(processed.type_name(), "payment");
    let payload: serde_json::Value = serde_json::from_str(processed.payload.get()).unwrap();
    assert_eq!(payload, response["event"]["payload"]);

    // Shutdown commits what was processed, so a restart resumes after this event; nothing had
    // committed it before.
    let (brokers, group, topic) = (brokers(), app.group_id.clone(), app.topic("payment-events"));
    app.stop().await;
    let partition = processed.partition;
    let committed =
        tokio::task::spawn_blocking(move || committed_offset(&brokers, &group, &topic, partition))
            .await
            .unwrap();
    assert_eq!(
        committed,
        Some(processed.offset + 1),
        "the processed offset was committed at shutdown"
    );
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn an_unreadable_record_goes_to_the_dead_letter_topic_and_the_consumer_carries_on() {
    let brokers = brokers();
    let mut app = TestApp::spawn(isolated_vars(&brokers)).await;
    app.wait_until_healthy().await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let topic = app.topic("movie-events");
    let junk: [&[u8]; 3] = [b"not json", b"{\"id\": 1}", b""];
    for (n, value) in junk.iter().enumerate() {
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&format!("k{n}"))
                    .payload(*value)
                    .headers(owned_headers(&foreign_headers())),
                DEADLINE,
            )
            .await
            .expect("the junk record is stored");
    }
    let (status, response) = app
        .post(
            "movie",
            &json!({"movie_id": 5, "title": "After", "action": "added"}),
        )
        .await;
    assert_eq!(status, 201, "{response}");
    let event = processed(&mut app, response["event"]["id"].as_str().unwrap()).await;
    assert_eq!(
        event.offset, 3,
        "the three junk records before it were passed over"
    );

    let letters = tokio::task::spawn_blocking({
        let (brokers, dead_letters) = (brokers.clone(), format!("{topic}.dlq"));
        move || read_partition(&brokers, &dead_letters, 0, 3)
    })
    .await
    .unwrap();
    for (n, letter) in letters.iter().enumerate() {
        assert_eq!(
            letter.payload().unwrap_or_default(),
            junk[n],
            "letter {n} keeps the value"
        );
        assert_eq!(
            letter.key(),
            Some(format!("k{n}").as_bytes()),
            "letter {n} keeps the key"
        );
        assert_dead_letter_headers(letter, &foreign_headers(), &topic, n as i64);
    }
    app.stop().await;
}

/// An admin client on the test broker.
fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("the admin client is created")
}

/// Whether the cluster's metadata lists `topic` with its partitions.
fn topic_exists(brokers: &str, topic: &str) -> bool {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("the metadata reader is created");
    let metadata = reader
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("the broker answers");
    metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
}

/// Polls until `group` has committed `offset` for `topic`/0.
fn wait_for_commit(brokers: &str, group: &str, topic: &str, offset: i64) {
    let started = Instant::now();
    loop {
        let committed = committed_offset(brokers, group, topic, 0);
        if committed == Some(offset) {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{group} committed {committed:?} on {topic}/0, not {offset}, within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stores `value` with `headers` on `topic`/0 and returns its offset.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    value: &[u8],
    headers: &[(String, Option<Vec<u8>>)],
) -> i64 {
    let record = FutureRecord::to(topic)
        .key("k")
        .payload(value)
        .partition(0)
        .headers(owned_headers(headers));
    let stored = producer
        .send(record, DEADLINE)
        .await
        .expect("the record is stored");
    stored.offset
}

/// A record value the consumers can process, with event id `id`.
fn event_value(id: &str) -> Vec<u8> {
    json!({
        "id": id, "type": "movie", "timestamp": "2025-01-01T00:00:00Z",
        "payload": {"movie_id": 1, "title": "Direct", "action": "viewed"}
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn while_the_dead_letter_topic_cannot_be_written_the_consumer_holds_at_the_unprocessable_record()
 {
    let brokers = brokers();
    let admin = admin(&brokers);
    let broker = admin
        .describe_configs(
            &[rdkafka::admin::ResourceSpecifier::Broker(1)],
            &AdminOptions::new(),
        )
        .await
        .expect("the broker describes its configuration");
    let auto_create = broker[0]
        .as_ref()
        .ok()
        .and_then(|c| c.get("auto.create.topics.enable"))
        .and_then(|e| e.value.clone());
    assert_eq!(
        auto_create.as_deref(),
        Some("false"),
        "the test broker must not create the deleted dead-letter topic again"
    );

    let vars = with(
        isolated_vars(&brokers),
        &[
            // Commits of stored offsets every 100 ms: one past the record would show at once.
            ("RDKAFKA_CONSUMER_AUTO_COMMIT_INTERVAL_MS", "100"),
            // Each attempt to write the dead letter gives up after a second.
            ("KAFKA_DELIVERY_TIMEOUT_MS", "1000"),
        ],
    );
    let (group, topic) = (
        var(&vars, "KAFKA_GROUP_ID").to_owned(),
        format!("{}movie-events", var(&vars, "KAFKA_TOPIC_PREFIX")),
    );
    let dead_letters = format!("{topic}.dlq");
    let mut service = ServiceProcess::spawn(&vars);
    crate::helpers::wait_until_healthy(&service.address).await;
    service.wait_for_line(|l| l.ends_with(&format!("Started consumer for topic {topic}")));
    wait_for_dead_letter_topics(&service.address).await;
    let processed = |id: &str| {
        let id = id.to_owned();
        move |line: &str| line.contains("[EVENT PROCESSED]") && line.contains(&id)
    };

    // A first event, processed and committed: the consumer is in its group and commits.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let first = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        produce(&producer, &topic, &event_value(&first), &[]).await,
        0
    );
    service.wait_for_line(processed(&first));
    wait_for_commit(&brokers, &group, &topic, 1);

    // The dead-letter topic goes away, and the broker will not create it on a write.
    let deleted = admin
        .delete_topics(&[&dead_letters], &AdminOptions::new())
        .await
        .expect("the deletion request is answered");
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    let started = Instant::now();
    while topic_exists(&brokers, &dead_letters) {
        assert!(
            started.elapsed() < DEADLINE,
            "{dead_letters} is still there"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let poison = produce(&producer, &topic, b"not json", &foreign_headers()).await;
    let after = uuid::Uuid::new_v4().to_string();
    let after_offset = produce(&producer, &topic, &event_value(&after), &[]).await;
    assert_eq!((poison, after_offset), (1, 2));

    // The consumer keeps trying to write the dead letter, and meanwhile commits nothing past the
    // record and processes nothing after it.
    let retrying = format!("Could not write the unprocessable record at {topic}/0/1 ");
    service.wait_for_line(|l| l.contains(&retrying));
    let started = Instant::now();
    loop {
        assert_eq!(
            committed_offset(&brokers, &group, &topic, 0),
            Some(1),
            "the group committed past the record whose dead letter was not written"
        );
        let output = service.output();
        assert!(
            !output.lines().any(processed(&after)),
            "the event after the record was processed before the dead letter was written"
        );
        let attempts = output.matches(&retrying).count();
        if attempts >= 3 && started.elapsed() >= Duration::from_secs(3) {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{attempts} attempts to write the dead letter within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Once the topic is back, the letter is written and the consumer moves on.
    let recreated = admin
        .create_topics(
            &[NewTopic::new(&dead_letters, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("the creation request is answered");
    assert!(recreated.iter().all(Result::is_ok), "{recreated:?}");
    service.wait_for_line(processed(&after));
    wait_for_commit(&brokers, &group, &topic, 3);
    let letters = read_partition(&brokers, &dead_letters, 0, 1);
    assert_eq!(letters[0].payload(), Some(&b"not json"[..]));
    assert_eq!(letters[0].key(), Some(&b"k"[..]));
    assert_dead_letter_headers(&letters[0], &foreign_headers(), &topic, poison);

    service.terminate();
    let (status, _) = service.wait_for_exit(DEADLINE);
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_new_group_with_auto_offset_reset_latest_skips_what_the_topics_held_before_it() {
    let brokers = brokers();
    let vars = with(
        isolated_vars(&brokers),
        &[("KAFKA_AUTO_OFFSET_RESET", "latest")],
    );
    let topic = format!("{}movie-events", var(&vars, "KAFKA_TOPIC_PREFIX"));
    // The topic exists, with a record in it, before the group does.
    let created = admin(&brokers)
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("the creation is answered");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let before = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        produce(&producer, &topic, &event_value(&before), &[]).await,
        0
    );

    let mut app = TestApp::spawn(vars).await;
    app.wait_until_healthy().await;
    // Until the consumer knows where the end is, an event posted may be before it: post until
    // one is processed.
    let movie = json!({"movie_id": 1, "title": "After", "action": "viewed"});
    let processed_one = tokio::time::timeout(DEADLINE, async {
        loop {
            let (status, response) = app.post("movie", &movie).await;
            assert_eq!(status, 201, "{response}");
            let deadline = tokio::time::sleep(Duration::from_secs(2));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    event = app.processed.recv() => {
                        let event = event.expect("the channel is open");
                        assert_ne!(event.id.to_string(), before, "the earlier record was processed");
                        if event.offset > 0 {
                            return event;
                        }
                    }
                }
            }
        }
    })
    .await
    .expect("an event posted after the group started is processed");
    assert!(processed_one.offset >= 1);
    app.stop().await;
}
