use std::process::Command;

use serde_json::json;

use crate::helpers::{TestApp, isolated_vars};

/// A broker started by `kafka/start.sh` for one test, stopped (and its data removed) on drop.
struct OwnBroker {
    dir: String,
}

impl OwnBroker {
    fn start(port: u16) -> OwnBroker {
        let dir = format!("kafka/.run/late-{}", uuid::Uuid::new_v4().simple());
        let output = Command::new("kafka/start.sh")
            .args(["--port", &port.to_string(), "--dir", &dir])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("kafka/start.sh runs");
        assert!(
            output.status.success(),
            "kafka/start.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        OwnBroker { dir }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new("kafka/stop.sh")
            .args(["--dir", &self.dir])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output();
    }
}

/// A free port below Linux's ephemeral range, so that no client socket takes it meanwhile.
fn free_port() -> u16 {
    let start = 20_000 + (std::process::id() % 6_000) as u16;
    (start..start + 6_000)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port")
}

#[tokio::test]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn the_service_starts_before_kafka_and_becomes_healthy_when_kafka_appears() {
    let port = free_port();
    let app = TestApp::spawn(isolated_vars(&format!("127.0.0.1:{port}"))).await;
    let (status, _) = app.health().await;
    assert_eq!(status, 503, "no broker yet");

    let broker = tokio::task::spawn_blocking(move || OwnBroker::start(port))
        .await
        .unwrap();
    app.wait_until_healthy().await;
    let (status, body) = app
        .post("user", &json!({"user_id": 1, "action": "registered"}))
        .await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
    drop(broker);
}
