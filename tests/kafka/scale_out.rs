//! Scale-out: two instances of the service on 3-partition topics share one consumer group. Every
//! event is processed by one of them; when one stops gracefully, the other takes its partitions
//! over and processes every later event. None is processed twice: offsets are committed as
//! partitions move and at shutdown.

use std::collections::{HashMap, HashSet};

use events_service::live::LiveEvent;
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use crate::helpers::{DEADLINE, TestApp, brokers, isolated_vars, with};

/// Events in each batch. Keys run from 1 up, so every partition of every topic gets many.
const EVENTS: u64 = 300;

/// Partitions of each topic.
const PARTITIONS: usize = 3;

const KINDS: [&str; 3] = ["movie", "user", "payment"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Instance {
    A,
    B,
}

/// A processed event as an instance announced it, or how many announcements it missed.
type Announcement = (Instance, Result<LiveEvent, u64>);

/// Forwards what `app`'s consumers process, labelled with `instance`.
fn observe(
    app: &TestApp,
    instance: Instance,
    to: mpsc::UnboundedSender<Announcement>,
) -> JoinHandle<()> {
    let mut processed = app.processed.resubscribe();
    tokio::spawn(async move {
        loop {
            let announcement = match processed.recv().await {
                Ok(event) => Ok(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => Err(missed),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if to.send((instance, announcement)).is_err() {
                return;
            }
        }
    })
}

/// Every event either instance processed, in the order they were announced.
struct Processed {
    announcements: mpsc::UnboundedReceiver<Announcement>,
    /// Event id to the instances that processed it, once per time.
    by_id: HashMap<String, Vec<Instance>>,
    /// The topics each instance processed events of.
    topics: HashMap<Instance, HashSet<String>>,
    /// Event id to the topic and partition it was read from.
    partitions: HashMap<String, (String, i32)>,
}

impl Processed {
    fn new(announcements: mpsc::UnboundedReceiver<Announcement>) -> Self {
        Self {
            announcements,
            by_id: HashMap::new(),
            topics: HashMap::new(),
            partitions: HashMap::new(),
        }
    }

    /// Takes in announcements until `done` holds; fails after `DEADLINE`.
    async fn wait_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(self) {
            match timeout_at(deadline, self.announcements.recv()).await {
                Ok(Some((instance, Ok(event)))) => {
                    self.topics
                        .entry(instance)
                        .or_default()
                        .insert(event.topic.clone());
                    self.partitions
                        .insert(event.id.to_string(), (event.topic.clone(), event.partition));
                    self.by_id
                        .entry(event.id.to_string())
                        .or_default()
                        .push(instance);
                }
                Ok(Some((instance, Err(missed)))) => {
                    panic!("the test missed {missed} events that {instance:?} processed")
                }
                Ok(None) => panic!("the processed-event channels closed"),
                Err(_) => panic!("{what}: not within {DEADLINE:?}"),
            }
        }
    }

    fn processed(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// How many of `ids` `instance` processed.
    fn count(&self, ids: &[String], instance: Instance) -> usize {
        ids.iter()
            .filter(|id| self.by_id.get(*id).is_some_and(|by| by.contains(&instance)))
            .count()
    }

    /// The events processed more than once, with who processed them.
    fn repeated(&self) -> Vec<(&String, &Vec<Instance>)> {
        self.by_id.iter().filter(|(_, by)| by.len() > 1).collect()
    }
}

/// An event of kind `KINDS[key % 3]` whose key is `key`.
fn event(key: u64) -> (&'static str, Value) {
    let kind = KINDS[(key % 3) as usize];
    let body = match kind {
        "movie" => json!({"movie_id": key, "title": "Scale", "action": "viewed"}),
        "user" => json!({"user_id": key, "action": "logged_in"}),
        _ => json!({"payment_id": key, "user_id": key, "amount": 1.5, "status": "completed"}),
    };
    (kind, body)
}

/// Posts events `keys` (one kind after the other) through `apps` in turn and returns their ids.
async fn post_events(apps: &[&TestApp], keys: std::ops::Range<u64>) -> Vec<String> {
    stream::iter(keys)
        .map(|key| async move {
            let app = apps[key as usize % apps.len()];
            let (kind, body) = event(key);
            let (status, response) = app.post(kind, &body).await;
            assert_eq!(status, 201, "{response}");
            response["event"]["id"]
                .as_str()
                .expect("the answer has the event's id")
                .to_owned()
        })
        .buffered(16)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn two_instances_share_the_partitions_and_one_takes_over_when_the_other_stops() {
    let vars = with(
        isolated_vars(&brokers()),
        &[("KAFKA_TOPIC_PARTITIONS", &PARTITIONS.to_string())],
    );
    // The same prefix and group: two replicas of one deployment.
    let a = TestApp::spawn(vars.clone()).await;
    let b = TestApp::spawn(vars).await;
    let (to_test, announcements) = mpsc::unbounded_channel();
    let observers = [
        observe(&a, Instance::A, to_test.clone()),
        observe(&b, Instance::B, to_test),
    ];
    let mut processed = Processed::new(announcements);
    a.wait_until_healthy().await;
    b.wait_until_healthy().await;

    // Both instances have joined the group once each has processed events of every topic: post
    // rounds of events (with keys apart from the batches') until they have.
    let started = Instant::now();
    let mut next_key = 1_000_000;
    while [Instance::A, Instance::B]
        .iter()
        .any(|i| processed.topics.get(i).map_or(0, HashSet::len) < KINDS.len())
    {
        assert!(
            started.elapsed() < DEADLINE,
            "both instances did not get partitions of every topic within {DEADLINE:?}: {:?}",
            processed.topics
        );
        let round = post_events(&[&a, &b], next_key..next_key + 6).await;
        next_key += 6;
        processed
            .wait_until("a warm-up round processed", |p| {
                round.iter().all(|id| p.processed(id))
            })
            .await;
    }

    // Every event is processed, by one instance or the other, and each has its share.
    let first = post_events(&[&a, &b], 1..EVENTS + 1).await;
    processed
        .wait_until("the first batch processed", |p| {
            first.iter().all(|id| p.processed(id))
        })
        .await;
    let (by_a, by_b) = (
        processed.count(&first, Instance::A),
        processed.count(&first, Instance::B),
    );
    assert!(
        by_a > 0 && by_b > 0,
        "both instances process events: A {by_a}, B {by_b} of {EVENTS}"
    );

    // A stops gracefully; its partitions move to B, which processes every later event.
    a.stop().await;
    let second = post_events(&[&b], EVENTS + 1..2 * EVENTS + 1).await;
    processed
        .wait_until("the second batch processed", |p| {
            second.iter().all(|id| p.processed(id))
        })
        .await;
    assert_eq!(
        processed.count(&second, Instance::B),
        second.len(),
        "B processed every event after A stopped"
    );
    let partitions: HashSet<_> = second.iter().map(|id| &processed.partitions[id]).collect();
    assert_eq!(
        partitions.len(),
        PARTITIONS * KINDS.len(),
        "B read every partition of the three topics: {partitions:?}"
    );

    // Offsets were committed when partitions moved (as B joined, and as A left): no event was
    // processed twice.
    let repeated = processed.repeated();
    assert!(
        repeated.is_empty(),
        "{} events were processed more than once, e.g. {:?}",
        repeated.len(),
        &repeated[..repeated.len().min(5)]
    );
    eprintln!(
        "scale_out: first batch A {by_a} / B {by_b}; warm-up and both batches in {:?}",
        started.elapsed()
    );
    b.stop().await;
    for observer in observers {
        observer.abort();
    }
}
