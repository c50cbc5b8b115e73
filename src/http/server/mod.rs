//! Serving the router: HTTP/1.1 and cleartext HTTP/2 on a TCP listener, with the peer's address
//! in each request (the rate limiter's client key) and a graceful shutdown.
//!
//! It does what `axum::serve` does plus what a service facing clients it does not control needs,
//! and `axum::serve` leaves out:
//! - a cap on open connections, below the process's open-file limit, beyond which a new
//!   connection is closed at once: `accept` never fails for want of file descriptors, so the
//!   health probes keep getting through;
//! - deadlines on every connection from accept ([`connection`]): a connection that sends nothing,
//!   only the HTTP/2 preface, or half a request head is closed after the header timeout, an idle
//!   kept-alive one after the idle timeout, and one whose client stopped reading after the write
//!   timeout ([`io`]);
//! - HTTP/2 keep-alive pings, so that a vanished peer of a long stream is noticed.
//!
//! A slow body is the request timeout's business (408).

mod connection;
mod io;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use connection::{Closed, Deadlines};

use super::metrics::HttpMetrics;
use connection::{ConnectionState, Tracked, Watched};
use io::WatchedIo;

/// After a failed `accept` (out of file descriptors, say), how long to wait before the next:
/// retrying at once would spin while nothing can change.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// How often an HTTP/2 connection is pinged, and how long the answer may take before the
/// connection is closed as dead.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(20);
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams one HTTP/2 connection may have open at once (the concurrency limit still applies).
const HTTP2_MAX_STREAMS: u32 = 256;
/// The largest request head accepted, in either protocol.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Open connections, for the gauge that `/metrics` samples.
static OPEN_CONNECTIONS: AtomicI64 = AtomicI64::new(0);

/// Connections open now, in this process.
pub fn open_connections() -> i64 {
    OPEN_CONNECTIONS.load(Ordering::Relaxed)
}

/// How the server holds its connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub deadlines: Deadlines,
    /// Connections open at once at most; more are closed as soon as they are accepted.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the connections to finish their requests in flight (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    metrics: Arc<HttpMetrics>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog times heads, in both protocols; hyper's own timer would also close idle
        // connections at the header timeout.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_PING_INTERVAL)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT)
        .max_concurrent_streams(HTTP2_MAX_STREAMS)
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::warn!("Could not accept a connection: {error}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closing at once keeps the descriptors free for the connections already held.
            metrics.closed(Closed::Limit);
            drop(stream);
            continue;
        };
        let router = router.clone();
        let (builder, closing, metrics) = (builder.clone(), closing.clone(), metrics.clone());
        connections.spawn(async move {
            OPEN_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            let closed =
                serve_connection(&builder, stream, peer, router, limits.deadlines, closing).await;
            if let Some(reason) = closed {
                metrics.closed(reason);
            }
            OPEN_CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
}

/// Serves one connection until it ends; says why when the service closed it.
async fn serve_connection(
    builder: &Builder<TokioExecutor>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    deadlines: Deadlines,
    closing: CancellationToken,
) -> Option<Closed> {
    // Answers are small and written whole: Nagle's algorithm would only delay them.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!("Could not set TCP_NODELAY: {error}");
    }
    let state = ConnectionState::new();
    let service = router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let io = TokioIo::new(WatchedIo::new(stream, state.clone(), deadlines.write));
    let connection = builder.serve_connection(
        io,
        TowerToHyperService::new(Tracked::new(service, state.clone())),
    );
    let watched = Watched::new(connection, state.clone(), deadlines);
    tokio::pin!(watched);
    let outcome = tokio::select! {
        outcome = watched.as_mut() => outcome,
        () = closing.cancelled() => {
            // Finish the requests in flight, take no new ones; the deadlines still hold.
            watched.as_mut().connection().graceful_shutdown();
            watched.await
        }
    };
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(_)) if state.timed_out_writing() => Some(Closed::WriteTimeout),
        // A client that goes away is routine, not an error of ours.
        Ok(Err(error)) => {
            tracing::debug!("Connection from {peer} ended: {error}");
            None
        }
        Err(reason) => Some(reason),
    }
}

/// Connections the kernel may complete before the service accepts them: a burst of clients
/// (all reconnecting at once after a restart, say) beyond it would have their handshakes
/// dropped. Linux caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `address` with a backlog for bursts of connections.
pub fn listen(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's and tokio's own bind do: a restarted service can listen at once.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft limit on open files to the hard limit, and returns the limit in force.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft < hard {
        rlimit::Resource::NOFILE.set(hard, hard)?;
        tracing::info!("Raised the open-file limit from {soft} to {hard}");
    }
    Ok(hard.max(soft))
}
