//! The AsyncAPI document against the records a broker holds: the binary (which traces every
//! request, so its records carry the trace context) publishes an event of each type and
//! dead-letters a poison record, and each record read back is checked against the document it
//! serves: its key, every header, its value.

use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use serde_json::{Value, json};

use crate::asyncapi_check::{Checked, Contract, Record};

use crate::helpers::{
    ServiceProcess, brokers, foreign_producer, isolated_vars, produce_to, read_partition,
    read_record, var, wait_until_healthy,
};

/// `record` checked against `contract`; fails naming everything that is wrong.
pub fn check(contract: &Contract, record: &OwnedMessage) -> Checked {
    let headers = record
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    contract
        .check(&Record {
            topic: record.topic(),
            key: record.key(),
            headers,
            value: record.payload().unwrap_or_default(),
        })
        .unwrap_or_else(|wrong| panic!("{}/{}: {wrong:#?}", record.topic(), record.offset()))
}

/// The AsyncAPI document `address` serves.
pub async fn document(address: &str) -> Contract {
    let response = reqwest::get(format!("{address}/api/events/asyncapi.json"))
        .await
        .expect("the service answers");
    assert_eq!(response.status(), 200);
    Contract::new(response.json().await.expect("the document is JSON"))
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn the_records_in_the_topics_are_what_the_asyncapi_document_says() {
    let brokers = brokers();
    let vars = isolated_vars(&brokers);
    let prefix = var(&vars, "KAFKA_TOPIC_PREFIX").to_owned();
    let service = ServiceProcess::spawn(&vars);
    wait_until_healthy(&service.address).await;
    let contract = document(&service.address).await;
    let client = reqwest::Client::new();
    for (kind, body) in [
        (
            "movie",
            json!({"movie_id": 7, "title": "Heat", "action": "rated", "rating": 8}),
        ),
        ("user", json!({"user_id": 123, "action": "logged_in"})),
        (
            "payment",
            json!({"payment_id": 456, "user_id": 123, "amount": 9.5, "status": "refunded"}),
        ),
    ] {
        let response = client
            .post(format!("{}/api/events/{kind}", service.address))
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .json(&body)
            .send()
            .await
            .expect("the service answers");
        assert_eq!(response.status(), 201);
        let answer: Value = response.json().await.unwrap();
        let topic = answer["topic"].as_str().unwrap();
        let partition = answer["partition"].as_i64().unwrap() as i32;
        let record = read_record(
            &brokers,
            topic,
            partition,
            answer["offset"].as_i64().unwrap(),
        );
        let checked = check(&contract, &record);
        assert_eq!(checked.value, answer["event"], "{kind}");
        assert_eq!(checked.schema_id, None);
        let traced = record
            .headers()
            .is_some_and(|h| h.iter().any(|h| h.key == "traceparent"));
        assert!(
            traced,
            "{kind}: the binary's records carry the trace context"
        );
    }

    let topic = format!("{prefix}movie-events");
    let producer = foreign_producer(&brokers);
    produce_to(&producer, &topic, 0, b"poison", b"not an event").await;
    let dead_letters = format!("{topic}.dlq");
    // Read as it arrives: the reader polls with its deadline.
    let letter = read_partition(&brokers, &dead_letters, 0, 1).pop().unwrap();
    check(&contract, &letter);
    assert_eq!(letter.payload(), Some(&b"not an event"[..]));
}
