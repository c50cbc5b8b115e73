//! The floor this architecture allows, to measure the service against: a bare hyper server whose
//! every POST is one record of its body, sent by one rdkafka producer (acks=all, idempotent,
//! linger 0), answered with the partition and offset once Kafka acknowledged it.
//!
//! ```text
//! cargo run --release --example floor -- --brokers B --topic T [--port 18090] [--future]
//! ```
//!
//! By default the delivery reports are served on the runtime, woken by librdkafka's queue io
//! event, as the service does (`src/kafka/reports.rs`); `--future` uses rdkafka's
//! `FutureProducer` and its polling thread instead. The worker threads are tokio's default
//! (`TOKIO_WORKER_THREADS`). Drive it with oha like the service (BENCHMARKS.md, "Where an idle
//! request's time goes"). The topic must exist.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use events_service::kafka::{KafkaProducer, StatsContext};
use events_service::telemetry::Metrics;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord};

enum Producer {
    Reporting(KafkaProducer),
    Future(FutureProducer),
}

impl Producer {
    async fn send(&self, topic: &str, payload: &[u8]) -> String {
        let stored = match self {
            Producer::Reporting(producer) => {
                let record = BaseRecord::to(topic).payload(payload);
                match producer.send(record) {
                    Ok(report) => report.await.map_err(|_| "gone".to_owned()).and_then(|r| {
                        r.map(|d| (d.partition, d.offset))
                            .map_err(|e| e.to_string())
                    }),
                    Err(error) => Err(error.to_string()),
                }
            }
            Producer::Future(producer) => {
                let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(payload);
                producer
                    .send(record, Duration::from_secs(5))
                    .await
                    .map(|d| (d.partition, d.offset))
                    .map_err(|(e, _)| e.to_string())
            }
        };
        match stored {
            Ok((partition, offset)) => format!(r#"{{"partition":{partition},"offset":{offset}}}"#),
            Err(error) => format!(r#"{{"error":{error:?}}}"#),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (mut brokers, mut topic, mut port, mut future) = (None, None, 18090, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--brokers" => brokers = args.next(),
            "--topic" => topic = args.next(),
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or(port),
            "--future" => future = true,
            _ => anyhow::bail!("usage: floor --brokers B --topic T [--port P] [--future]"),
        }
    }
    let (Some(brokers), Some(topic)) = (brokers, topic) else {
        anyhow::bail!("usage: floor --brokers B --topic T [--port P] [--future]");
    };
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0");
    let producer: &'static Producer = Box::leak(Box::new(match future {
        true => Producer::Future(config.create()?),
        false => {
            let context = StatsContext::named("floor", &Metrics::new());
            Producer::Reporting(KafkaProducer::new(&config, context)?)
        }
    }));
    let topic: &'static str = topic.leak();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let answer = hyper::service::service_fn(move |request: Request<Incoming>| async move {
            let body = match request.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => Bytes::new(),
            };
            let text = producer.send(topic, &body).await;
            let response = Response::builder()
                .status(201)
                .body(Full::new(Bytes::from(text)));
            Ok::<_, Infallible>(response.expect("a valid response"))
        });
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), answer)
                .await;
        });
    }
}
