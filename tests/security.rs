//! Authentication over the in-process router: API keys, HS256 and RS256 bearer tokens, and the
//! routes open without credentials.

mod common;

use axum::http::StatusCode;
use common::credentials::*;
use common::movie;
use serde_json::{Value, json};

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
async fn health_liveness_and_the_documents_are_open_by_default_and_nothing_else_is() {
    let app = secured(&[("AUTH_API_KEYS", KEY)]);
    let open = [
        ("/api/events/health", StatusCode::SERVICE_UNAVAILABLE),
        ("/api/events/health/live", StatusCode::OK),
        ("/api/events/openapi.json", StatusCode::OK),
        ("/api/events/asyncapi.json", StatusCode::OK),
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
async fn an_empty_open_routes_variable_closes_health_and_the_documents_too() {
    let app = secured(&[("AUTH_API_KEYS", KEY), ("AUTH_OPEN_ROUTES", "")]);
    for path in [
        "/api/events/health",
        "/api/events/health/live",
        "/api/events/openapi.json",
        "/api/events/asyncapi.json",
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
