//! In-process tests of authentication (API keys, HS256 and RS256 bearer tokens, open routes) and
//! of the per-client rate limit, configured from variables as the service is.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use common::{Outcome, TestRouter, app_from_vars, movie, payment, user};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const KEY: &str = "events-test-key-0123456789";
const OTHER_KEY: &str = "events-test-key-abcdefghij";
const SECRET: &str = "a-shared-hs256-secret-for-the-tests-only";
const ISSUER: &str = "https://auth.cinemaabyss.test";
const AUDIENCE: &str = "events-service";
/// A key pair made once with `openssl genrsa 2048` and `openssl rsa -pubout`, for these tests only.
const RSA_PRIVATE_PEM: &[u8] = include_bytes!("fixtures/jwt-rs256-private.pem");
const RSA_PUBLIC_PEM: &[u8] = include_bytes!("fixtures/jwt-rs256-public.pem");
const RSA_PUBLIC_PEM_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jwt-rs256-public.pem"
);

const MISSING_EITHER: &str =
    "missing credentials: send an X-API-Key header or an Authorization: Bearer token";
const INVALID: &str = "invalid credentials";
const EXPIRED: &str = "invalid credentials: the token has expired";

/// The app as the service would build it from `vars`, over an in-memory publisher.
fn secured(vars: &[(&str, &str)]) -> TestRouter {
    app_from_vars(vars, Outcome::Stored)
}

