//! Logging. Lines go to stdout through a background writer with a large buffer, so that writing
//! to a terminal or pipe is off the request path; the seed's `[PRODUCER]`, `[CONSUMER]` and
//! `[EVENT PROCESSED]` lines are the messages themselves.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Keep the guard alive: dropping it flushes what is buffered.
pub fn init(filter: &str) -> anyhow::Result<WorkerGuard> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| anyhow::anyhow!("invalid value {filter:?} for LOG_LEVEL: {error}"))?;
    // Not lossy: should stdout stall until the buffer is full, logging threads wait rather than
    // drop lines that searches and alerts rely on.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours only for a person at a terminal; never escape codes in files and pipes.
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(writer)
        .init();
    Ok(guard)
}
