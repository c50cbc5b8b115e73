//! Logging, tracing and the metrics registry: what every layer above records into.
//!
//! Log lines go to stdout through a writer thread that gathers them a few milliseconds at a time
//! ([`stdout`]), so that writing to a terminal or pipe is off the request path. As text (the default) they are the seed's lines,
//! `[PRODUCER]`, `[CONSUMER]`, `[EVENT PROCESSED]`, with no span context in front; as JSON each
//! is one object with `timestamp`, `level`, the message and its fields, and the enclosing span's
//! `request_id` and `trace_id` under `span`.
//!
//! Spans (`request`, `process`; see [`crate::trace`]) always carry W3C trace context, and are
//! exported over OTLP/HTTP when an endpoint is configured. They are independent of `LOG_LEVEL`.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Metadata;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, fmt};

use crate::config::{Config, LogFormat, TracingConfig};

pub mod metrics;
mod stdout;
pub mod trace;
mod untrusted;

pub use metrics::Metrics;
pub use untrusted::{UNTRUSTED_MAX_CHARS, Untrusted, untrusted};

/// How long one export of spans may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps logging and tracing running; [`Telemetry::shutdown`] flushes both.
pub struct Telemetry {
    tracer_provider: SdkTracerProvider,
    _log_writer: stdout::Flusher,
}

impl Telemetry {
    /// Exports the spans still buffered, then flushes the log lines. Blocks, at most for the
    /// export timeout.
    pub fn shutdown(self) {
        if let Err(error) = self.tracer_provider.shutdown() {
            tracing::warn!("Could not export the last spans: {error}");
        }
    }
}

/// Installs the global subscriber and tracer provider.
pub fn init(config: &Config) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(&config.log_level).map_err(|error| {
        anyhow::anyhow!(
            "invalid value {:?} for LOG_LEVEL: {error}",
            config.log_level
        )
    })?;
    let (writer, log_writer) = stdout::gathered(std::io::stdout());
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match config.log_format {
        // Spans are hidden from the text lines, which stay word for word the seed's.
        LogFormat::Text => fmt::layer()
            .with_target(false)
            // Colours only for a person at a terminal; never escape codes in files and pipes.
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(writer)
            .with_filter(filter.and(filter_fn(|metadata| metadata.is_event())))
            .boxed(),
        // Our spans are always visible to the JSON lines, whatever LOG_LEVEL says of spans, so
        // that every line inside a request or a record's processing names it.
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .with_writer(writer)
            .with_filter(filter.or(filter_fn(is_our_span)))
            .boxed(),
    };
    let tracer_provider = tracer_provider(&config.tracing)?;
    let tracer = tracer_provider.tracer(env!("CARGO_PKG_NAME"));
    // Only our spans: log events as span events would double the work of every log line.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // Busy/idle times would read the clock at every poll of a request's future, and thread
        // and source-location attributes would be copied into every span: none is worth that
        // on the request path (perf showed the clock reads).
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_filter(filter_fn(is_our_span));
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .context("a global subscriber was already installed")?;
    Ok(Telemetry {
        tracer_provider,
        _log_writer: log_writer,
    })
}

fn is_our_span(metadata: &Metadata<'_>) -> bool {
    metadata.is_span() && metadata.target().starts_with(env!("CARGO_CRATE_NAME"))
}

/// A provider that gives every span an id, and exports them in batches when an OTLP endpoint is
/// configured.
fn tracer_provider(config: &TracingConfig) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let mut provider = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &config.otlp_endpoint {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .context("could not set up the OTLP exporter for OTEL_EXPORTER_OTLP_ENDPOINT")?;
        provider = provider.with_batch_exporter(exporter);
    }
    Ok(provider.build())
}
