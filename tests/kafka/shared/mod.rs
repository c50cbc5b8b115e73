//! Several instances, one service: two instances on one group, one Redis and three partitions
//! per topic. A retry meets the first answer on the other instance and after a restart; the
//! same key sent to both at once is published once; a client's rate limit holds across both; a
//! stream on one shows what was posted to the other, and resumes there. When Redis is away,
//! late or loses an answer: `redis_trouble`.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod redis_trouble;

use crate::helpers::{DEADLINE, TestApp, brokers, eventually, isolated_vars, with};

/// The Redis the tests share state in. The test command (`scripts/test.sh`) starts one and sets
/// this; without it the tests fail rather than skip.
fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "TEST_REDIS_URL is not set: these tests need a Redis. Run scripts/test.sh, which \
             starts one, or set TEST_REDIS_URL=redis://host:port."
        )
    })
}

/// Variables for instances of one service: one group, one Redis key prefix, three partitions.
fn shared_vars(overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let vars = isolated_vars(&brokers());
    let prefix = format!("test-{}:", crate::helpers::var(&vars, "KAFKA_GROUP_ID"));
    let url = redis_url();
    let vars = with(
        vars,
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_KEY_PREFIX", prefix.as_str()),
            ("REDIS_TIMEOUT_MS", "1000"),
            ("KAFKA_TOPIC_PARTITIONS", "3"),
        ],
    );
    with(vars, overrides)
}

/// Two instances of one service, both ready.
async fn two(vars: &[(String, String)]) -> (TestApp, TestApp) {
    let a = TestApp::spawn(vars.to_vec()).await;
    a.wait_until_healthy().await;
    let b = TestApp::spawn(vars.to_vec()).await;
    b.wait_until_healthy().await;
    (a, b)
}

/// An answer, its body byte for byte.
struct Answer {
    status: StatusCode,
    replayed: bool,
    body: Vec<u8>,
}

async fn post_keyed(app: &TestApp, key: Option<&str>, body: &Value) -> Answer {
    let mut request = app
        .client
        .post(format!("{}/api/events/movie", app.address))
        .json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("the service answers");
    Answer {
        status: response.status(),
        replayed: response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true"),
        body: response.bytes().await.expect("a body").to_vec(),
    }
}

fn movie(id: u64) -> Value {
    json!({"movie_id": id + 1, "title": "Shared", "action": "viewed", "user_id": id + 1})
}

/// The records in every partition of `topic`.
fn records_in(topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", "unused-independent-reader")
        .create()
        .expect("the test consumer is created");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("the topic's metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("the partition's offsets");
            high - low
        })
        .sum()
}

#[tokio::test]
#[ignore = "needs Kafka and Redis: run scripts/test.sh"]
async fn a_retry_gets_the_first_answer_byte_for_byte_on_the_other_instance_and_after_a_restart() {
    let vars = shared_vars(&[]);
    let (a, b) = two(&vars).await;
    let first = post_keyed(&a, Some("order-1"), &movie(1)).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!first.replayed);

    let retried = post_keyed(&b, Some("order-1"), &movie(1)).await;
    assert_eq!(retried.status, StatusCode::CREATED);
    assert!(
        retried.replayed,
        "the other instance replays the first answer"
    );
    assert_eq!(retried.body, first.body, "byte for byte");
    let other_body = post_keyed(&b, Some("order-1"), &movie(2)).await;
    assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY);

    a.stop().await;
    b.stop().await;
    let restarted = TestApp::spawn(vars.clone()).await;
    restarted.wait_until_healthy().await;
    let after_restart = post_keyed(&restarted, Some("order-1"), &movie(1)).await;
    assert!(after_restart.replayed, "remembered past the restart");
    assert_eq!(after_restart.body, first.body);
    assert_eq!(
        records_in(&restarted.topic("movie-events")),
        1,
        "published once"
    );
    restarted.stop().await;
}

