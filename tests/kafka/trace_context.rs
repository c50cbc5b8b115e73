//! W3C trace context from the HTTP request into the Kafka record and the consumer's span, the
//! spans exported over OTLP/HTTP to a small receiver in this test, and the JSON log lines that
//! name the request and the trace. Runs the binary: tracing and logging are process-wide.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

use crate::helpers::{ServiceProcess, brokers, header, isolated_vars, read_record, with};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

/// The spans a receiver was sent, each with its resource's service name.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP receiver that keeps every span it is sent.
async fn otlp_receiver() -> (String, Received) {
    let spans = Received::default();
    let receive = |State(spans): State<Received>, body: Bytes| async move {
        let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| format!("{:?}", a.value))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                let mut kept = spans.lock().unwrap();
                kept.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        ""
    };
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, spans)
}

async fn post_movie(service: &ServiceProcess, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/events/movie", service.address))
        .json(&json!({"movie_id": 7, "title": "Traced", "action": "viewed"}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the service answers");
    assert_eq!(response.status(), 201);
    response
}

/// The record a 201 names, and its `traceparent` header split into trace id and span id.
async fn traced_record(response: reqwest::Response) -> (String, String, String) {
    let body: Value = response.json().await.unwrap();
    let record = read_record(
        &brokers(),
        body["topic"].as_str().unwrap(),
        body["partition"].as_i64().unwrap() as i32,
        body["offset"].as_i64().unwrap(),
    );
    let traceparent = header(&record, "traceparent").expect("the record carries traceparent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(
        (parts.len(), parts[0], parts[3]),
        (4, "00", "01"),
        "{traceparent}"
    );
    let event_id = body["event"]["id"].as_str().unwrap().to_owned();
    (event_id, parts[1].to_owned(), parts[2].to_owned())
}

/// The JSON log line whose message contains `needle`.
fn json_line(service: &mut ServiceProcess, needle: &str) -> Value {
    let line = service.wait_for_line(|l| l.contains(needle));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// Multi-threaded: the receiver must answer while the test waits on the process synchronously.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "an integration test (a real broker, the binary): scripts/test.sh runs it"]
async fn a_request_s_trace_continues_into_its_record_and_its_processing_and_is_exported() {
    let (endpoint, exported) = otlp_receiver().await;
    let vars = with(
        isolated_vars(&brokers()),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "events-under-test"),
            ("LOG_FORMAT", "json"),
        ],
    );
    let mut service = ServiceProcess::spawn(&vars);
    crate::helpers::wait_until_healthy(&service.address).await;

    // With a traceparent: the trace continues, under a span of the service's own.
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let response = post_movie(
        &service,
        &[("traceparent", &traceparent), ("x-request-id", "req-7")],
    )
    .await;
    assert_eq!(response.headers()["x-request-id"], "req-7");
    let (event_id, trace_id, request_span_id) = traced_record(response).await;
    assert_eq!(trace_id, TRACE_ID);
    assert_ne!(
        request_span_id, PARENT_ID,
        "the service's span is a new one"
    );

    let published = json_line(&mut service, &format!("Published movie event: {event_id}"));
    assert_eq!(published["level"], "INFO");
    assert_eq!(published["span"]["request_id"], "req-7");
    assert_eq!(published["span"]["trace_id"], TRACE_ID);
    let processed = json_line(&mut service, &format!("ID: {event_id}"));
    assert_eq!(processed["span"]["name"], "process");
    assert_eq!(processed["span"]["trace_id"], TRACE_ID);

    // Without one: a new trace, and a request id made up for the request.
    let response = post_movie(&service, &[]).await;
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let (_, new_trace, _) = traced_record(response).await;
    assert_ne!(new_trace, TRACE_ID);
    assert_ne!(new_trace, "0".repeat(32));

    // Shutting down exports what is still buffered.
    service.terminate();
    let (status, _) = service.wait_for_exit(Duration::from_secs(30));
    assert!(status.success());
    let spans = exported.lock().unwrap().clone();
    let of_trace = |name: &str| {
        spans
            .iter()
            .find(|(_, s)| s.name == name && hex(&s.trace_id) == TRACE_ID)
            .unwrap_or_else(|| panic!("no {name} span of the trace among {spans:#?}"))
    };
    let (service_name, request) = of_trace("request");
    assert!(service_name.contains("events-under-test"), "{service_name}");
    assert_eq!(hex(&request.parent_span_id), PARENT_ID);
    assert_eq!(hex(&request.span_id), request_span_id);
    let (_, process) = of_trace("process");
    assert_eq!(hex(&process.parent_span_id), request_span_id);
    assert!(
        spans.iter().any(|(_, s)| hex(&s.trace_id) == new_trace),
        "the second request's trace was exported too"
    );
}
