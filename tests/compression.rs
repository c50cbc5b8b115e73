//! Compressed request bodies (gzip, zstd) over the in-process router: read as their JSON, the
//! body limit counted decompressed, any other encoding refused with a 415 that names the
//! supported ones; the documents and the dashboard's files answered compressed on request.

mod common;

use std::io::Write;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Outcome, TestRouter, app, movie};
use flate2::write::GzEncoder;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn encoded(path: &str, encoding: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, encoding)
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn gzip_and_zstd_bodies_are_read_as_their_json() {
    let app = app(Outcome::Stored);
    let json = movie().to_string();
    let (status, _, answer) = app
        .send(encoded("/api/events/movie", "gzip", gzip(json.as_bytes())))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["event"]["payload"]["title"], movie()["title"]);
    let (status, _, _) = app
        .send(encoded(
            "/api/events/movie",
            "x-gzip",
            gzip(json.as_bytes()),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "x-gzip is gzip");

    let batch = json!([{"type": "movie", "movie_id": 1, "title": "T", "action": "viewed"}]);
    let zstd = zstd::encode_all(batch.to_string().as_bytes(), 3).unwrap();
    let (status, _, answer) = app.send(encoded("/api/events/batch", "zstd", zstd)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let published = app.published();
    assert_eq!(published.len(), 3);
    let value: Value = serde_json::from_slice(&published[0].value).unwrap();
    assert_eq!(
        value["payload"],
        movie(),
        "the record is the decompressed JSON"
    );
}

#[tokio::test]
async fn a_small_compressed_bomb_is_a_413_and_publishes_nothing() {
    let app = app(Outcome::Stored);
    // 8 MiB of one JSON string, some 8 KiB compressed, against the 1 MiB body limit.
    let mut bomb = br#"{"movie_id": 1, "title": ""#.to_vec();
    bomb.extend(std::iter::repeat_n(b'a', 8 << 20));
    bomb.extend(br#"", "action": "viewed"}"#);
    let compressed = gzip(&bomb);
    assert!(compressed.len() < 64 * 1024, "{}", compressed.len());
    let (status, _, answer) = app
        .send(encoded("/api/events/movie", "gzip", compressed))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("larger than"),
        "{answer}"
    );
    assert!(app.published().is_empty());
}

#[tokio::test]
async fn an_unsupported_encoding_is_a_415_naming_the_supported_ones() {
    let app = app(Outcome::Stored);
    for encoding in ["br", "deflate", "compress", "gzip, zstd"] {
        let request = encoded(
            "/api/events/movie",
            encoding,
            movie().to_string().into_bytes(),
        );
        let (status, headers, answer) = app.send(request).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{encoding}: {answer}"
        );
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains("gzip") && error.contains("zstd"), "{error}");
        assert_eq!(headers[header::ACCEPT_ENCODING], "gzip, zstd");
    }
    assert!(app.published().is_empty());
}

#[tokio::test]
async fn a_body_that_is_not_what_its_encoding_says_is_a_400() {
    let app = app(Outcome::Stored);
    let request = encoded("/api/events/movie", "gzip", b"not gzip at all".to_vec());
    let (status, _, answer) = app.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(app.published().is_empty());
}

#[tokio::test]
async fn a_compressed_retry_of_a_plain_request_is_the_same_request() {
    let app = app(Outcome::Stored);
    let json = movie().to_string();
    let keyed = |request: Request<Body>| {
        let (mut parts, body) = request.into_parts();
        parts
            .headers
            .insert("idempotency-key", "zip-1".parse().unwrap());
        Request::from_parts(parts, body)
    };
    let plain = Request::post("/api/events/movie")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json.clone()))
        .unwrap();
    let (_, _, first) = app.send_raw(keyed(plain)).await;
    let (status, headers, again) = app
        .send_raw(keyed(encoded(
            "/api/events/movie",
            "gzip",
            gzip(json.as_bytes()),
        )))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again, first);
    assert_eq!(app.published().len(), 1);
}

async fn get(
    app: &TestRouter,
    path: &str,
    accept: &str,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let request = Request::get(path)
        .header(header::ACCEPT_ENCODING, accept)
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn the_documents_and_the_dashboards_files_are_compressed_for_clients_that_accept_it() {
    let app = app(Outcome::Stored);
    let (_, _, plain) = get(&app, "/api/events/openapi.json", "identity").await;
    let (status, headers, compressed) = get(&app, "/api/events/openapi.json", "gzip").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut decoded,
    )
    .unwrap();
    assert_eq!(decoded, plain);
    assert!(
        compressed.len() * 3 < plain.len(),
        "{} of {}",
        compressed.len(),
        plain.len()
    );

    let (_, headers, _) = get(&app, "/dashboard/app.js", "zstd").await;
    assert_eq!(headers[header::CONTENT_ENCODING], "zstd");
    // Event answers and health are small, and never compressed.
    let (_, headers, _) = get(&app, "/api/events/health", "gzip").await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
}
