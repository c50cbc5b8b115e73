//! In-process tests of `GET /metrics`: the exposition format, and the HTTP metrics with their
//! bounded labels. Every test router has a metrics registry of its own, as every application
//! does, so a test compares a counter before and after what it did and expects exactly its own
//! requests.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Outcome, TestRouter, app, app_from_vars, movie};
use http_body_util::BodyExt;
use tower::ServiceExt;

const KEY: &str = "metrics-test-key-0123456789";
const REQUESTS: &str = "events_service_http_requests_total";
const DURATION: &str = "events_service_http_request_duration_seconds";

/// One line of the exposition that is not a comment: `name{label="value",...} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The metrics as the app renders them, parsed; panics on anything that is not Prometheus text.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
    /// `# TYPE` lines: metric name to type.
    types: BTreeMap<String, String>,
}

impl Scrape {
    /// The sum of the samples named `name` that carry all of `labels`; 0 when there are none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| s.value)
            .sum()
    }
}

async fn scrape(app: &TestRouter) -> Scrape {
    let response = app
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    parse(String::from_utf8(bytes.to_vec()).expect("the exposition is UTF-8"))
}

fn parse(text: String) -> Scrape {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_owned(), kind.to_owned());
        } else if line.starts_with("# HELP ") {
            continue;
        } else {
            assert!(!line.starts_with('#'), "an unknown comment: {line}");
            samples.push(parse_sample(line));
        }
    }
    Scrape {
        text,
        samples,
        types,
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .expect("a sample is a series and a value");
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        value => value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').expect("labels end with }");
            (name, parse_labels(body, line))
        }
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "a bad metric name: {line}"
    );
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

fn parse_labels(mut body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !body.is_empty() {
        let (key, rest) = body.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("{line}"),
                },
                Some((_, c)) => value.push(c),
                None => panic!("an unterminated label value: {line}"),
            }
        };
        labels.insert(key.to_owned(), value);
        body = rest[end + 1..].trim_start_matches(',');
    }
    labels
}

async fn status_of(app: &TestRouter, request: Request<Body>) -> StatusCode {
    app.router.clone().oneshot(request).await.unwrap().status()
}

fn post_movie() -> Request<Body> {
    Request::post("/api/events/movie")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(movie().to_string()))
        .unwrap()
}

/// How much each of `series` grew between two scrapes around `act`.
async fn growth<const N: usize>(
    app: &TestRouter,
    series: [(&str, &[(&str, &str)]); N],
    act: impl AsyncFnOnce(),
) -> [f64; N] {
    let before = scrape(app).await;
    act().await;
    let after = scrape(app).await;
    series.map(|(name, labels)| after.value(name, labels) - before.value(name, labels))
}

