//! Tests of the `events-service` binary itself: its log lines, its start-up errors, its shutdown.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::Message;
use serde_json::{Value, json};

use crate::helpers::{
    DEADLINE, ServiceProcess, brokers, isolated_vars, large_movies, read_partition, with,
};

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn the_seed_log_lines_appear_word_for_word() {
    let vars = isolated_vars(&brokers());
    let mut service = ServiceProcess::spawn(&vars);
    service.wait_for_line(|l| l.contains("Kafka is reachable"));
    let client = reqwest::Client::new();
    let address = service.address.clone();
    let post = |kind: &'static str, body: Value| {
        let request = client
            .post(format!("{address}/api/events/{kind}"))
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()
        }
    };
    // The topics may still be being created when the broker first answers.
    service.wait_for_line(|l| l.contains("[CONSUMER] Started consumer for topic"));
    let movie = post(
        "movie",
        json!({"movie_id": 1, "title": "Test Movie", "action": "viewed"}),
    )
    .await;
    let user = post("user", json!({"user_id": 123, "action": "logged_in"})).await;
    let payment = post(
        "payment",
        json!({"payment_id": 456, "user_id": 123, "amount": 99.999, "status": "refunded"}),
    )
    .await;

    let id = |r: &Value| r["event"]["id"].as_str().unwrap().to_owned();
    let (movie_id, user_id, payment_id) = (id(&movie), id(&user), id(&payment));
    service.wait_for_line(|l| {
        l.ends_with(&format!(
            "[PRODUCER] Published movie event: {movie_id}, Action: viewed, MovieID: 1"
        ))
    });
    service.wait_for_line(|l| {
        l.ends_with(&format!(
            "[PRODUCER] Published user event: {user_id}, Action: logged_in, UserID: 123"
        ))
    });
    service.wait_for_line(|l| {
        l.ends_with(&format!("[PRODUCER] Published payment event: {payment_id}, Status: refunded, PaymentID: 456, Amount: 100.00"))
    });
    let consumed = format!(
        "[CONSUMER] Topic: {}movie-events, Partition: {}, Offset: {}, Key: 1",
        crate::helpers::var(&vars, "KAFKA_TOPIC_PREFIX"),
        movie["partition"],
        movie["offset"]
    );
    service.wait_for_line(|l| l.ends_with(&consumed));
    let processed = format!(
        "[EVENT PROCESSED] Type: movie, ID: {movie_id}, Timestamp: {}",
        movie["event"]["timestamp"].as_str().unwrap()
    );
    service.wait_for_line(|l| l.ends_with(&processed));

    service.terminate();
    let (status, _) = service.wait_for_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
}

/// Runs the binary with only `vars` set, expecting it to fail at start-up; returns its stderr.
fn failed_start_up(vars: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_events-service"))
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "started with {vars:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_bad_setting_stops_start_up_with_a_message_naming_the_variable() {
    let stderr = failed_start_up(&[("PORT", "not-a-port")]);
    assert!(
        stderr.contains("PORT") && stderr.contains("not-a-port"),
        "stderr: {stderr}"
    );
}

#[test]
fn a_librdkafka_option_it_does_not_know_stops_start_up_and_is_named() {
    for scope in ["RDKAFKA_", "RDKAFKA_PRODUCER_", "RDKAFKA_CONSUMER_"] {
        let variable = format!("{scope}NO_SUCH_PROPERTY");
        let stderr = failed_start_up(&[("PORT", "0"), (&variable, "1")]);
        assert!(
            stderr.contains("no.such.property") && stderr.contains("RDKAFKA_"),
            "{variable}: {stderr}"
        );
    }
}

/// Where a 201 said the event is: its offset and id.
type Stored = (i64, String);

