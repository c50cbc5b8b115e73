//! The live view fed by the real consumers: an event posted over HTTP comes out of
//! `GET /api/events/stream` once the built-in consumers have processed it, and is counted by
//! `GET /api/events/stats`.

use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{DEADLINE, TestApp, brokers, isolated_vars};

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn an_event_posted_over_http_is_streamed_once_processed_and_counted() {
    let app = TestApp::spawn(isolated_vars(&brokers())).await;
    app.wait_until_healthy().await;
    let response = app
        .client
        .get(format!("{}/api/events/stream?type=payment", app.address))
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();

    let (status, answer) = app
        .post(
            "payment",
            &json!({"payment_id": 5, "user_id": 6, "amount": 12.5, "status": "completed"}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let id = answer["event"]["id"].as_str().unwrap();
    let expected_stream_id = format!(
        "{}-{}-{}",
        answer["topic"].as_str().unwrap(),
        answer["partition"],
        answer["offset"]
    );

    let mut received = String::new();
    let message = tokio::time::timeout(DEADLINE, async {
        loop {
            let chunk = stream.next().await.expect("the stream stays open").unwrap();
            received.push_str(std::str::from_utf8(&chunk).unwrap());
            if let Some(message) = received.split("\n\n").find(|m| m.contains(id)) {
                return message.to_owned();
            }
        }
    })
    .await
    .expect("the event is streamed within the deadline");
    assert!(
        message
            .lines()
            .any(|l| l == format!("id: {expected_stream_id}")),
        "{message}"
    );
    let data = message
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        (&event["type"], &event["action"]),
        (&json!("payment"), &json!("completed"))
    );
    assert_eq!(event["payload"], answer["event"]["payload"]);

    let stats: Value = app
        .client
        .get(format!("{}/api/events/stats", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["payments"]["completed"]["count"], 1);
    assert_eq!(stats["payments"]["completed"]["amount"], 12.5);
    // The open stream does not hold up the shutdown: it ends at once, far within the 20 s the
    // shutdown may take.
    let stopping = std::time::Instant::now();
    let stopped = app.stop_within(std::time::Duration::from_secs(5)).await;
    assert!(stopped.is_ok(), "{stopped:?}");
    assert!(
        stopping.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        stopping.elapsed()
    );
    drop(stream);
}
