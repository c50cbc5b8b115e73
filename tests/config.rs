//! The configuration from the environment to what the service does. README's table is the list:
//! every variable in it is read by `src/config/` and set by a test that checks what it does;
//! those the router alone shows are checked here, table-driven, the others by the tests named
//! in `ELSEWHERE` (integration tests against a broker, mostly).

mod common;

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Outcome, TestRouter, app_from_vars, movie};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Where the variables this file does not check are checked.
const ELSEWHERE: &[(&str, &str)] = &[
    ("PORT", "tests/kafka/helpers.rs (every service on PORT=0)"),
    ("HOST", "tests/kafka/helpers.rs"),
    (
        "KAFKA_BROKERS",
        "tests/kafka/helpers.rs (and no broker in tests/kafka/health.rs)",
    ),
    ("KAFKA_TOPIC_PARTITIONS", "tests/kafka/scale_out.rs"),
    ("KAFKA_TOPIC_REPLICATION_FACTOR", "tests/kafka/topics.rs"),
    ("KAFKA_GROUP_ID", "tests/kafka/consumers.rs"),
    ("KAFKA_AUTO_OFFSET_RESET", "tests/kafka/consumers.rs"),
    ("KAFKA_CONSUMERS_ENABLED", "tests/kafka/process.rs"),
    ("KAFKA_DELIVERY_TIMEOUT_MS", "tests/kafka/health.rs"),
    ("KAFKA_MAX_QUEUED_EVENTS", "tests/kafka/batch.rs"),
    ("KAFKA_LINGER_MS", "tests/kafka/process.rs"),
    ("KAFKA_IDLE_LINGER_MS", "tests/kafka/publish.rs"),
    (
        "KAFKA_HEALTH_INTERVAL_MS",
        "tests/kafka/helpers.rs (200 ms in every test: health follows within it)",
    ),
    ("KAFKA_DLQ_MAX_HOLD_MS", "tests/kafka/poison.rs"),
    ("KAFKA_STATISTICS_INTERVAL_MS", "tests/kafka/metrics.rs"),
    ("HTTP_REQUEST_TIMEOUT_MS", "tests/router.rs"),
    ("HTTP_HEADER_TIMEOUT_MS", "tests/kafka/connections.rs"),
    ("HTTP_IDLE_TIMEOUT_MS", "tests/kafka/connections.rs"),
    ("HTTP_MAX_CONNECTIONS", "tests/kafka/connections.rs"),
    ("STREAM_WRITE_TIMEOUT_MS", "tests/kafka/connections.rs"),
    ("SHUTDOWN_TIMEOUT_MS", "tests/kafka/process.rs"),
    ("AUTH_API_KEYS", "tests/security.rs"),
    ("AUTH_JWT_HS256_SECRET", "tests/security.rs"),
    ("AUTH_JWT_RS256_PUBLIC_KEY_FILE", "tests/security.rs"),
    ("AUTH_JWT_ISSUER", "tests/security.rs"),
    ("AUTH_JWT_AUDIENCE", "tests/security.rs"),
    ("AUTH_OPEN_ROUTES", "tests/security.rs"),
    ("RATE_LIMIT_PER_SECOND", "tests/rate_limit.rs"),
    ("RATE_LIMIT_BURST", "tests/rate_limit.rs"),
    ("LOG_FORMAT", "tests/kafka/trace_context.rs"),
    ("LOG_LEVEL", "tests/kafka/helpers.rs"),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "tests/kafka/trace_context.rs",
    ),
    ("OTEL_SERVICE_NAME", "tests/kafka/trace_context.rs"),
    ("RDKAFKA_<NAME>", "tests/kafka/security.rs"),
    ("RDKAFKA_PRODUCER_<NAME>", "tests/kafka/process.rs"),
    ("RDKAFKA_CONSUMER_<NAME>", "tests/kafka/consumers.rs"),
    ("REDIS_URL", "tests/kafka/shared/mod.rs"),
    ("REDIS_KEY_PREFIX", "tests/kafka/shared/mod.rs"),
    ("REDIS_TIMEOUT_MS", "tests/kafka/shared/redis_trouble.rs"),
    (
        "SCHEMA_REGISTRY_URL",
        "tests/kafka/schema_registry.rs (a real Apicurio Registry)",
    ),
    (
        "SCHEMA_REGISTRY_WIRE_FORMAT",
        "tests/kafka/schema_registry.rs",
    ),
    (
        "SCHEMA_REGISTRY_TIMEOUT_MS",
        "tests/kafka/schema_registry.rs",
    ),
    (
        "SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS",
        "tests/kafka/schema_registry.rs",
    ),
];

