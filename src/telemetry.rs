//! Logging and tracing.
//!
//! Log lines go to stdout through a background writer with a large buffer, so that writing to a
//! terminal or pipe is off the request path. As text (the default) they are the seed's lines,
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
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, fmt};

use crate::config::{Config, LogFormat, TracingConfig};

/// How much log output is gathered before a write to stdout.
const STDOUT_BUFFER_BYTES: usize = 64 * 1024;
/// How long one export of spans may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps logging and tracing running; [`Telemetry::shutdown`] flushes both.
pub struct Telemetry {
    tracer_provider: SdkTracerProvider,
    _log_writer: WorkerGuard,
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
    // Not lossy: should stdout stall until the buffer is full, logging threads wait rather than
    // drop lines that searches and alerts rely on. The background writer drains every line
    // queued so far, then flushes: a write system call per burst rather than per line.
    let stdout = std::io::BufWriter::with_capacity(STDOUT_BUFFER_BYTES, std::io::stdout());
    let (writer, log_writer) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(stdout);
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

/// A string from outside (a record's key, an envelope's field written by another producer) made
/// safe for a log line: a line break or other control character cannot end the line and forge
/// the next one, nor can invisible formatting characters disguise it. They are written escaped
/// (`\n`, `\u{202e}`), as is a backslash (`\\`), so that escapes cannot be faked either; every
/// other character is written as it is, so ordinary values read word for word. At most
/// [`UNTRUSTED_MAX_CHARS`] characters are written, then how many bytes were left out.
pub fn untrusted(value: &str) -> Untrusted<'_> {
    Untrusted(value)
}

/// The most characters of an untrusted string a log line holds.
pub const UNTRUSTED_MAX_CHARS: usize = 256;

/// See [`untrusted`].
pub struct Untrusted<'a>(&'a str);

impl std::fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for (written, (i, c)) in self.0.char_indices().enumerate() {
            if written == UNTRUSTED_MAX_CHARS {
                return write!(f, "…({} more bytes)", self.0.len() - i);
            }
            match c {
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() || is_invisible_format(c) => {
                    for escaped in c.escape_debug() {
                        f.write_char(escaped)?;
                    }
                }
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Separators and format characters that change how a line reads without being seen: line and
/// paragraph separators, zero-width characters, bidirectional overrides and isolates, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_values_are_written_as_they_are() {
        for value in [
            "42",
            "abc-123",
            "3c0f6a4e-8d1b-4c55-9a7e-2b9f0d4e1a77",
            "Amélie 映画",
            "",
        ] {
            assert_eq!(untrusted(value).to_string(), value);
        }
    }

    #[test]
    fn nothing_untrusted_can_end_a_line_or_fake_an_escape() {
        let forged = "1\n2025-01-01T00:00:00Z INFO [EVENT PROCESSED] Type: movie\r\t\u{1b}[31m\u{2028}\u{202e}\\n";
        let written = untrusted(forged).to_string();
        assert!(
            !written
                .chars()
                .any(|c| c.is_control() || is_invisible_format(c)),
            "{written}"
        );
        assert_eq!(
            written,
            "1\\n2025-01-01T00:00:00Z INFO [EVENT PROCESSED] Type: movie\\r\\t\\u{1b}[31m\\u{2028}\\u{202e}\\\\n"
        );
    }

    #[test]
    fn a_long_value_is_cut_and_says_how_much_is_left_out() {
        let long = "é".repeat(300);
        let written = untrusted(&long).to_string();
        assert!(written.starts_with(&"é".repeat(UNTRUSTED_MAX_CHARS)));
        assert!(written.ends_with("…(88 more bytes)"), "{written}");
    }
}
