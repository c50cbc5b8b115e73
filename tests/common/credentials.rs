//! Credentials for the tests of authentication and rate limits: keys, secrets, tokens, and
//! requests that carry them (or come from a given address).

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{Outcome, TestRouter, app_from_vars, movie, payment, user};

pub const KEY: &str = "events-test-key-0123456789";
pub const OTHER_KEY: &str = "events-test-key-abcdefghij";
pub const SECRET: &str = "a-shared-hs256-secret-for-the-tests-only";
pub const ISSUER: &str = "https://auth.cinemaabyss.test";
pub const AUDIENCE: &str = "events-service";
/// A key pair made once with `openssl genrsa 2048` and `openssl rsa -pubout`, for these tests only.
pub const RSA_PRIVATE_PEM: &[u8] = include_bytes!("../fixtures/jwt-rs256-private.pem");
pub const RSA_PUBLIC_PEM: &[u8] = include_bytes!("../fixtures/jwt-rs256-public.pem");
pub const RSA_PUBLIC_PEM_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/jwt-rs256-public.pem"
);

pub const MISSING_EITHER: &str =
    "missing credentials: send an X-API-Key header or an Authorization: Bearer token";
pub const INVALID: &str = "invalid credentials";
pub const EXPIRED: &str = "invalid credentials: the token has expired";

/// The app as the service would build it from `vars`, over an in-memory publisher.
pub fn secured(vars: &[(&str, &str)]) -> TestRouter {
    app_from_vars(vars, Outcome::Stored)
}

/// What a request carries to prove who sent it.
#[derive(Clone, Copy)]
pub enum Credentials<'a> {
    None,
    ApiKey(&'a str),
    Bearer(&'a str),
    Authorization(&'a str),
}

pub fn post(path: &str, body: &Value, credentials: Credentials) -> Request<Body> {
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

pub fn get(path: &str, credentials: Credentials) -> Request<Body> {
    let request = Request::get(path);
    let request = match credentials {
        Credentials::ApiKey(key) => request.header("X-API-Key", key),
        _ => request,
    };
    request.body(Body::empty()).unwrap()
}

/// `request` as if it came over a connection from `peer` (the server adds this in production).
pub fn from(peer: &str, mut request: Request<Body>) -> Request<Body> {
    let address: SocketAddr = format!("{peer}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(address));
    request
}

pub fn batch_of_three() -> Value {
    let mut items = [movie(), user(), payment()];
    for (item, kind) in items.iter_mut().zip(["movie", "user", "payment"]) {
        item["type"] = json!(kind);
    }
    json!(items)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims the tests' issuer would put in a token for the service, valid for five minutes.
pub fn claims() -> Value {
    json!({"sub": "billing-service", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300})
}

pub fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

pub fn rs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM).unwrap(),
    )
    .unwrap()
}

/// Asserts a 401 with our error body, the message given and `WWW-Authenticate`.
pub fn assert_unauthorized(
    (status, headers, body): &(StatusCode, HeaderMap, Value),
    message: &str,
    case: &str,
) {
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(body["error"], message, "{case}");
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer", "{case}");
}
