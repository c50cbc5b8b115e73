use std::sync::Arc;
use std::time::{Duration, Instant};

use events_service::kafka::{KafkaProducer, KafkaSink};
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

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn with_no_broker_the_background_check_reports_what_it_found_not_the_initial_state() {
    let unreachable = format!("127.0.0.1:{}", closed_port());
    let app = TestApp::spawn(isolated_vars(&unreachable)).await;
    let body = crate::helpers::eventually("a check to report", || async {
        let (_, body) = app.health().await;
        (!body["kafka"]["checked_at"].is_null()).then_some(body)
    })
    .await;
    assert_eq!(body["status"], false);
    let error = body["kafka"]["last_error"].as_str().unwrap();
    assert_ne!(error, "not checked yet");
    assert!(!error.is_empty(), "{body}");
    app.stop().await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_producer_that_hit_a_fatal_error_is_replaced_and_publishing_goes_on() {
    let app = TestApp::spawn(isolated_vars(&brokers())).await;
    app.wait_until_healthy().await;
    let movie = json!({"movie_id": 1, "title": "T", "action": "viewed"});
    assert_eq!(app.post("movie", &movie).await.0, 201);

    // librdkafka's own test hook raises the fatal error an idempotent producer can meet, in
    // the prompt producer (idle records) and then in the batching one.
    let lanes: [(&str, ProducerOf); 2] = [
        ("prompt", KafkaSink::prompt_producer),
        ("batching", |sink| Some(sink.producer())),
    ];
    for (count, (lane, producer_of)) in (1..).zip(lanes) {
        let fatal = raise_fatal_error(&app, producer_of, count).await;
        assert_eq!(fatal["last"]["replaced"], true, "{lane}: {fatal}");
        assert!(
            fatal["last"]["error"]
                .as_str()
                .unwrap()
                .contains("raised by the test"),
            "{lane}: {fatal}"
        );
    }
    app.wait_until_healthy().await;
    let (status, body) = app.post("movie", &movie).await;
    assert_eq!(status, 201, "the new producer publishes: {body}");
    let live = reqwest::get(format!("{}/api/events/health/live", app.address))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    // A third within the minute: new producers do not help (say, an ACL denies idempotent
    // writes), so readiness fails while liveness holds.
    raise_fatal_error(&app, |sink| Some(sink.producer()), 3).await;
    let (status, body) = app.health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["kafka"]["producer_fatal_errors"]["in_last_minute"], 3,
        "{body}"
    );
    app.stop().await;
}

type ProducerOf = fn(&KafkaSink) -> Option<Arc<KafkaProducer>>;

/// Raises a fatal error in the producer `producer_of` picks, waits until health reports it as
/// the `count`th and a new producer has taken over, and returns health's `producer_fatal_errors`.
async fn raise_fatal_error(
    app: &TestApp,
    producer_of: ProducerOf,
    count: u64,
) -> serde_json::Value {
    let producer = producer_of(&app.sink).expect("the service runs both producers");
    let raised = unsafe {
        rdkafka::bindings::rd_kafka_test_fatal_error(
            producer.client().native_ptr(),
            rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
            c"raised by the test".as_ptr(),
        )
    };
    assert_eq!(
        raised,
        rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    );
    let fatal = crate::helpers::eventually("health to report the replacement", || async {
        let (_, body) = app.health().await;
        let fatal = body["kafka"]["producer_fatal_errors"].clone();
        (fatal["count"] == count).then_some(fatal)
    })
    .await;
    let now = producer_of(&app.sink).unwrap();
    assert!(!Arc::ptr_eq(&producer, &now), "a new producer");
    fatal
}
