use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{TestApp, brokers, closed_port, isolated_vars, with};

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn health_is_200_with_the_broker_up() {
    let app = TestApp::spawn(isolated_vars(&brokers())).await;
    app.wait_until_healthy().await;
    let (status, body) = app.health().await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], true);
    assert!(body["kafka"]["brokers"].as_u64().unwrap() >= 1);
    assert_eq!(body["kafka"]["missing_topics"], json!([]));
    app.stop().await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn with_no_broker_health_is_503_at_once_and_a_post_fails_with_500_within_the_delivery_timeout()
 {
    let unreachable = format!("127.0.0.1:{}", closed_port());
    let vars = with(
        isolated_vars(&unreachable),
        &[("KAFKA_DELIVERY_TIMEOUT_MS", "2000")],
    );
    let app = TestApp::spawn(vars).await;

    let started = Instant::now();
    let (status, body) = app.health().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "health took {:?}",
        started.elapsed()
    );
    assert_eq!((status.as_u16(), &body["status"]), (503, &json!(false)));

    let started = Instant::now();
    let (status, body) = app
        .post(
            "movie",
            &json!({"movie_id": 1, "title": "T", "action": "viewed"}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("did not acknowledge"),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "took {took:?}"
    );

    let (status, _) = app.health().await;
    assert_eq!(status, 503, "still unhealthy");
    app.stop().await;
}
