//! Clients that crowd out others, from outside the service's process: one that floods the
//! idempotency store with distinct keys, one that opens stream after stream. Clients are told
//! apart by their address here (authentication off): they connect from 127.0.0.1 and 127.0.0.2.

use std::net::IpAddr;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    ServiceProcess, brokers, closed_port, isolated_vars, read_partition, var, wait_until_healthy,
    with,
};

fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn keyed_post(
    client: &reqwest::Client,
    service: &str,
    key: &str,
    body: &Value,
) -> (u16, Option<String>, String) {
    let response = client
        .post(format!("{service}/api/events/movie"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, replayed, response.text().await.unwrap())
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn one_client_flooding_distinct_keys_cannot_make_anothers_retry_publish_twice() {
    let brokers = brokers();
    let vars = with(
        isolated_vars(&brokers),
        &[("IDEMPOTENCY_MAX_BYTES", "131072")],
    );
    let topic = format!("{}movie-events", var(&vars, "KAFKA_TOPIC_PREFIX"));
    let service = ServiceProcess::spawn(&vars);
    wait_until_healthy(&service.address).await;
    let (honest, flooder) = (client_from("127.0.0.1"), client_from("127.0.0.2"));
    let order = json!({"movie_id": 7, "title": "Honest", "action": "rated", "rating": 8});

    let (status, _, first) = keyed_post(&honest, &service.address, "order-1", &order).await;
    assert_eq!(status, 201, "{first}");
    // 2,000 distinct keys, 16 at a time: their answers need far more than the store's 128 KiB.
    let flood = json!({"movie_id": 8, "title": "Flood", "action": "viewed"});
    let keys: Vec<String> = (0..2000).map(|n| format!("flood-{n}")).collect();
    for batch in keys.chunks(16) {
        let posts = batch
            .iter()
            .map(|key| keyed_post(&flooder, &service.address, key, &flood));
        for (status, _, body) in join_all(posts).await {
            assert_eq!(status, 201, "{body}");
        }
    }
    // Guessing the honest client's key gets the flooder a key of its own, not the answer.
    let (status, replayed, _) = keyed_post(&flooder, &service.address, "order-1", &flood).await;
    assert_eq!((status, replayed), (201, None));

    let (status, replayed, again) = keyed_post(&honest, &service.address, "order-1", &order).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(again, first, "the first answer, byte for byte");
    // The flooder's own oldest answers made the room.
    let (_, replayed, _) = keyed_post(&flooder, &service.address, "flood-0", &flood).await;
    assert_eq!(replayed, None, "the flooder's oldest key was forgotten");

    let stored: Value = serde_json::from_str(&first).unwrap();
    let (partition, offset) = (
        stored["partition"].as_i64().unwrap() as i32,
        stored["offset"].as_i64().unwrap(),
    );
    let id = stored["event"]["id"].as_str().unwrap().to_owned();
    let records = tokio::task::spawn_blocking(move || {
        read_partition(&brokers, &topic, partition, offset + 2003)
    })
    .await
    .unwrap();
    let copies = records
        .iter()
        .filter(|r| {
            rdkafka::Message::payload(*r).is_some_and(|v| String::from_utf8_lossy(v).contains(&id))
        })
        .count();
    assert_eq!(copies, 1, "the honest client's event was published once");
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_client_may_open_only_its_share_of_the_streams() {
    let unreachable = format!("127.0.0.1:{}", closed_port());
    let service = ServiceProcess::spawn(&with(
        isolated_vars(&unreachable),
        &[("STREAM_MAX_CLIENTS", "10"), ("STREAM_MAX_PER_CLIENT", "2")],
    ));
    let open = |client: reqwest::Client| {
        let url = format!("{}/api/events/stream", service.address);
        async move { client.get(url).send().await.expect("answered") }
    };
    let (greedy, other) = (client_from("127.0.0.1"), client_from("127.0.0.2"));
    let first = open(greedy.clone()).await;
    let second = open(greedy.clone()).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open(greedy.clone()).await;
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["retry-after"], "1");
    let body: Value = third.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("2 event streams"),
        "{body}"
    );
    assert_eq!(
        open(other).await.status(),
        200,
        "another client is not refused"
    );
    // A closed stream gives its client's slot back.
    drop(first);
    crate::helpers::eventually("a slot to be given back", || {
        let greedy = greedy.clone();
        async move { (open(greedy).await.status() == 200).then_some(()) }
    })
    .await;
}