/// What a request carries to prove who sent it.
#[derive(Clone, Copy)]
enum Credentials<'a> {
    None,
    ApiKey(&'a str),
    Bearer(&'a str),
    Authorization(&'a str),
}

fn post(path: &str, body: &Value, credentials: Credentials) -> Request<Body> {
    let request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    let request = match credentials {
        Credentials::None => request,
        Credentials::ApiKey(key) => request.header("X-API-Key", key),
        Credentials::Bearer(token) => {
            request.header(header::AUTHORIZATION, format!("Bearer {token}"))
        }
        Credentials::Authorization(value) => request.header(header::AUTHORIZATION, value),
    };
    request.body(Body::from(body.to_string())).unwrap()
}

fn get(path: &str, credentials: Credentials) -> Request<Body> {
    let request = Request::get(path);
    let request = match credentials {
        Credentials::ApiKey(key) => request.header("X-API-Key", key),
        _ => request,
    };
    request.body(Body::empty()).unwrap()
}

/// `request` as if it came over a connection from `peer` (the server adds this in production).
fn from(peer: &str, mut request: Request<Body>) -> Request<Body> {
    let address: SocketAddr = format!("{peer}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(address));
    request
}

fn batch_of_three() -> Value {
    let mut items = [movie(), user(), payment()];
    for (item, kind) in items.iter_mut().zip(["movie", "user", "payment"]) {
        item["type"] = json!(kind);
    }
    json!(items)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims the tests' issuer would put in a token for the service, valid for five minutes.
fn claims() -> Value {
    json!({"sub": "billing-service", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300})
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn rs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM).unwrap(),
    )
    .unwrap()
}

/// Asserts a 401 with our error body, the message given and `WWW-Authenticate`.
fn assert_unauthorized(
    (status, headers, body): &(StatusCode, HeaderMap, Value),
    message: &str,
    case: &str,
) {
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(body["error"], message, "{case}");
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer", "{case}");
}

#[tokio::test]
async fn without_credentials_a_publishing_request_is_a_401_and_nothing_is_published() {
    let app = secured(&[("AUTH_API_KEYS", KEY), ("AUTH_JWT_HS256_SECRET", SECRET)]);
    for (path, body) in [
        ("/api/events/movie", movie()),
        ("/api/events/batch", batch_of_three()),
    ] {
        let answer = app.send(post(path, &body, Credentials::None)).await;
        assert_unauthorized(&answer, MISSING_EITHER, path);
    }
    assert_eq!(app.calls(), 0);
}

#[tokio::test]
async fn a_wrong_api_key_is_a_401_and_a_right_one_a_201() {
    let app = secured(&[("AUTH_API_KEYS", &format!("{KEY},{OTHER_KEY}"))]);
    for wrong in [
        "events-test-key-012345678",
        "events-test-key-01234567890",
        "EVENTS-TEST-KEY-0123456789",
    ] {
        let answer = app
            .send(post(
                "/api/events/movie",
                &movie(),
                Credentials::ApiKey(wrong),
            ))
            .await;
        assert_unauthorized(&answer, INVALID, wrong);
    }
    // Bearer tokens are not accepted here, so a key sent as one is no credential at all.
    let answer = app
        .send(post(
            "/api/events/movie",
            &movie(),
            Credentials::Bearer(KEY),
        ))
        .await;
    assert_unauthorized(
        &answer,
        "missing credentials: send an X-API-Key header",
        "key as a bearer token",
    );
    assert!(app.published().is_empty());

    for key in [KEY, OTHER_KEY] {
        let (status, _, body) = app
            .send(post(
                "/api/events/movie",
                &movie(),
                Credentials::ApiKey(key),
            ))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(app.published().len(), 2);
}

#[tokio::test]
async fn a_valid_hs256_token_is_a_201_within_the_leeway_too() {
    let app = secured(&[
        ("AUTH_JWT_HS256_SECRET", SECRET),
        ("AUTH_JWT_ISSUER", ISSUER),
        ("AUTH_JWT_AUDIENCE", AUDIENCE),
    ]);
    let mut just_expired = claims();
    just_expired["exp"] = json!(now() - 5);
    let mut audiences = claims();
    audiences["aud"] = json!(["another-service", AUDIENCE]);
    for (case, claims) in [
        ("valid", claims()),
        ("expired 5 s ago", just_expired),
        ("several audiences", audiences),
    ] {
        let token = hs256(SECRET.as_bytes(), &claims);
        let (status, _, body) = app
            .send(post(
                "/api/events/movie",
                &movie(),
                Credentials::Bearer(&token),
            ))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{case}: {body}");
    }
    assert_eq!(app.published().len(), 3);
}

#[tokio::test]
async fn expired_wrongly_signed_and_misaddressed_hs256_tokens_are_401s() {
    let app = secured(&[
        ("AUTH_JWT_HS256_SECRET", SECRET),
        ("AUTH_JWT_ISSUER", ISSUER),
        ("AUTH_JWT_AUDIENCE", AUDIENCE),
    ]);
    let with = |name: &str, value: Value| {
        let mut claims = claims();
        claims[name] = value;
        claims
    };
    let without = |name: &str| {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove(name);
        claims
    };
    let signed = |claims: &Value| hs256(SECRET.as_bytes(), claims);
    let cases = [
        ("expired", signed(&with("exp", json!(now() - 120))), EXPIRED),
        (
            "not valid yet",
            signed(&with("nbf", json!(now() + 600))),
            "invalid credentials: the token is not valid yet",
        ),
        (
            "another secret",
            hs256(b"another-secret-of-at-least-32-bytes!!", &claims()),
            INVALID,
        ),
        (
            "another audience",
            signed(&with("aud", json!("another-service"))),
            INVALID,
        ),
        ("no audience", signed(&without("aud")), INVALID),
        (
            "another issuer",
            signed(&with("iss", json!("https://evil.test"))),
            INVALID,
        ),
        ("no expiry", signed(&without("exp")), INVALID),
        (
            "an expiry that is not a number",
            signed(&with("exp", json!("never"))),
            INVALID,
        ),
        ("no subject", signed(&without("sub")), INVALID),
        ("an empty subject", signed(&with("sub", json!(""))), INVALID),
        ("not a JWT", "not-a.jwt".to_owned(), INVALID),
    ];
    for (case, token, message) in cases {
        let answer = app
            .send(post(
                "/api/events/movie",
                &movie(),
                Credentials::Bearer(&token),
            ))
            .await;
        assert_unauthorized(&answer, message, case);
    }
    let answer = app
        .send(post(
            "/api/events/movie",
            &movie(),
            Credentials::Authorization(&format!("Basic {}", signed(&claims()))),
        ))
        .await;
    assert_unauthorized(&answer, INVALID, "Basic scheme");
    assert!(app.published().is_empty());
}

#[tokio::test]
async fn an_rs256_token_is_checked_against_the_public_key_file() {
    let app = secured(&[
        ("AUTH_JWT_RS256_PUBLIC_KEY_FILE", RSA_PUBLIC_PEM_FILE),
        ("AUTH_JWT_AUDIENCE", AUDIENCE),
    ]);
    let (status, _, body) = app
        .send(post(
            "/api/events/movie",
            &movie(),
            Credentials::Bearer(&rs256(&claims())),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let mut expired = claims();
    expired["exp"] = json!(now() - 120);
    let answer = app
        .send(post(
            "/api/events/movie",
            &movie(),
            Credentials::Bearer(&rs256(&expired)),
        ))
        .await;
    assert_unauthorized(&answer, EXPIRED, "expired RS256");

    // A valid signature over other claims: the payload of one token with the signature of another.
    let mut other = claims();
    other["sub"] = json!("someone-else");
    let token = rs256(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let other_token = rs256(&other);
    let other_payload = other_token.split('.').nth(1).unwrap();
    let forged = format!("{}.{other_payload}.{}", parts[0], parts[2]);
    let answer = app
        .send(post(
            "/api/events/movie",
            &movie(),
            Credentials::Bearer(&forged),
        ))
        .await;
    assert_unauthorized(&answer, INVALID, "spliced token");
    assert_eq!(app.published().len(), 1);
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rsa_public_key_is_refused() {
    // The classic algorithm confusion: the public key is public, so anyone can sign with it as
    // an HMAC secret. The configured key decides the algorithm, not the token's header.
    let confused = hs256(RSA_PUBLIC_PEM, &claims());
    let unsigned = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", // {"alg":"none","typ":"JWT"}
        rs256(&claims()).split('.').nth(1).unwrap()
    );
    for vars in [
        &[("AUTH_JWT_RS256_PUBLIC_KEY_FILE", RSA_PUBLIC_PEM_FILE)][..],
        &[
            ("AUTH_JWT_RS256_PUBLIC_KEY_FILE", RSA_PUBLIC_PEM_FILE),
            ("AUTH_JWT_HS256_SECRET", SECRET),
        ][..],
    ] {
        let app = secured(vars);
        for (case, token) in [
            ("HS256 with the public key", &confused),
            ("alg none", &unsigned),
        ] {
            let answer = app
                .send(post(
                    "/api/events/movie",
                    &movie(),
                    Credentials::Bearer(token),
                ))
                .await;
            assert_unauthorized(&answer, INVALID, case);
        }
        assert!(app.published().is_empty());
    }
}

#[tokio::test]
async fn health_liveness_and_the_document_are_open_by_default_and_nothing_else_is() {
    let app = secured(&[("AUTH_API_KEYS", KEY)]);
    let open = [
        ("/api/events/health", StatusCode::SERVICE_UNAVAILABLE),
        ("/api/events/health/live", StatusCode::OK),
        ("/api/events/openapi.json", StatusCode::OK),
    ];
    for (path, expected) in open {
        let (status, _, _) = app.send(get(path, Credentials::None)).await;
        assert_eq!(status, expected, "{path}");
    }
    // Unknown routes are closed too: an anonymous client learns nothing of what exists.
    for path in ["/api/events/nope", "/api/events/movie"] {
        let answer = app.send(get(path, Credentials::None)).await;
        assert_unauthorized(
            &answer,
            "missing credentials: send an X-API-Key header",
            path,
        );
    }
    let (status, _, _) = app
        .send(get("/api/events/nope", Credentials::ApiKey(KEY)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_empty_open_routes_variable_closes_health_and_the_document_too() {
    let app = secured(&[("AUTH_API_KEYS", KEY), ("AUTH_OPEN_ROUTES", "")]);
    for path in [
        "/api/events/health",
        "/api/events/health/live",
        "/api/events/openapi.json",
    ] {
        let answer = app.send(get(path, Credentials::None)).await;
        assert_unauthorized(
            &answer,
            "missing credentials: send an X-API-Key header",
            path,
        );
    }
    let (status, _, _) = app
        .send(get("/api/events/health/live", Credentials::ApiKey(KEY)))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn open_routes_can_be_chosen_one_by_one() {
    let app = secured(&[
        ("AUTH_API_KEYS", KEY),
        ("AUTH_OPEN_ROUTES", "/api/events/health/live"),
    ]);
    let (status, _, _) = app
        .send(get("/api/events/health/live", Credentials::None))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app
        .send(get("/api/events/openapi.json", Credentials::None))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

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