/// One request of the load, as its client saw it.
struct Sent {
    at: Instant,
    /// When the answer came, its status, and (for a 201) where the event is.
    answer: Option<(Instant, u16, Option<Stored>)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn sigterm_while_requests_are_in_flight_finishes_them_and_loses_nothing_answered_201() {
    let brokers = brokers();
    // A long linger (idle too) keeps each event in the producer for 200 ms, so that SIGTERM surely finds
    // requests that the service had taken and not yet answered.
    let vars = with(
        isolated_vars(&brokers),
        &[
            ("KAFKA_CONSUMERS_ENABLED", "false"),
            ("KAFKA_LINGER_MS", "200"),
            ("KAFKA_IDLE_LINGER_MS", "200"),
        ],
    );
    let prefix = crate::helpers::var(&vars, "KAFKA_TOPIC_PREFIX").to_owned();
    let mut service = ServiceProcess::spawn(&vars);
    service.wait_for_line(|l| l.contains("Kafka is reachable"));
    crate::helpers::wait_until_healthy(&service.address).await;

    // Clients post one request after another until the service stops answering.
    let client = reqwest::Client::new();
    let log = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let mut clients = Vec::new();
    for worker in 0..32u64 {
        let (client, address, log) = (client.clone(), service.address.clone(), log.clone());
        clients.push(tokio::spawn(async move {
            for n in 0..10_000u64 {
                let body = json!({"movie_id": worker * 100_000 + n + 1, "title": "Load", "action": "viewed"});
                let at = Instant::now();
                let sent = client.post(format!("{address}/api/events/movie")).json(&body).send().await;
                let answer = match sent {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let stored = response.json::<Value>().await.ok().and_then(|a| {
                            Some((a["offset"].as_i64()?, a["event"]["id"].as_str()?.to_owned()))
                        });
                        Some((Instant::now(), status, stored.filter(|_| status == 201)))
                    }
                    Err(_) => None,
                };
                let stop = answer.is_none();
                log.lock().unwrap().push(Sent { at, answer });
                if stop {
                    return;
                }
            }
        }));
    }
    // The linger answers the clients together, and they send again together: the signal goes
    // mid-linger, once the last answers are 100 ms old, so that the requests sent since are in
    // flight (and were sent more than 50 ms before it).
    let started = Instant::now();
    let mid_linger = || {
        let log = log.lock().unwrap();
        let last_answer = log
            .iter()
            .filter_map(|r| r.answer.as_ref().map(|(at, _, _)| *at))
            .max();
        log.len() >= 300 && last_answer.is_some_and(|at| at.elapsed() > Duration::from_millis(100))
    };
    while !mid_linger() {
        assert!(started.elapsed() < DEADLINE, "the load never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sigterm_at = Instant::now();
    service.terminate();
    let (service, (status, took)) = tokio::task::spawn_blocking(move || {
        let exit = service.wait_for_exit(Duration::from_secs(25));
        (service, exit)
    })
    .await
    .unwrap();
    for client in clients {
        client.await.unwrap();
    }
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        service.output()
    );
    assert!(
        service.output().contains("[PRODUCER] Flushed"),
        "the producer was flushed"
    );

    let log = std::mem::take(&mut *log.lock().unwrap());
    // Sent well before the signal (the service had it) and not answered before it.
    let in_flight: Vec<&Sent> = log
        .iter()
        .filter(|r| r.at + Duration::from_millis(50) < sigterm_at)
        .filter(|r| r.answer.as_ref().is_none_or(|(at, _, _)| *at > sigterm_at))
        .collect();
    let finished: Vec<_> = in_flight
        .iter()
        .filter(|r| matches!(r.answer, Some((_, 201, Some(_)))))
        .collect();
    assert!(
        in_flight.len() >= 3,
        "only {} requests in flight at SIGTERM; statuses of all {}: {:?}",
        in_flight.len(),
        log.len(),
        log.iter()
            .map(|r| r.answer.as_ref().map(|(_, status, _)| *status))
            .fold(
                HashMap::<Option<u16>, usize>::new(),
                |mut counts, status| {
                    *counts.entry(status).or_default() += 1;
                    counts
                }
            )
    );
    assert_eq!(
        finished.len(),
        in_flight.len(),
        "every request in flight at SIGTERM is answered 201: {:?}",
        in_flight
            .iter()
            .map(|r| r.answer.as_ref().map(|(_, status, _)| *status))
            .collect::<Vec<_>>()
    );
    let acknowledged: Vec<&Stored> = log
        .iter()
        .filter_map(|r| r.answer.as_ref().and_then(|(_, _, stored)| stored.as_ref()))
        .collect();
    let end = acknowledged
        .iter()
        .map(|(offset, _)| offset + 1)
        .max()
        .unwrap();
    let stored: HashMap<i64, String> =
        read_partition(&brokers, &format!("{prefix}movie-events"), 0, end)
            .iter()
            .map(|record| {
                let event: Value = serde_json::from_slice(record.payload().unwrap()).unwrap();
                (record.offset(), event["id"].as_str().unwrap().to_owned())
            })
            .collect();
    let wrong: Vec<_> = acknowledged
        .iter()
        .filter(|(offset, id)| stored.get(offset) != Some(id))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged events are not where the answer said: {:?}",
        wrong.len(),
        acknowledged.len(),
        &wrong[..wrong.len().min(5)]
    );
    eprintln!(
        "{} events acknowledged, {} requests in flight at SIGTERM, all finished; exit took {took:?}",
        acknowledged.len(),
        in_flight.len(),
    );
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_shutdown_that_overruns_its_deadline_is_an_error_and_a_failed_exit() {
    let brokers = brokers();
    // A client that stops reading its stream holds the connection for the write timeout, which
    // here is far longer than the shutdown may take.
    let vars = with(
        isolated_vars(&brokers),
        &[
            ("KAFKA_DELIVERY_TIMEOUT_MS", "1000"),
            ("HTTP_REQUEST_TIMEOUT_MS", "2500"),
            ("SHUTDOWN_TIMEOUT_MS", "3000"),
            ("STREAM_WRITE_TIMEOUT_MS", "60000"),
            ("HTTP_BODY_LIMIT_BYTES", "8388608"),
        ],
    );
    let mut service = ServiceProcess::spawn(&vars);
    crate::helpers::wait_until_healthy(&service.address).await;
    let client = reqwest::Client::new();
    let batches = format!("{}/api/events/batch", service.address);
    let post_3000 = || async {
        for _ in 0..3 {
            let response = client
                .post(&batches)
                .json(&large_movies(1000, 4000))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
        }
    };
    post_3000().await;
    // Wait until the consumers kept all of them, then open a stream that replays them and read
    // nothing more than its head.
    service.wait_for_line(|l| l.contains("[CONSUMER] Topic") && l.contains("Offset: 2999"));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address = service
        .address
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let mut stalled = socket.connect(address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stalled
        .write_all(b"GET /api/events/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0; 256];
    let n = stalled.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    // The replay (the kept 1,000 events, some 4.4 MB) may just fit the kernel's buffers of the
    // connection (tcp_wmem's 4 MiB): 3,000 more live events surely block its writes.
    post_3000().await;
    service.wait_for_line(|l| l.contains("[CONSUMER] Topic") && l.contains("Offset: 5999"));

    let stopping = Instant::now();
    service.terminate();
    let (status, took) = service.wait_for_exit(Duration::from_secs(15));
    assert!(
        !status.success(),
        "a shutdown that overran its deadline exited {status}"
    );
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let output = service.output();
    assert!(
        output.contains("the shutdown did not finish within SHUTDOWN_TIMEOUT_MS (3000 ms): requests were still in flight"),
        "{output}"
    );
    drop(stalled);
    let _ = stopping;
}
