//! When the Redis that instances share is away, late or loses an answer: a keyed request is
//! refused rather than risking a duplicate and the rest goes on; one that comes before the
//! first connection waits for it; an answer that never reached Redis is found by the retry in
//! Kafka, not published twice.

use reqwest::StatusCode;
use serde_json::Value;

use super::{movie, post_keyed, records_in, redis_url, shared_vars, two};
use crate::helpers::{TestApp, closed_port, eventually, metric};

/// A keyed request that reaches a ready instance before its first Redis connection is up waits
/// for it (within `REDIS_TIMEOUT_MS`) instead of a 503: readiness is Kafka's alone, so a load
/// balancer sends such requests the moment Kafka answers (one CI run's first keyed request did).
#[tokio::test]
#[ignore = "needs Kafka and Redis: run scripts/test.sh"]
async fn a_keyed_request_before_the_first_redis_connection_waits_for_it() {
    // Redis behind a door: the instance's connection waits until the test opens it.
    let door = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", door.local_addr().unwrap());
    let open = std::sync::Arc::new(tokio::sync::Notify::new());
    let redis = redis_url().trim_start_matches("redis://").to_owned();
    tokio::spawn({
        let open = open.clone();
        async move {
            open.notified().await;
            while let Ok((mut client, _)) = door.accept().await {
                let mut upstream = tokio::net::TcpStream::connect(&redis).await.unwrap();
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        }
    });
    let app = TestApp::spawn(shared_vars(&[
        ("REDIS_URL", url.as_str()),
        ("REDIS_TIMEOUT_MS", "10000"),
    ]))
    .await;
    app.wait_until_healthy().await;
    let (_, health) = app.health().await;
    assert_eq!(health["redis"]["reachable"], false, "{health}");
    // The request goes out first; the door opens once it waits on its answer.
    let event = movie(1);
    let keyed = post_keyed(&app, Some("early"), &event);
    let (keyed, ()) = tokio::join!(keyed, async { open.notify_one() });
    let body = String::from_utf8_lossy(&keyed.body);
    assert_eq!(keyed.status, StatusCode::CREATED, "{body}");
    app.stop().await;
}

#[tokio::test]
#[ignore = "needs Kafka: run scripts/test.sh"]
async fn without_redis_a_keyed_request_is_refused_and_the_rest_goes_on_with_local_limits() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let vars = shared_vars(&[
        ("REDIS_URL", url.as_str()),
        ("REDIS_TIMEOUT_MS", "100"),
        ("RATE_LIMIT_PER_SECOND", "1"),
        ("RATE_LIMIT_BURST", "3"),
    ]);
    let app = TestApp::spawn(vars).await;
    app.wait_until_healthy().await;
    let (status, health) = app.health().await;
    assert_eq!(status, 200, "Kafka is all readiness needs: {health}");
    assert_eq!(health["redis"]["reachable"], false, "{health}");

    let keyed = post_keyed(&app, Some("k"), &movie(1)).await;
    assert_eq!(keyed.status, StatusCode::SERVICE_UNAVAILABLE);
    let error: Value = serde_json::from_slice(&keyed.body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("idempotency store"),
        "{error}"
    );
    assert_eq!(
        records_in(&app.topic("movie-events")),
        0,
        "nothing published for it"
    );

    // The local limiter stands in: the burst, then 429.
    let mut statuses = Vec::new();
    for n in 0..4 {
        statuses.push(post_keyed(&app, None, &movie(n)).await.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "the keyed request took one token"
    );
    let fallbacks = metric(&app.address, "events_service_rate_limit_fallbacks_total").await;
    assert_eq!(fallbacks, Some(5.0));
    let refused = metric(&app.address, "events_service_idempotency_unavailable_total").await;
    assert_eq!(refused, Some(1.0));
    app.stop().await;
}

#[tokio::test]
#[ignore = "needs Kafka and redis-server: run scripts/test.sh"]
async fn a_stored_event_whose_answer_never_reached_redis_is_found_by_the_retry_not_published_twice()
{
    let redis = OwnRedis::start();
    // The producer lingers a second, so that Redis can be paused while the event is on its way;
    // the claim's lease is then the request timeout and 5 s.
    let vars = shared_vars(&[
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_TIMEOUT_MS", "200"),
        ("KAFKA_LINGER_MS", "1000"),
        ("KAFKA_IDLE_LINGER_MS", "1000"),
        ("KAFKA_DELIVERY_TIMEOUT_MS", "3000"),
        ("HTTP_REQUEST_TIMEOUT_MS", "4100"),
        ("SHUTDOWN_TIMEOUT_MS", "5000"),
    ]);
    let (a, b) = two(&vars).await;
    eventually("both reach Redis", || async {
        let reachable = |health: Value| health["redis"]["reachable"] == true;
        (reachable(a.health().await.1) && reachable(b.health().await.1)).then_some(())
    })
    .await;

    let first = {
        let (client, address) = (a.client.clone(), a.address.clone());
        tokio::spawn(async move {
            let response = client
                .post(format!("{address}/api/events/movie"))
                .header("idempotency-key", "lost-answer")
                .json(&movie(1))
                .send()
                .await
                .unwrap();
            (response.status(), response.bytes().await.unwrap().to_vec())
        })
    };
    let queue = "events_service_kafka_producer_queue_events";
    eventually("the event waits in A's producer", || async {
        (metric(&a.address, queue).await == Some(1.0)).then_some(())
    })
    .await;
    // A stores the event, but cannot remember its answer: as if it died right after Kafka's
    // acknowledgement.
    redis.signal("-STOP");
    let (status, first_body) = first.await.unwrap();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the client was answered all the same"
    );
    redis.signal("-CONT");

    let body = movie(1);
    let retry = || post_keyed(&b, Some("lost-answer"), &body);
    assert_eq!(
        retry().await.status,
        StatusCode::CONFLICT,
        "the claim holds for its lease"
    );
    let recovered = eventually("the lease lapses", || async {
        let answer = retry().await;
        (answer.status != StatusCode::CONFLICT).then_some(answer)
    })
    .await;
    assert_eq!(recovered.status, StatusCode::CREATED);
    assert!(recovered.replayed);
    assert_eq!(
        recovered.body, first_body,
        "the stored event's answer, byte for byte"
    );
    assert_eq!(records_in(&a.topic("movie-events")), 1, "published once");
    let again = retry().await;
    assert!(
        again.replayed && again.body == first_body,
        "and remembered from now on"
    );
    a.stop().await;
    b.stop().await;
}

/// A Redis of the test's own, to pause and resume.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    fn start() -> Self {
        let port = closed_port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts (scripts/bootstrap.sh --redis installs it)");
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
