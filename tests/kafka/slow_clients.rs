//! Slow clients cannot hold the service's connections: a request head must arrive within
//! `HTTP_HEADER_TIMEOUT_MS`, a whole request within `HTTP_REQUEST_TIMEOUT_MS`. No broker is
//! needed: the service serves HTTP while Kafka is away.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, closed_port, isolated_vars, with};

async fn app(overrides: &[(&str, &str)]) -> TestApp {
    let unreachable = format!("127.0.0.1:{}", closed_port());
    TestApp::spawn(with(isolated_vars(&unreachable), overrides)).await
}

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address)
        .await
        .expect("the service accepts")
}

/// Everything the server sends until it closes the connection, and when it closed it.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut received))
        .await
        .unwrap_or_else(|_| panic!("the connection was still open after {within:?}"))
        .ok(); // A reset is a close too.
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let app = app(&[("HTTP_HEADER_TIMEOUT_MS", "300")]).await;
    let mut slow = connect(&app).await;
    slow.write_all(b"POST /api/events/movie HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    let live = app
        .client
        .get(format!("{}/api/events/health/live", app.address))
        .send()
        .await
        .expect("others are served meanwhile");
    assert_eq!(live.status(), 200);

    let (_, after) = read_to_close(&mut slow, Duration::from_secs(5)).await;
    assert!(
        after >= Duration::from_millis(200),
        "closed after {after:?}"
    );
    app.stop().await;
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_client_that_sends_its_body_too_slowly_is_answered_408() {
    let app = app(&[
        ("KAFKA_DELIVERY_TIMEOUT_MS", "100"),
        ("HTTP_REQUEST_TIMEOUT_MS", "1200"),
    ])
    .await;
    let mut slow = connect(&app).await;
    slow.write_all(
        b"POST /api/events/movie HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"movie_id\": 1,",
    )
    .await
    .unwrap();
    let (answer, after) = read_to_close(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(r#"{"error":"the request took longer than 1200 ms"}"#),
        "{answer}"
    );
    assert!(
        after >= Duration::from_millis(1000),
        "answered after {after:?}"
    );
    app.stop().await;
}
