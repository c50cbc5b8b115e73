//! In-process tests of the HTTP edge: status codes, error bodies and the records handed to the
//! publisher, with an in-memory publisher standing in for Kafka.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{CONCURRENT_REQUESTS, Outcome, app, app_from_vars, movie, payment, user};
use events_service::kafka::KafkaStatus;
use serde_json::{Value, json};
use tower::ServiceExt;

#[tokio::test]
async fn each_seed_example_is_published_and_answered_with_201() {
    let app = app(Outcome::Stored);
    for (kind, body, topic, key) in [
        ("movie", movie(), "movie-events", "1"),
        ("user", user(), "user-events", "123"),
        ("payment", payment(), "payment-events", "456"),
    ] {
        let (status, response) = app
            .post(&format!("/api/events/{kind}"), body.to_string())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{kind}: {response}");
        assert_eq!(response["status"], "success");
        assert_eq!(response["topic"], topic);
        assert_eq!(response["partition"], 2);
        assert!(response["offset"].as_i64().unwrap() > 40);
        let event = &response["event"];
        assert_eq!(event["type"], kind);
        assert_eq!(event["payload"], body);
        assert!(uuid::Uuid::parse_str(event["id"].as_str().unwrap()).is_ok());
        assert!(chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).is_ok());

        let record = app.published().pop().unwrap();
        assert_eq!(&*record.topic, topic);
        assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(
            serde_json::from_slice::<Value>(&record.value).unwrap(),
            *event
        );
        assert_eq!(record.header("event-id"), event["id"].as_str());
        assert_eq!(record.header("event-type"), Some(kind));
    }
}