#[tokio::test]
async fn requests_are_counted_and_timed_by_route_method_and_status() {
    let app = app(Outcome::Stored);
    let movie_route = [("route", "/api/events/movie"), ("method", "POST")];
    let [created, invalid, timed] = growth(
        &app,
        [
            (
                REQUESTS,
                &[movie_route[0], movie_route[1], ("status", "201")],
            ),
            (
                REQUESTS,
                &[movie_route[0], movie_route[1], ("status", "400")],
            ),
            (&format!("{DURATION}_count"), &movie_route),
        ],
        async || {
            for _ in 0..3 {
                assert_eq!(status_of(&app, post_movie()).await, StatusCode::CREATED);
            }
            let broken = Request::post("/api/events/movie")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{"))
                .unwrap();
            assert_eq!(status_of(&app, broken).await, StatusCode::BAD_REQUEST);
        },
    )
    .await;
    assert_eq!(created, 3.0, "201s counted");
    assert_eq!(invalid, 1.0, "400s counted");
    assert_eq!(timed, 4.0, "every answer timed");

    let after = scrape(&app).await;
    let inf = after.value(
        &format!("{DURATION}_bucket"),
        &[movie_route[0], movie_route[1], ("le", "+Inf")],
    );
    assert_eq!(
        inf,
        after.value(&format!("{DURATION}_count"), &movie_route),
        "the +Inf bucket holds every observation"
    );
}

#[tokio::test]
async fn paths_and_methods_that_clients_make_up_are_not_label_values() {
    let app = app(Outcome::Stored);
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    let invented = [("route", "/api/events/movie"), ("method", "other")];
    let [not_found, brewed] = growth(
        &app,
        [(REQUESTS, &unmatched), (REQUESTS, &invented)],
        async || {
            let path = "/api/events/movie/4f1c2b7e-made-up";
            let request = Request::get(path).body(Body::empty()).unwrap();
            assert_eq!(status_of(&app, request).await, StatusCode::NOT_FOUND);
            let brew = Request::builder()
                .method(Method::from_bytes(b"BREW").unwrap())
                .uri("/api/events/movie")
                .body(Body::empty())
                .unwrap();
            assert_eq!(status_of(&app, brew).await, StatusCode::METHOD_NOT_ALLOWED);
        },
    )
    .await;
    assert_eq!(not_found, 1.0, "the 404 is counted as unmatched");
    assert_eq!(brewed, 1.0, "the made-up method is counted as other");
    let text = scrape(&app).await.text;
    assert!(
        !text.contains("made-up") && !text.contains("BREW"),
        "{text}"
    );
}

#[tokio::test]
async fn the_answers_of_the_layers_before_the_handler_are_counted() {
    let limited = app_from_vars(
        &[("AUTH_API_KEYS", KEY), ("RATE_LIMIT_PER_SECOND", "0.001")],
        Outcome::Stored,
    );
    let slow = app_from_vars(
        &[
            ("KAFKA_DELIVERY_TIMEOUT_MS", "10"),
            ("HTTP_REQUEST_TIMEOUT_MS", "1100"),
        ],
        Outcome::Hang,
    );
    let full = app(Outcome::QueueFull);
    let with_key = || {
        let mut request = post_movie();
        request
            .headers_mut()
            .insert("x-api-key", KEY.parse().unwrap());
        request
    };
    let counted = |status| {
        [
            ("route", "/api/events/movie"),
            ("method", "POST"),
            ("status", status),
        ]
    };
    let [unauthorized, created, limited_out] = growth(
        &limited,
        [
            (REQUESTS, &counted("401")),
            (REQUESTS, &counted("201")),
            (REQUESTS, &counted("429")),
        ],
        async || {
            let status = status_of(&limited, post_movie()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(status_of(&limited, with_key()).await, StatusCode::CREATED);
            let status = status_of(&limited, with_key()).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        },
    )
    .await;
    assert_eq!((unauthorized, created, limited_out), (1.0, 1.0, 1.0));
    let [timed_out] = growth(&slow, [(REQUESTS, &counted("408"))], async || {
        let status = status_of(&slow, post_movie()).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    })
    .await;
    assert_eq!(timed_out, 1.0);
    let [unavailable] = growth(&full, [(REQUESTS, &counted("503"))], async || {
        let status = status_of(&full, post_movie()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
    assert_eq!(unavailable, 1.0);
}

#[tokio::test]
async fn the_metrics_are_open_and_never_rate_limited() {
    let app = app_from_vars(
        &[("AUTH_API_KEYS", KEY), ("RATE_LIMIT_PER_SECOND", "0.001")],
        Outcome::Stored,
    );
    for _ in 0..3 {
        scrape(&app).await;
    }
}

#[tokio::test]
async fn the_exposition_is_prometheus_text_with_help_and_type_lines() {
    let app = app(Outcome::Stored);
    assert_eq!(status_of(&app, post_movie()).await, StatusCode::CREATED);
    let scraped = scrape(&app).await;
    assert_eq!(
        scraped.types.get(REQUESTS).map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        scraped.types.get(DURATION).map(String::as_str),
        Some("histogram")
    );
    assert!(
        scraped.text.contains(&format!("# HELP {REQUESTS} ")),
        "{}",
        scraped.text
    );
    for sample in &scraped.samples {
        let family = [
            sample.name.as_str(),
            sample.name.trim_end_matches("_bucket"),
            sample.name.trim_end_matches("_sum"),
            sample.name.trim_end_matches("_count"),
        ]
        .into_iter()
        .find(|family| scraped.types.contains_key(*family))
        .unwrap_or_else(|| panic!("{} has no # TYPE line", sample.name));
        assert!(
            family.starts_with("events_service_"),
            "{} is not the service's",
            sample.name
        );
        if scraped.types[family] == "counter" {
            assert!(family.ends_with("_total"), "counter {family}");
        }
    }
    // A histogram's buckets are cumulative.
    let buckets: Vec<f64> = scraped
        .samples
        .iter()
        .filter(|s| s.name == format!("{DURATION}_bucket"))
        .filter(|s| s.labels["route"] == "/api/events/movie" && s.labels["method"] == "POST")
        .map(|s| s.value)
        .collect();
    assert!(buckets.len() > 10, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
}

#[tokio::test]
async fn every_outcome_of_a_record_is_counted_by_topic_and_result_and_the_queue_is_sampled() {
    let outcomes = [
        common::Outcome::Stored,
        common::Outcome::Stored,
        common::Outcome::QueueFull,
        common::Outcome::TimedOut,
        common::Outcome::Failed,
        common::Outcome::Rejected,
    ];
    let app = common::app_deciding(&[], move |n| outcomes[n]);
    for _ in outcomes {
        status_of(&app, post_movie()).await;
    }
    let produced = |result: &str| {
        app.metric(&format!(
            r#"events_service_kafka_produce_total{{topic="movie-events",result="{result}"}}"#
        ))
    };
    assert_eq!(produced("stored"), Some(2.0));
    assert_eq!(produced("queue_full"), Some(1.0));
    assert_eq!(produced("timed_out"), Some(1.0));
    assert_eq!(produced("failed"), Some(2.0), "failed and refused for good");
    assert_eq!(
        app.metric(r#"events_service_kafka_produce_duration_seconds_count{topic="movie-events"}"#),
        Some(2.0),
        "only stored records are timed"
    );
    app.sink
        .queued
        .store(7, std::sync::atomic::Ordering::SeqCst);
    let scraped = scrape(&app).await;
    assert_eq!(
        scraped.value("events_service_kafka_producer_queue_events", &[]),
        7.0
    );
}

#[test]
fn every_metric_the_service_defines_is_in_readmes_tables() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let names = std::fs::read_to_string(root.join("src/telemetry/metrics.rs")).unwrap();
    let defined: Vec<&str> = names
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("events_service_") && !s.contains(' '))
        .collect();
    assert!(defined.len() >= 20, "{defined:?}");
    for name in defined {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is not in README's Metrics"
        );
    }
}
