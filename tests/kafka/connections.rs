//! Hostile connections, from outside the service's process: connections that send nothing or
//! only the HTTP/2 preface, idle ones, more than the cap allows, clients that stop reading, and
//! large bodies while the broker is away. Each runs the service binary, so that its descriptors
//! and its memory are its own to count.

use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{
    DEADLINE, ServiceProcess, brokers, closed_port, eventually, isolated_vars, large_movies,
    metric, wait_until_healthy, with,
};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The service with no broker: HTTP is served all the same.
fn without_broker(overrides: &[(&str, &str)]) -> ServiceProcess {
    let unreachable = format!("127.0.0.1:{}", closed_port());
    ServiceProcess::spawn(&with(isolated_vars(&unreachable), overrides))
}

fn socket_address(service: &ServiceProcess) -> String {
    service.address.trim_start_matches("http://").to_owned()
}

/// How long after `opened` the server closed `stream` (EOF or reset), reading whatever it sent.
async fn closed_after(mut stream: TcpStream, opened: Instant, within: Duration) -> Duration {
    let mut sink = vec![0; 4096];
    let read_to_close = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    if tokio::time::timeout(within, read_to_close).await.is_err() {
        return Duration::MAX;
    }
    opened.elapsed()
}

/// Reads one HTTP/1.1 answer (head and `Content-Length` body) from `stream`.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if received.len() >= head_end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("the connection stays up");
        assert!(n > 0, "closed before the answer was complete: {text}");
        received.extend_from_slice(&chunk[..n]);
    }
}