#[tokio::test]
async fn a_missing_timestamp_is_filled_with_the_time_of_receipt() {
    let app = app(Outcome::Stored);
    let (status, response) = app
        .post(
            "/api/events/user",
            json!({"user_id": 5, "action": "logged_in"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        response["event"]["payload"]["timestamp"],
        response["event"]["timestamp"]
    );
}

#[tokio::test]
async fn an_invalid_event_is_a_400_naming_every_bad_field_and_nothing_is_published() {
    let app = app(Outcome::Stored);
    let (status, body) = app
        .post(
            "/api/events/movie",
            json!({"movie_id": "1", "action": "rated"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["movie_id", "title", "rating"]);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("movie_id") && message.contains("title") && message.contains("rating"),
        "{message}"
    );
    assert!(app.published().is_empty());
}

#[tokio::test]
async fn malformed_empty_and_non_object_bodies_are_400s() {
    let app = app(Outcome::Stored);
    for body in ["", "{\"movie_id\": 1,", "[]", "42", "\"text\"", "null"] {
        let (status, response) = app.post("/api/events/movie", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "body {body:?}");
        assert!(response["error"].is_string(), "body {body:?}: {response}");
    }
    let (_, response) = app.post("/api/events/movie", "").await;
    assert_eq!(response["error"], "the request body is empty");
    assert!(app.published().is_empty());
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let app = app(Outcome::Stored);
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = Request::post("/api/events/movie");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let (status, _, body) = app
            .send(request.body(Body::from(movie().to_string())).unwrap())
            .await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(body["error"], "Content-Type must be application/json");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let app = app_from_vars(&[("HTTP_BODY_LIMIT_BYTES", "100")], Outcome::Stored);
    let mut body = movie();
    body["description"] = json!("x".repeat(200));
    let (status, response) = app.post("/api/events/movie", body.to_string()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response["error"],
        "the request body is larger than 100 bytes"
    );
    assert!(app.published().is_empty());
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_both_in_json() {
    let app = app(Outcome::Stored);
    let (status, _, body) = app
        .send(
            Request::get("/api/events/nope")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("no such route"))
    );
    let (status, _, body) = app
        .send(
            Request::get("/api/events/movie")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());
    let request = Request::builder()
        .method(Method::DELETE)
        .uri("/api/events/health")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(request).await.0, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_kafka_timeout_is_a_500_and_a_full_queue_a_503_with_retry_after() {
    let (status, body) = app(Outcome::TimedOut)
        .post("/api/events/movie", movie().to_string())
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body["error"],
        "Kafka did not acknowledge the event within 5000 ms"
    );

    let request = Request::post("/api/events/movie")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(movie().to_string()))
        .unwrap();
    let (status, headers, body) = app(Outcome::QueueFull).send(request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn a_request_that_outlives_the_timeout_is_answered_408() {
    let app = app_from_vars(
        &[
            ("KAFKA_DELIVERY_TIMEOUT_MS", "10"),
            ("HTTP_REQUEST_TIMEOUT_MS", "1100"),
        ],
        Outcome::Hang,
    );
    let (status, body) = app.post("/api/events/movie", movie().to_string()).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body["error"], "the request took longer than 1100 ms");
}

#[tokio::test]
async fn health_follows_the_background_check_and_liveness_does_not() {
    let app = app(Outcome::Stored);
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let (status, _, body) = app.send(get("/api/events/health")).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!(false))
    );
    assert_eq!(
        app.send(get("/api/events/health/live")).await.0,
        StatusCode::OK
    );

    app.status.send_replace(KafkaStatus {
        reachable: true,
        brokers: 1,
        missing_topics: vec![],
        missing_dead_letter_topics: vec!["movie-events.dlq".into()],
        last_error: None,
        checked_at: None,
        producer_fatal_errors: Default::default(),
    });
    let (status, _, body) = app.send(get("/api/events/health")).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!(true)));
    assert_eq!(body["kafka"]["brokers"], 1);
    assert_eq!(
        body["kafka"]["missing_dead_letter_topics"],
        json!(["movie-events.dlq"]),
        "ready without a dead-letter topic, and saying so"
    );
    assert_eq!(
        body["consumers"],
        json!({"status": true, "held_partitions": []})
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_validation_rules() {
    let app = app(Outcome::Stored);
    let (status, _, doc) = app
        .send(
            Request::get("/api/events/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    for path in [
        "/api/events/movie",
        "/api/events/user",
        "/api/events/payment",
        "/api/events/health",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let schemas = &doc["components"]["schemas"];
    let movie = &schemas["MovieEvent"];
    assert_eq!(movie["required"], json!(["movie_id", "title", "action"]));
    assert_eq!(movie["properties"]["title"]["minLength"], 1);
    assert_eq!(
        schemas["MovieAction"]["enum"],
        json!(["viewed", "rated", "added", "updated", "deleted"])
    );
    assert_eq!(schemas["Rating"]["maximum"], 10.0);
    assert_eq!(schemas["EntityId"]["minimum"], 1);
    assert_eq!(
        schemas["UserEvent"]["required"],
        json!(["user_id", "action"])
    );
    assert_eq!(
        schemas["PaymentEvent"]["required"],
        json!(["payment_id", "user_id", "amount", "status"])
    );
    assert_eq!(
        schemas["PaymentStatus"]["enum"],
        json!(["completed", "failed", "pending", "refunded"])
    );
    assert_eq!(schemas["Amount"]["minimum"], 0.0);
    for referenced in [
        "ErrorBody",
        "PublishResponse",
        "BatchResponse",
        "Event",
        "FieldError",
    ] {
        assert!(
            schemas[referenced].is_object(),
            "{referenced} is referenced, so it must be there"
        );
    }
    assert_eq!(movie["if"]["properties"]["action"]["const"], "rated");
    assert_eq!(movie["then"]["required"], json!(["rating"]));
    assert!(
        movie["properties"]["title"]["pattern"].is_string(),
        "a title must not be blank"
    );
    assert_eq!(
        schemas["EventPayload"]["anyOf"].as_array().map(Vec::len),
        Some(3)
    );
    let timestamp = &schemas["UserEvent"]["properties"]["timestamp"];
    assert!(
        timestamp.to_string().contains("null"),
        "a null timestamp is accepted: {timestamp}"
    );
    let batch = &doc["paths"]["/api/events/batch"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert_eq!(
        (&batch["minItems"], &batch["maxItems"]),
        (&json!(1), &json!(10))
    );
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_shed_at_once_with_503_but_health_is_not() {
    let app = app_from_vars(&[("HTTP_MAX_CONCURRENT_REQUESTS", "2")], Outcome::Hang);
    let hanging: Vec<_> = (0..2)
        .map(|_| {
            let router = app.router.clone();
            tokio::spawn(async move {
                let request = Request::post("/api/events/movie")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(movie().to_string()))
                    .unwrap();
                router.oneshot(request).await
            })
        })
        .collect();
    // The two hanging requests hold both slots once the fake publisher has them.
    tokio::time::timeout(Duration::from_secs(5), async {
        while app.calls() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("both hanging requests reach the publisher");
    let request = Request::post("/api/events/user")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(user().to_string()))
        .unwrap();
    let (status, headers, body) = tokio::time::timeout(Duration::from_secs(1), app.send(request))
        .await
        .expect("a shed request is answered at once");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(body["error"], "the service is at capacity; retry later");
    let live = Request::get("/api/events/health/live")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(live).await.0, StatusCode::OK);
    for request in hanging {
        request.abort();
    }
}

#[tokio::test]
async fn hostile_bodies_are_400s_with_json_errors_and_publish_nothing() {
    let app = app(Outcome::Stored);
    let deep = format!(
        "{{\"movie_id\": 1, \"title\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("deep nesting", deep.into_bytes()),
        (
            "a number too large for any type",
            br#"{"movie_id": 1e400, "title": "T", "action": "viewed"}"#.to_vec(),
        ),
        (
            "an integer beyond 64 bits",
            br#"{"movie_id": 123456789012345678901234567890, "title": "T", "action": "viewed"}"#
                .to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"movie_id\": 1, \"title\": \"\xff\xfe\", \"action\": \"viewed\"}".to_vec(),
        ),
        (
            "a lone surrogate escape",
            br#"{"movie_id": 1, "title": "\ud800", "action": "viewed"}"#.to_vec(),
        ),
        (
            "a NUL byte",
            b"{\"movie_id\": 1,\0 \"title\": \"T\", \"action\": \"viewed\"}".to_vec(),
        ),
        (
            "trailing garbage",
            br#"{"movie_id": 1, "title": "T", "action": "viewed"} extra"#.to_vec(),
        ),
    ];
    for (case, body) in cases {
        let (status, response) = app.post("/api/events/movie", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {response}");
        assert!(response["error"].is_string(), "{case}: {response}");
    }
    assert!(app.published().is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn any_body_gets_a_json_answer_and_never_a_server_error(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        route in proptest::sample::select(vec!["movie", "user", "payment", "batch"]),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (status, response) = runtime.block_on(async {
            app(Outcome::Stored).post(&format!("/api/events/{route}"), body).await
        });
        proptest::prop_assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::CREATED, "{status}");
        proptest::prop_assert!(status == StatusCode::CREATED || response["error"].is_string());
    }
}

#[tokio::test]
async fn a_handler_that_panics_is_answered_500_json_and_counted_and_the_service_goes_on() {
    let app = app(Outcome::Panic);
    let panics = || app.metric("events_service_http_panics_total");
    assert_eq!(panics(), Some(0.0));
    let (status, body) = app.post("/api/events/movie", movie().to_string()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"error": "internal error"}));
    assert_eq!(panics(), Some(1.0));
    // Its concurrency slot was given back: more panics than there are slots are all answered.
    for _ in 0..CONCURRENT_REQUESTS {
        let (status, _) = app.post("/api/events/movie", movie().to_string()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(panics(), Some(1.0 + CONCURRENT_REQUESTS as f64));
    let live = Request::get("/api/events/health/live")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(live).await.0, StatusCode::OK);
}