#[tokio::test]
#[ignore = "needs Kafka and Redis: run scripts/test.sh"]
async fn the_same_key_sent_to_both_instances_at_once_is_published_once() {
    let vars = shared_vars(&[]);
    let (a, b) = two(&vars).await;
    const KEYS: u64 = 30;
    let mut outcomes = Vec::new();
    for n in 0..KEYS {
        let (key, body) = (format!("race-{n}"), movie(n));
        let (on_a, on_b) = tokio::join!(
            post_keyed(&a, Some(&key), &body),
            post_keyed(&b, Some(&key), &body)
        );
        outcomes.push((on_a, on_b));
    }
    // One publishes; the other meets its answer (a replay) or its claim (409, in progress).
    let published = |x: &Answer| x.status == StatusCode::CREATED && !x.replayed;
    let met_it = |x: &Answer| x.replayed || x.status == StatusCode::CONFLICT;
    for (on_a, on_b) in &outcomes {
        assert!(
            (published(on_a) && met_it(on_b)) || (published(on_b) && met_it(on_a)),
            "{} {} and {} {}",
            on_a.status,
            String::from_utf8_lossy(&on_a.body),
            on_b.status,
            String::from_utf8_lossy(&on_b.body)
        );
    }
    assert_eq!(
        records_in(&a.topic("movie-events")),
        KEYS as i64,
        "one record per key"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
#[ignore = "needs Kafka and Redis: run scripts/test.sh"]
async fn one_clients_rate_limit_holds_across_both_instances() {
    let vars = shared_vars(&[("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "4")]);
    let (a, b) = two(&vars).await;
    let mut allowed = 0;
    let mut limited_with_retry_after = 0;
    for n in 0..10 {
        let app = if n % 2 == 0 { &a } else { &b };
        let response = app
            .client
            .post(format!("{}/api/events/movie", app.address))
            .json(&movie(n))
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::CREATED => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(response.headers().contains_key("retry-after"));
                limited_with_retry_after += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // Four at once, and one a second after: ten requests take well under two seconds.
    assert!(
        (4..=5).contains(&allowed),
        "{allowed} allowed of 10 (per instance it would be 8)"
    );
    assert_eq!(allowed + limited_with_retry_after, 10);
    a.stop().await;
    b.stop().await;
}

/// Reads an SSE stream from `app` until `done` holds for the events' ids; returns them, and the
/// stream's last SSE id.
async fn stream_until(
    app: &TestApp,
    last_event_id: Option<&str>,
    done: impl Fn(&[String]) -> bool,
) -> (Vec<String>, String) {
    let mut request = app.client.get(format!("{}/api/events/stream", app.address));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.expect("the stream opens");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let (mut buffered, mut ids, mut last_id) = (String::new(), Vec::new(), String::new());
    tokio::time::timeout(DEADLINE, async {
        while !done(&ids) {
            let chunk = body.next().await.expect("the stream stays open").unwrap();
            buffered.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffered.find("\n\n") {
                let message: String = buffered.drain(..end + 2).collect();
                let field = |name: &str| {
                    message
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(str::to_owned))
                };
                if let (Some(id), Some(data)) = (field("id: "), field("data: ")) {
                    let event: Value = serde_json::from_str(&data).unwrap();
                    ids.push(event["id"].as_str().unwrap().to_owned());
                    last_id = id;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the stream got {} events, not all, within the deadline",
            ids.len()
        )
    });
    (ids, last_id)
}

#[tokio::test]
#[ignore = "needs Kafka: run scripts/test.sh"]
async fn a_stream_on_one_instance_shows_what_was_posted_to_the_other_and_resumes_there() {
    let vars = shared_vars(&[]);
    let (a, b) = two(&vars).await;
    // Both in the group: each processes some partitions, and each shows them all.
    const EVENTS: usize = 12;
    let mut posted = Vec::new();
    for n in 0..EVENTS as u64 {
        let (status, answer) = b.post("movie", &movie(n)).await;
        assert_eq!(status, 201, "{answer}");
        posted.push(answer["event"]["id"].as_str().unwrap().to_owned());
    }
    let everything: HashSet<String> = posted.iter().cloned().collect();
    let (on_a, _) =
        stream_until(&a, None, |ids| everything.iter().all(|id| ids.contains(id))).await;
    assert_eq!(on_a.len(), EVENTS, "each once");

    // A client that saw half of them on A resumes on B with the rest, each once.
    let (half, cursor) = stream_until(&a, None, |ids| ids.len() == EVENTS / 2).await;
    let (rest, _) = stream_until(&b, Some(&cursor), |ids| ids.len() == EVENTS - half.len()).await;
    let resumed: HashSet<&String> = half.iter().chain(&rest).collect();
    assert_eq!(
        resumed.len(),
        EVENTS,
        "nothing missed, nothing twice: {half:?} then {rest:?}"
    );

    let processed_total = |app: &TestApp| {
        let url = format!("{}/api/events/stats", app.address);
        async move {
            let stats: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
            (stats["processed_total"] == EVENTS).then_some(())
        }
    };
    eventually("A counts every event", || processed_total(&a)).await;
    eventually("B counts every event", || processed_total(&b)).await;
    a.stop().await;
    b.stop().await;
}
