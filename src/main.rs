use std::time::Duration;

use anyhow::bail;
use events_service::{Application, Config, http, telemetry};

// Each event allocates and frees many small buffers on several threads at once; glibc's
// allocator spent about a fifth of the service's CPU on it under load (perf, batch benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long blocking work still running after shutdown (a commit to a vanished broker) may hold
/// the process before it exits anyway.
const BLOCKING_WORK_GRACE: Duration = Duration::from_millis(500);

/// `events-service` serves; `events-service asyncapi` prints the AsyncAPI document of the
/// service the environment configures (its topics, partitions, replicas, group), and exits.
fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None => serve(config),
        Some("asyncapi") => {
            let wire_format = (config.schema_registry.as_ref()).is_some_and(|r| r.wire_format);
            let document = http::asyncapi::document(&config.kafka, wire_format);
            println!("{}", serde_json::to_string_pretty(&document)?);
            Ok(())
        }
        Some(other) => {
            bail!("unknown command {other:?}: run events-service, or events-service asyncapi")
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let telemetry = telemetry::init(&config)?;
    let runtime = tokio::runtime::Runtime::new()?;
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
