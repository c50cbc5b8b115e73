//! What an `Idempotency-Key` on every request costs: a closed loop of CONCURRENCY clients posting
//! for SECONDS, each request with a key of its own (`keyed`) or none (`plain`), single movie
//! events or batches of 10. Prints one JSON line: requests and events per second, p50 and p99 in
//! ms, and the answers that were not 2xx. oha cannot put a different header on every request,
//! hence this tool; compare its runs with one another, not with oha's.
//!
//! Usage: cargo run --release --example keyed_load -- URL [CONCURRENCY] [SECONDS] [keyed|plain]
//! [single|batch]  (defaults: 64, 8, keyed, single)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or("http://127.0.0.1:8082".into());
    let concurrency: usize = args.get(1).map_or(Ok(64), |a| a.parse())?;
    let seconds: u64 = args.get(2).map_or(Ok(8), |a| a.parse())?;
    let keyed = args.get(3).is_none_or(|a| a == "keyed");
    let batch = args.get(4).is_some_and(|a| a == "batch");
    let (path, body, events) = match batch {
        true => {
            let items: Vec<Value> = (0..10)
                .map(|n| {
                    let mut item = movie(n);
                    item["type"] = json!("movie");
                    item
                })
                .collect();
            ("/api/events/batch", Value::Array(items), 10)
        }
        false => ("/api/events/movie", movie(1), 1),
    };
    let body = serde_json::to_vec(&body)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (http, url, body, run, failed) = (
            http.clone(),
            format!("{url}{path}"),
            body.clone(),
            run.clone(),
            failed.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let mut request = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone());
                if keyed {
                    request = request.header("idempotency-key", format!("{run}-{worker}-{n}"));
                }
                let started = Instant::now();
                let ok = match request.send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        let _ = response.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                latencies.push(started.elapsed());
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let requests = latencies.len() as f64 / elapsed;
    println!(
        "{}",
        json!({
            "keyed": keyed,
            "path": path,
            "concurrency": concurrency,
            "requests_per_second": requests.round(),
            "events_per_second": (requests * events as f64).round(),
            "p50_ms": (quantile(0.5) * 100.0).round() / 100.0,
            "p99_ms": (quantile(0.99) * 100.0).round() / 100.0,
            "not_2xx": failed.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

fn movie(n: u64) -> Value {
    json!({"movie_id": n + 1, "title": "The Matrix", "action": "viewed", "user_id": 1,
           "rating": 4.5, "genres": ["Action", "Sci-Fi"], "description": "A computer hacker learns about the true nature of reality"})
}
