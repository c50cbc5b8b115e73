use std::time::Duration;

use anyhow::{Context, bail};
use events_service::{Application, Config, http, telemetry};

// Each event allocates and frees many small buffers on several threads at once; glibc's
// allocator spent about a fifth of the service's CPU on it under load (perf, batch benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long blocking work still running after shutdown (a commit to a vanished broker) may hold
/// the process before it exits anyway.
const BLOCKING_WORK_GRACE: Duration = Duration::from_millis(500);

/// `events-service` serves; `events-service asyncapi [FILE]` writes the AsyncAPI document of the
/// service the environment configures (its topics, partitions, replicas, group, wire format) to
/// FILE, or prints it, and exits.
fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next(), args.next()) {
        (None, ..) => serve(config),
        (Some("asyncapi"), file, None) => {
            let wire_format = (config.schema_registry.as_ref()).is_some_and(|r| r.wire_format);
            let document = http::asyncapi::document(&config.kafka, wire_format);
            let text = serde_json::to_string_pretty(&document)? + "\n";
            match file {
                Some(file) => {
                    std::fs::write(&file, text).with_context(|| format!("writing {file}"))
                }
                None => std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())
                    .context("writing to stdout"),
            }
        }
        _ => bail!("usage: events-service, or events-service asyncapi [FILE]"),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let telemetry = telemetry::init(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        // Listen for signals before anything else, so that an early SIGTERM is graceful too.
        let shutdown = shutdown_signal()?;
        Application::build(config)
            .await?
            .run_until_stopped(shutdown)
            .await
    });
    // The shutdown deadline has passed by now; dropping the runtime would wait for blocking
    // tasks without bound.
    runtime.shutdown_timeout(BLOCKING_WORK_GRACE);
    if let Err(error) = &result {
        tracing::error!("{error:#}");
    }
    telemetry.shutdown();
    result
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C); the handlers are installed at once.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
