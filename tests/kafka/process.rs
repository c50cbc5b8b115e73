//! Tests of the `events-service` binary itself: its log lines, its start-up errors, its shutdown.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use serde_json::{Value, json};

use crate::helpers::{ServiceProcess, brokers, isolated_vars, read_partition, with};

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

/// What a load client saw.
#[derive(Default)]
struct Outcomes {
    /// (offset, event id) of every 201.
    acknowledged: Vec<(i64, String)>,
    /// 201s that arrived after SIGTERM was sent: requests that were in flight and finished.
    acknowledged_after_sigterm: usize,
    /// Any other status: with Kafka up, graceful shutdown must not produce one.
    other_statuses: Vec<u16>,
    /// Requests that got no answer (connection refused or closed once the service stopped).
    unanswered: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn sigterm_while_requests_are_in_flight_finishes_them_and_loses_nothing_answered_201() {
    let brokers = brokers();
    // A linger keeps each event in the producer for a while, so that SIGTERM finds many in flight.
    let vars = with(
        isolated_vars(&brokers),
        &[
            ("KAFKA_CONSUMERS_ENABLED", "false"),
            ("KAFKA_LINGER_MS", "20"),
        ],
    );
    let prefix = crate::helpers::var(&vars, "KAFKA_TOPIC_PREFIX").to_owned();
    let mut service = ServiceProcess::spawn(&vars);
    service.wait_for_line(|l| l.contains("Kafka is reachable"));
    crate::helpers::wait_until_healthy(&service.address).await;

    // Clients post as fast as they can until the service stops answering.
    let client = reqwest::Client::new();
    let outcomes = Arc::new(std::sync::Mutex::new(Outcomes::default()));
    let sigterm_sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for worker in 0..32u64 {
        let (client, address) = (client.clone(), service.address.clone());
        let (outcomes, sigterm_sent) = (outcomes.clone(), sigterm_sent.clone());
        clients.push(tokio::spawn(async move {
            for n in 0..10_000u64 {
                let body = json!({"movie_id": worker * 100_000 + n + 1, "title": "Load", "action": "viewed"});
                let sent = client.post(format!("{address}/api/events/movie")).json(&body).send().await;
                let answer = match sent {
                    Ok(response) if response.status() == 201 => response.json::<Value>().await.ok(),
                    Ok(response) => {
                        outcomes.lock().unwrap().other_statuses.push(response.status().as_u16());
                        return;
                    }
                    Err(_) => None,
                };
                let mut outcomes = outcomes.lock().unwrap();
                let Some(answer) = answer else {
                    outcomes.unanswered += 1;
                    return;
                };
                let id = answer["event"]["id"].as_str().unwrap().to_owned();
                outcomes.acknowledged.push((answer["offset"].as_i64().unwrap(), id));
                if sigterm_sent.load(std::sync::atomic::Ordering::SeqCst) {
                    outcomes.acknowledged_after_sigterm += 1;
                }
            }
        }));
    }
    let started = std::time::Instant::now();
    while outcomes.lock().unwrap().acknowledged.len() < 300 {
        assert!(
            started.elapsed() < crate::helpers::DEADLINE,
            "the load never got going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sigterm_sent.store(true, std::sync::atomic::Ordering::SeqCst);
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

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    assert_eq!(
        outcomes.other_statuses, [0u16; 0],
        "statuses other than 201 during shutdown"
    );
    assert!(
        outcomes.acknowledged_after_sigterm > 0,
        "no request in flight at SIGTERM was finished"
    );
    let end = outcomes
        .acknowledged
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
    let wrong: Vec<_> = outcomes
        .acknowledged
        .iter()
        .filter(|(offset, id)| stored.get(offset) != Some(id))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged events are not where the answer said: {:?}",
        wrong.len(),
        outcomes.acknowledged.len(),
        &wrong[..wrong.len().min(5)]
    );
    eprintln!(
        "{} events acknowledged, {} of them finished after SIGTERM, {} requests unanswered; exit took {took:?}",
        outcomes.acknowledged.len(),
        outcomes.acknowledged_after_sigterm,
        outcomes.unanswered
    );
}
