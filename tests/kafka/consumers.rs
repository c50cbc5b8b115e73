use serde_json::json;

use crate::helpers::{DEADLINE, TestApp, brokers, isolated_vars};

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

    let processed = tokio::time::timeout(DEADLINE, async {
        loop {
            match app.processed.recv().await {
                Ok(event) if event.id == id => return event,
                Ok(_) => continue,
                Err(error) => panic!("the processed-event channel failed: {error}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("event {id} was not processed within {DEADLINE:?}"));

    assert_eq!(processed.topic, app.topic("payment-events"));
    assert_eq!(
        processed.partition as i64,
        response["partition"].as_i64().unwrap()
    );
    assert_eq!(processed.offset, response["offset"].as_i64().unwrap());
    assert_eq!(processed.key.as_deref(), Some("9"));
    assert_eq!(processed.event_type, "payment");
    assert_eq!(processed.payload, response["event"]["payload"]);
    app.stop().await;
}