fn post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn status(app: &TestRouter, request: Request<Body>) -> StatusCode {
    app.router.clone().oneshot(request).await.unwrap().status()
}

/// Starts `count` requests that hang (the sink never answers), and waits until they reach it.
async fn hanging(app: &TestRouter, count: usize, body: &Value) -> Vec<tokio::task::JoinHandle<()>> {
    let requests = (0..count)
        .map(|_| {
            let (router, request) = (app.router.clone(), post("/api/events/movie", body));
            tokio::spawn(async move {
                let _ = router.oneshot(request).await;
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.calls() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the requests never arrived"
        );
        tokio::task::yield_now().await;
    }
    requests
}

fn batch(items: usize) -> Value {
    let mut item = movie();
    item["type"] = json!("movie");
    json!(vec![item; items])
}

async fn stream(app: &TestRouter) -> StatusCode {
    let request = Request::get("/api/events/stream")
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    // An open stream keeps its slot for as long as its body lives.
    std::mem::forget(response);
    status
}

#[tokio::test]
async fn each_router_variable_changes_what_the_service_does() {
    // HTTP_BODY_LIMIT_BYTES: a body over it is a 413, one under it is not.
    let app = app_from_vars(&[("HTTP_BODY_LIMIT_BYTES", "300")], Outcome::Stored);
    let mut long = movie();
    long["description"] = json!("d".repeat(400));
    assert_eq!(
        status(&app, post("/api/events/movie", &long)).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let short = json!({"movie_id": 1, "title": "T", "action": "viewed"});
    assert_eq!(
        status(&app, post("/api/events/movie", &short)).await,
        StatusCode::CREATED
    );

    // BATCH_MAX_EVENTS: one item more is a 413.
    let app = app_from_vars(&[("BATCH_MAX_EVENTS", "2")], Outcome::Stored);
    assert_eq!(
        status(&app, post("/api/events/batch", &batch(2))).await,
        StatusCode::CREATED
    );
    assert_eq!(
        status(&app, post("/api/events/batch", &batch(3))).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // HTTP_MAX_CONCURRENT_REQUESTS: with one in flight, the next is shed.
    let app = app_from_vars(&[("HTTP_MAX_CONCURRENT_REQUESTS", "1")], Outcome::Hang);
    let _held = hanging(&app, 1, &short).await;
    assert_eq!(
        status(&app, post("/api/events/movie", &short)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // HTTP_MAX_INFLIGHT_BYTES: room for one body of the limit, not two.
    let app = app_from_vars(
        &[
            ("HTTP_BODY_LIMIT_BYTES", "1000"),
            ("HTTP_MAX_INFLIGHT_BYTES", "1500"),
        ],
        Outcome::Hang,
    );
    let mut sized = short.clone();
    sized["description"] = json!("d".repeat(1000 - short.to_string().len() - 17));
    assert_eq!(sized.to_string().len(), 1000);
    let _held = hanging(&app, 1, &sized).await;
    assert_eq!(
        status(&app, post("/api/events/movie", &sized)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.calls(), 1, "the shed request never reached Kafka");

    // STREAM_MAX_CLIENTS and STREAM_MAX_PER_CLIENT.
    let app = app_from_vars(&[("STREAM_MAX_CLIENTS", "1")], Outcome::Stored);
    assert_eq!(stream(&app).await, StatusCode::OK);
    assert_eq!(stream(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    let app = app_from_vars(
        &[("STREAM_MAX_CLIENTS", "5"), ("STREAM_MAX_PER_CLIENT", "1")],
        Outcome::Stored,
    );
    assert_eq!(stream(&app).await, StatusCode::OK);
    assert_eq!(stream(&app).await, StatusCode::TOO_MANY_REQUESTS);

    // KAFKA_TOPIC_PREFIX and CLOUDEVENTS_SOURCE: the record's topic and source.
    let app = app_from_vars(
        &[
            ("KAFKA_TOPIC_PREFIX", "staging."),
            ("CLOUDEVENTS_SOURCE", "/staging/events"),
        ],
        Outcome::Stored,
    );
    assert_eq!(
        status(&app, post("/api/events/movie", &short)).await,
        StatusCode::CREATED
    );
    let record = app.published().pop().unwrap();
    assert_eq!(&*record.topic, "staging.movie-events");
    assert_eq!(record.header("ce_source"), Some("/staging/events"));
}

#[tokio::test]
async fn the_idempotency_window_and_memory_are_what_they_say() {
    let keyed = |key: &str| {
        let mut request = post("/api/events/movie", &movie());
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        request
    };
    let replayed = |app: &TestRouter, key: &str| {
        let (router, request) = (app.router.clone(), keyed(key));
        async move {
            let response = router.oneshot(request).await.unwrap();
            response.headers().contains_key("idempotent-replayed")
        }
    };
    // IDEMPOTENCY_WINDOW_SECS: replayed within the window, published again after it.
    let app = app_from_vars(&[("IDEMPOTENCY_WINDOW_SECS", "1")], Outcome::Stored);
    assert!(!replayed(&app, "k").await);
    assert!(replayed(&app, "k").await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!replayed(&app, "k").await, "the window has passed");
    assert_eq!(app.published().len(), 2);

    // IDEMPOTENCY_MAX_BYTES: room for a few answers; the oldest go first.
    let app = app_from_vars(&[("IDEMPOTENCY_MAX_BYTES", "4096")], Outcome::Stored);
    for n in 0..20 {
        assert!(!replayed(&app, &format!("k{n}")).await);
    }
    assert!(replayed(&app, "k19").await, "the newest is remembered");
    assert!(!replayed(&app, "k0").await, "the oldest was forgotten");
}

/// The variables of README's Configuration table.
fn documented() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md is readable");
    let table = readme
        .split("## Configuration")
        .nth(1)
        .expect("README has a Configuration section");
    table
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// Every file under `dir` ending in `.rs`, with its text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    found
}

#[test]
fn every_documented_variable_is_read_and_checked_and_every_one_read_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let documented = documented();
    assert!(documented.len() >= 40, "{documented:?}");
    let config: String = sources(&root.join("src/config"))
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let tests = sources(&root.join("tests"));
    let this_file = std::fs::read_to_string(root.join("tests/config.rs")).unwrap();
    for variable in &documented {
        let read = match variable.strip_suffix("<NAME>") {
            Some(prefix) => config.contains(&format!("\"{prefix}")),
            None => config.contains(&format!("\"{variable}\"")),
        };
        assert!(
            read,
            "{variable} is documented but src/config/ does not read it"
        );
        let set_as = match variable.strip_suffix("<NAME>") {
            Some(prefix) => format!("\"{prefix}"),
            None => format!("(\"{variable}\","),
        };
        let (_, checks) = this_file
            .split_once("\n];\n")
            .expect("ELSEWHERE ends with ];");
        let checked_here = checks.contains(&set_as);
        let elsewhere = ELSEWHERE
            .iter()
            .find(|(v, _)| v == variable)
            .map(|(_, file)| *file);
        match elsewhere {
            Some(place) => {
                let file = place.split(' ').next().unwrap();
                let text = tests
                    .iter()
                    .find(|(path, _)| path.ends_with(file))
                    .map(|(_, text)| text.as_str())
                    .unwrap_or_else(|| panic!("{variable}: {file} does not exist"));
                assert!(
                    text.contains(&set_as) || text.contains(&format!("\"{variable}\"")),
                    "{variable}: {file} does not set it"
                );
            }
            None => assert!(checked_here, "{variable} is checked nowhere"),
        }
    }
    // And the other way round: every variable read is documented.
    for line in config.lines().filter(|l| l.contains("env.")) {
        for quoted in line.split('"').skip(1).step_by(2) {
            let looks_like_a_variable = quoted.len() > 3
                && quoted
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if looks_like_a_variable {
                assert!(
                    documented.iter().any(|d| d == quoted),
                    "{quoted} is read but not in README's table"
                );
            }
        }
    }
}

#[test]
fn the_runtime_gets_the_worker_threads_asked_for() {
    let config = |vars: &[(&str, &str)]| {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        events_service::Config::from_vars(vars)
    };
    // TOKIO_WORKER_THREADS: tokio's own variable; main.rs builds the runtime with what it says.
    let asked = config(&[("TOKIO_WORKER_THREADS", "3")]).unwrap();
    assert_eq!(asked.worker_threads, 3);
    let default = config(&[]).unwrap().worker_threads;
    assert_eq!(default, events_service::config::default_worker_threads());
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(default, cores.saturating_sub(1).max(1));
    let refused = config(&[("TOKIO_WORKER_THREADS", "0")]).unwrap_err();
    assert!(
        refused.to_string().contains("TOKIO_WORKER_THREADS"),
        "{refused}"
    );
}
