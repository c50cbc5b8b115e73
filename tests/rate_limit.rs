//! Rate limiting over the in-process router: a token bucket per client (its address, or its
//! credentials when authentication is on), 429 with `Retry-After` beyond it.

mod common;

use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use common::credentials::*;
use common::{movie, user};
use serde_json::json;

#[tokio::test]
async fn beyond_its_burst_a_client_is_answered_429_with_retry_after_and_others_are_not() {
    // One token every ten seconds: the bucket cannot refill while the test runs.
    let app = secured(&[("RATE_LIMIT_PER_SECOND", "0.1"), ("RATE_LIMIT_BURST", "2")]);
    let client = "192.0.2.1";
    // A batch costs one request, whatever it holds.
    let (status, _, body) = app
        .send(from(
            client,
            post("/api/events/batch", &batch_of_three(), Credentials::None),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, _) = app
        .send(from(
            client,
            post("/api/events/movie", &movie(), Credentials::None),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, headers, body) = app
        .send(from(
            client,
            post("/api/events/movie", &movie(), Credentials::None),
        ))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry_after: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (5..=10).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_eq!(
        body["error"],
        format!("too many requests; retry after {retry_after} s")
    );
    assert_eq!(
        app.published().len(),
        4,
        "the refused request published nothing"
    );

    let (status, _, _) = app
        .send(from(
            "192.0.2.2",
            post("/api/events/movie", &movie(), Credentials::None),
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another client has its own bucket"
    );
    for path in ["/api/events/health/live", "/api/events/openapi.json"] {
        let (status, _, _) = app.send(from(client, get(path, Credentials::None))).await;
        assert_eq!(status, StatusCode::OK, "{path} is not rate limited");
    }
}

#[tokio::test]
async fn with_authentication_the_rate_limit_is_per_principal_not_per_address() {
    let app = secured(&[
        ("AUTH_API_KEYS", &format!("{KEY},{OTHER_KEY}")),
        ("AUTH_JWT_HS256_SECRET", SECRET),
        ("RATE_LIMIT_PER_SECOND", "0.1"),
        ("RATE_LIMIT_BURST", "1"),
    ]);
    let send = |credentials| {
        app.send(from(
            "192.0.2.1",
            post("/api/events/movie", &movie(), credentials),
        ))
    };
    assert_eq!(send(Credentials::ApiKey(KEY)).await.0, StatusCode::CREATED);
    assert_eq!(
        send(Credentials::ApiKey(KEY)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Same address, other principals: their own buckets.
    assert_eq!(
        send(Credentials::ApiKey(OTHER_KEY)).await.0,
        StatusCode::CREATED
    );
    let token = hs256(SECRET.as_bytes(), &claims());
    assert_eq!(
        send(Credentials::Bearer(&token)).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(Credentials::Bearer(&token)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut other = claims();
    other["sub"] = json!("another-service");
    let other_token = hs256(SECRET.as_bytes(), &other);
    assert_eq!(
        send(Credentials::Bearer(&other_token)).await.0,
        StatusCode::CREATED
    );
    // Authentication comes first: no credentials is a 401, not a 429.
    assert_eq!(send(Credentials::None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.published().len(), 4);
}

#[tokio::test]
async fn a_client_over_its_limit_is_served_again_once_its_bucket_refills() {
    // Twenty tokens a second, one at a time. Without a peer address (in-process requests) every
    // request counts against one shared client.
    let app = secured(&[("RATE_LIMIT_PER_SECOND", "20"), ("RATE_LIMIT_BURST", "1")]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let send = || app.send(post("/api/events/user", &user(), Credentials::None));

    let mut limited = None;
    while limited.is_none() {
        assert!(Instant::now() < deadline, "never rate limited");
        let (status, headers, _) = send().await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(headers);
        } else {
            assert_eq!(status, StatusCode::CREATED);
        }
    }
    assert_eq!(limited.unwrap()[header::RETRY_AFTER], "1");
    let stored = app.published().len();

    loop {
        assert!(Instant::now() < deadline, "the bucket never refilled");
        let (status, _, _) = send().await;
        if status == StatusCode::CREATED {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(app.published().len(), stored + 1);
}
