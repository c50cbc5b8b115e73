//! Logging. Lines go to stdout through a background writer with a large buffer, so that writing
//! to a terminal or pipe is off the request path; the seed's `[PRODUCER]`, `[CONSUMER]` and
//! `[EVENT PROCESSED]` lines are the messages themselves.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// How much log output is gathered before a write to stdout.
const STDOUT_BUFFER_BYTES: usize = 64 * 1024;

/// Installs the global subscriber. Keep the guard alive: dropping it flushes what is buffered.
pub fn init(filter: &str) -> anyhow::Result<WorkerGuard> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| anyhow::anyhow!("invalid value {filter:?} for LOG_LEVEL: {error}"))?;
    // Not lossy: should stdout stall until the buffer is full, logging threads wait rather than
    // drop lines that searches and alerts rely on.
    // The background writer drains every line queued so far, then flushes: buffering turns a
    // write system call per line into one per burst.
    let stdout = std::io::BufWriter::with_capacity(STDOUT_BUFFER_BYTES, std::io::stdout());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(stdout);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours only for a person at a terminal; never escape codes in files and pipes.
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(writer)
        .init();
    Ok(guard)
}
