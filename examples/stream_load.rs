//! How the event stream holds up: CLIENTS server-sent-event clients on `GET /api/events/stream`
//! while batches of movie events are posted at RATE events per second for SECONDS. Prints what
//! each client received (all of it, or dropped for falling behind) and how long events took from
//! their post's answer to a client.
//!
//! Usage: cargo run --release --example stream_load -- URL [CLIENTS] [RATE] [SECONDS]
//! (URL of a running service, e.g. http://127.0.0.1:8082; defaults 64 clients, 2000 events/s,
//! 10 s).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

const BATCH: usize = 100;

struct Client {
    received: AtomicU64,
    ended_early: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or("http://127.0.0.1:8082".into());
    let clients: usize = args.get(1).map_or(Ok(64), |a| a.parse())?;
    let rate: u64 = args.get(2).map_or(Ok(2000), |a| a.parse())?;
    let seconds: u64 = args.get(3).map_or(Ok(10), |a| a.parse())?;
    let http = reqwest::Client::new();
    let tag = format!("stream-load-{}", std::process::id());

    // Each client counts the events of this run it receives, and the latest latency samples.
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let posted_at = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let mut handles = Vec::new();
    let mut states = Vec::new();
    for _ in 0..clients {
        let state = Arc::new(Client {
            received: AtomicU64::new(0),
            ended_early: AtomicU64::new(0),
        });
        let response = http
            .get(format!("{url}/api/events/stream?type=movie"))
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "stream: {}", response.status());
        let (state2, tag, latencies, posted_at) = (
            state.clone(),
            tag.clone(),
            latencies.clone(),
            posted_at.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let message: String = buffer.drain(..end + 2).collect();
                    let Some(data) = message.lines().find_map(|l| l.strip_prefix("data: ")) else {
                        continue;
                    };
                    let event: Value = serde_json::from_str(data).unwrap_or_default();
                    if event["payload"]["title"].as_str() == Some(tag.as_str()) {
                        state2.received.fetch_add(1, Ordering::Relaxed);
                        let id = event["id"].as_str().unwrap_or_default().to_owned();
                        if let Some(at) = posted_at.lock().unwrap().get(&id) {
                            latencies.lock().unwrap().push(Instant::now() - *at);
                        }
                    }
                }
            }
            state2.ended_early.store(1, Ordering::Relaxed);
        }));
        states.push(state);
    }

    let started = Instant::now();
    let mut posted = 0u64;
    let batch: Vec<Value> = (0..BATCH)
        .map(|i| json!({"type": "movie", "movie_id": i + 1, "title": tag, "action": "viewed"}))
        .collect();
    while started.elapsed() < Duration::from_secs(seconds) {
        let due = Duration::from_secs_f64(posted as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let answer: Value = http
            .post(format!("{url}/api/events/batch"))
            .json(&batch)
            .send()
            .await?
            .json()
            .await?;
        let now = Instant::now();
        let mut posted_at = posted_at.lock().unwrap();
        for result in answer["results"].as_array().into_iter().flatten() {
            if let Some(id) = result["event"]["id"].as_str() {
                posted_at.insert(id.to_owned(), now);
            }
        }
        posted += BATCH as u64;
    }
    let elapsed = started.elapsed();
    // Give the consumers and the streams a moment to deliver the last batch.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && states.iter().any(|s| {
            s.received.load(Ordering::Relaxed) < posted
                && s.ended_early.load(Ordering::Relaxed) == 0
        })
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut received: Vec<u64> = states
        .iter()
        .map(|s| s.received.load(Ordering::Relaxed))
        .collect();
    received.sort_unstable();
    let dropped = states
        .iter()
        .filter(|s| s.ended_early.load(Ordering::Relaxed) == 1)
        .count();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{clients} clients, {posted} events posted in {:.1} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        posted as f64 / elapsed.as_secs_f64()
    );
    println!(
        "received per client: min {} median {} max {}; clients dropped for falling behind: {dropped}",
        received[0],
        received[received.len() / 2],
        received[received.len() - 1]
    );
    println!(
        "post answer -> client: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        percentile(0.5),
        percentile(0.99),
        percentile(1.0),
        latencies.len()
    );
    for handle in handles {
        handle.abort();
    }
    Ok(())
}
