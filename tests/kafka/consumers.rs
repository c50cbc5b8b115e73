use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use rdkafka::Message;

use crate::helpers::{
    DEADLINE, TestApp, brokers, committed_offset, header, isolated_vars, read_partition,
};

/// Waits until the app's consumers announce the event with `id`.
async fn processed(app: &mut TestApp, id: &str) -> events_service::consumer::ProcessedEvent {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match app.processed.recv().await {
                Ok(event) if event.id == id => return event,
                Ok(_) => continue,
                Err(error) => panic!("the processed-event channel failed: {error}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("event {id} was not processed within {DEADLINE:?}"))
}

#[tokio::test]
async fn the_built_in_consumers_process_an_event_posted_over_http() {
    let mut app = TestApp::spawn(isolated_vars(&brokers())).await;
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
    assert_eq!(processed.event_type, "payment");
    let payload: serde_json::Value = serde_json::from_str(processed.payload.get()).unwrap();
    assert_eq!(payload, response["event"]["payload"]);

    // Shutdown commits what was processed, so a restart resumes after this event.
    let (brokers, group, topic) = (brokers(), app.group_id.clone(), app.topic("payment-events"));
    app.stop().await;
    let committed = tokio::task::spawn_blocking(move || {
        committed_offset(&brokers, &group, &topic, processed.partition)
    })
    .await
    .unwrap();
    assert_eq!(
        committed,
        Some(processed.offset + 1),
        "the processed offset was committed at shutdown"
    );
}

#[tokio::test]
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
                    .payload(*value),
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
        assert_eq!(
            header(letter, "dlq-source-topic").as_deref(),
            Some(topic.as_str())
        );
        assert_eq!(header(letter, "dlq-source-partition").as_deref(), Some("0"));
        assert_eq!(header(letter, "dlq-source-offset"), Some(n.to_string()));
        assert!(header(letter, "dlq-error").is_some_and(|e| !e.is_empty()));
    }
    app.stop().await;
}