/// Raises this test process's open-file limit, for the many client sockets.
fn room_for_sockets(sockets: u64) {
    let (soft, hard) = rlimit::Resource::NOFILE
        .get()
        .expect("the limit is readable");
    assert!(
        hard >= sockets + 256,
        "this test needs an open-file limit of {} (the hard limit is {hard})",
        sockets + 256
    );
    if soft < sockets + 256 {
        rlimit::Resource::NOFILE
            .set(sockets + 256, hard)
            .expect("the soft limit can be raised");
    }
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn silent_and_preface_only_connections_are_closed_after_the_header_timeout_and_liveness_answers_throughout()
 {
    const SILENT: usize = 3000;
    const PREFACE_ONLY: usize = 1000;
    room_for_sockets((SILENT + PREFACE_ONLY) as u64);
    let header_timeout = Duration::from_secs(1);
    let service = without_broker(&[("HTTP_HEADER_TIMEOUT_MS", "1000")]);
    let address = socket_address(&service);

    // Liveness is probed on a new connection every 50 ms for as long as the others are open.
    let probing = tokio::spawn({
        let url = format!("{}/api/events/health/live", service.address);
        async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let mut answers = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(4) {
                answers.push(client.get(&url).send().await.map(|r| r.status().as_u16()));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answers
        }
    });

    let mut connections = Vec::with_capacity(SILENT + PREFACE_ONLY);
    for n in 0..SILENT + PREFACE_ONLY {
        // Before the connect: the service cannot have accepted it earlier, however late this
        // task runs once it is connected (the closed-early bound holds on a loaded machine).
        let opened = Instant::now();
        let mut stream = TcpStream::connect(&address).await.expect("accepted");
        if n >= SILENT {
            stream
                .write_all(PREFACE)
                .await
                .expect("the preface is sent");
        }
        connections.push(tokio::spawn(closed_after(stream, opened, DEADLINE)));
    }
    let closed: Vec<Duration> = join_all(connections)
        .await
        .into_iter()
        .map(|c| c.expect("no panic"))
        .collect();
    let slowest = closed.iter().max().copied().unwrap_or_default();
    let fastest = closed.iter().min().copied().unwrap_or_default();
    println!(
        "{} connections closed between {fastest:?} and {slowest:?} after opening",
        closed.len()
    );
    assert!(
        slowest <= header_timeout + Duration::from_secs(1),
        "a connection stayed open {slowest:?}"
    );
    assert!(
        fastest >= header_timeout - Duration::from_millis(50),
        "a connection was closed early, after {fastest:?}"
    );

    let answers = probing.await.unwrap();
    let failed: Vec<_> = answers.iter().filter(|a| !matches!(a, Ok(200))).collect();
    assert!(answers.len() >= 20, "only {} probes", answers.len());
    assert!(
        failed.is_empty(),
        "liveness failed {} times: {failed:?}",
        failed.len()
    );
    assert_eq!(
        metric(
            &service.address,
            r#"events_service_http_connections_closed_total{reason="header_timeout"}"#
        )
        .await,
        Some((SILENT + PREFACE_ONLY) as f64)
    );
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn an_idle_connection_lasts_the_idle_timeout_and_a_started_head_only_the_header_timeout() {
    let service = without_broker(&[
        ("HTTP_HEADER_TIMEOUT_MS", "500"),
        ("HTTP_IDLE_TIMEOUT_MS", "2000"),
    ]);
    let address = socket_address(&service);
    let request = b"GET /api/events/health/live HTTP/1.1\r\nHost: x\r\n\r\n";

    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(request).await.unwrap();
    assert!(read_answer(&mut idle).await.starts_with("HTTP/1.1 200"));
    let idle_since = Instant::now();

    let mut restarted = TcpStream::connect(&address).await.unwrap();
    restarted.write_all(request).await.unwrap();
    assert!(
        read_answer(&mut restarted)
            .await
            .starts_with("HTTP/1.1 200")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    restarted.write_all(b"GET /api/ev").await.unwrap();
    let head_started = Instant::now();

    let (idle_closed, head_closed) = tokio::join!(
        closed_after(idle, idle_since, DEADLINE),
        closed_after(restarted, head_started, DEADLINE),
    );
    assert!(
        idle_closed >= Duration::from_millis(1900) && idle_closed <= Duration::from_secs(3),
        "the idle connection closed after {idle_closed:?}"
    );
    assert!(
        head_closed >= Duration::from_millis(450) && head_closed <= Duration::from_millis(1500),
        "the half-sent head was cut off after {head_closed:?}"
    );
    let closed = |reason: &str| {
        let series =
            format!(r#"events_service_http_connections_closed_total{{reason="{reason}"}}"#);
        let address = service.address.clone();
        async move { metric(&address, &series).await }
    };
    assert_eq!(closed("idle_timeout").await, Some(1.0));
    assert_eq!(closed("header_timeout").await, Some(1.0));
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn beyond_the_connection_cap_a_new_connection_is_closed_at_once() {
    let service = without_broker(&[
        ("HTTP_MAX_CONNECTIONS", "20"),
        ("HTTP_HEADER_TIMEOUT_MS", "1500"),
    ]);
    let address = socket_address(&service);
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    let refused = TcpStream::connect(&address).await.unwrap();
    let opened = Instant::now();
    let after = closed_after(refused, opened, Duration::from_secs(5)).await;
    assert!(
        after < Duration::from_millis(500),
        "the 21st was closed after {after:?}"
    );

    // Once the silent ones are gone, the service takes connections again.
    drop(held);
    let client = reqwest::Client::new();
    let live = eventually("a request after the cap", || {
        let request = client
            .get(format!("{}/api/events/health/live", service.address))
            .send();
        async move { request.await.ok().filter(|r| r.status() == 200) }
    })
    .await;
    assert_eq!(live.status(), 200);
    assert!(
        metric(
            &service.address,
            r#"events_service_http_connections_closed_total{reason="limit"}"#
        )
        .await
            >= Some(1.0)
    );
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_stream_whose_client_stopped_reading_is_cut_off_after_the_write_timeout_and_frees_its_slot()
 {
    let brokers = brokers();
    let service = ServiceProcess::spawn(&with(
        isolated_vars(&brokers),
        &[
            ("STREAM_MAX_CLIENTS", "1"),
            ("STREAM_WRITE_TIMEOUT_MS", "1000"),
            ("HTTP_BODY_LIMIT_BYTES", "8388608"),
        ],
    ));
    wait_until_healthy(&service.address).await;

    // A client with a tiny receive window opens the stream, reads the head, then nothing more.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket
        .connect(socket_address(&service).parse().unwrap())
        .await
        .unwrap();
    stalled
        .write_all(b"GET /api/events/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0; 512];
    let n = stalled.read(&mut head).await.unwrap();
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );

    let client = reqwest::Client::new();
    let open_stream = || {
        let request = client
            .get(format!("{}/api/events/stream", service.address))
            .send();
        async move { request.await.map(|r| r.status().as_u16()).ok() }
    };
    assert_eq!(open_stream().await, Some(503), "the only slot is taken");
    // Events to stream, far more than the stalled client's window and the socket's buffers.
    let started = Instant::now();
    for _ in 0..6 {
        let response = client
            .post(format!("{}/api/events/batch", service.address))
            .json(&large_movies(1000, 4000))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    // The stalled connection is cut off (its stream may have ended before, having fallen too
    // far behind; it is the connection that must not stay).
    let series = r#"events_service_http_connections_closed_total{reason="write_timeout"}"#;
    eventually("the stalled connection to be cut off", || async {
        (metric(&service.address, series).await == Some(1.0)).then_some(())
    })
    .await;
    println!("cut off {:?} after the events began", started.elapsed());
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, stalled.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the stalled connection is closed");
    eventually("the stalled stream's slot to be freed", || async {
        (open_stream().await == Some(200)).then_some(())
    })
    .await;
}

/// A valid movie event padded with a large array in a field no parser reads, `bytes` long.
fn padded_movie(bytes: usize) -> String {
    let head = r#"{"movie_id": 1, "title": "Padded", "action": "viewed", "padding": ["#;
    let items = (bytes - head.len() - 2) / 2;
    let mut body = String::with_capacity(bytes);
    body.push_str(head);
    for n in 0..items {
        body.push_str(if n == 0 { "1" } else { ",1" });
    }
    body.push_str("]}");
    body
}

/// Sends `concurrent` copies of `body` at once and returns the statuses.
async fn post_all(address: &str, body: &str, concurrent: usize) -> Vec<u16> {
    let client = reqwest::Client::new();
    let posts = (0..concurrent).map(|_| {
        client
            .post(format!("{address}/api/events/movie"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    });
    join_all(posts)
        .await
        .into_iter()
        .map(|r| r.expect("every request is answered").status().as_u16())
        .collect()
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn large_bodies_while_the_broker_is_away_keep_memory_bounded() {
    let body = padded_movie(900 * 1024);
    let settings = [("KAFKA_DELIVERY_TIMEOUT_MS", "1000")];
    // As configured by default, and with room for every body at once.
    for inflight in ["33554432", "1073741824"] {
        let mut vars = settings.to_vec();
        vars.push(("HTTP_MAX_INFLIGHT_BYTES", inflight));
        let service = without_broker(&vars);
        let started = Instant::now();
        let statuses = post_all(&service.address, &body, 100).await;
        let took = started.elapsed();
        let peak = service.peak_resident_mib();
        let shed = statuses.iter().filter(|s| **s == 503).count();
        println!(
            "HTTP_MAX_INFLIGHT_BYTES={inflight}: 100 bodies of 900 KiB answered in {took:?}, \
             {shed} shed (503), peak resident memory {peak:.0} MiB"
        );
        assert!(
            statuses.iter().all(|s| *s == 500 || *s == 503),
            "only 500 (not stored) and 503 (shed): {statuses:?}"
        );
        assert!(peak < 200.0, "peak resident memory {peak:.0} MiB");
        if inflight == "1073741824" {
            assert_eq!(shed, 0, "with room for all, none is shed");
        }
    }
}
