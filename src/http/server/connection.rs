//! One connection's deadlines. hyper times a request head only once it is reading HTTP/1, and
//! has no deadline at all while the automatic protocol choice waits for the first bytes, nor for
//! an HTTP/2 connection that never opens a stream. So every connection is watched from accept:
//!
//! - until its first request head is complete: the header timeout;
//! - while no request is in flight: the idle timeout, which gives way to the header timeout as
//!   soon as an HTTP/1 client sends the first byte of its next request;
//! - while requests are in flight (their answers included, streams too): no deadline here; the
//!   request timeout bounds the handlers, and the write timeout ([`super::io`]) the writes.
//!
//! A connection past its deadline is dropped, which closes its socket.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use futures::task::AtomicWaker;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::Service;

/// The deadlines every connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From accept, or from the first byte of a later request, to a complete request head.
    pub header: Duration,
    /// Between requests on a kept-alive connection.
    pub idle: Duration,
    /// A write that makes no progress for this long fails the connection.
    pub write: Duration,
}

/// Why the service closed a connection (the label of the closed-connections counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No complete request head within the header timeout.
    HeaderTimeout,
    /// Idle for the idle timeout between requests.
    IdleTimeout,
    /// The client read nothing of an answer for the write timeout.
    WriteTimeout,
    /// Refused at accept: the connection limit was reached.
    Limit,
}

impl Closed {
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::WriteTimeout => "write_timeout",
            Closed::Limit => "limit",
        }
    }
}

/// What the watchdog knows of its connection, updated by the socket ([`super::io`]), by the
/// service as requests begin and end, and read when the deadline is due. Requests of an HTTP/2
/// connection run on tasks of their own, so the state is shared and wakes the watchdog.
pub struct ConnectionState {
    accepted: Instant,
    in_flight: AtomicUsize,
    /// Whether a request head has been complete on this connection yet.
    served: AtomicBool,
    http2: AtomicBool,
    write_timed_out: AtomicBool,
    bytes_read: AtomicU64,
    /// When the connection last became idle (nanoseconds since accept), and how much had been
    /// read by then: a later read is the start of the next request.
    idle_since: AtomicU64,
    read_when_idle: AtomicU64,
    /// When the first byte after going idle arrived (nanoseconds since accept; 0 for none).
    next_head_since: AtomicU64,
    watchdog: AtomicWaker,
}

impl ConnectionState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            write_timed_out: AtomicBool::new(false),
            bytes_read: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            read_when_idle: AtomicU64::new(0),
            next_head_since: AtomicU64::new(0),
            watchdog: AtomicWaker::new(),
        })
    }

    fn since_accept(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn set_http2(&self) {
        self.http2.store(true, Ordering::Relaxed);
    }

    pub(super) fn write_timed_out(&self) {
        self.write_timed_out.store(true, Ordering::Relaxed);
    }

    pub(super) fn bytes_read(&self, n: usize) {
        let total = self.bytes_read.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let idle = self.in_flight.load(Ordering::Acquire) == 0;
        if idle
            && total > self.read_when_idle.load(Ordering::Relaxed)
            && self.next_head_since.load(Ordering::Relaxed) == 0
        {
            self.next_head_since
                .store(self.since_accept().max(1), Ordering::Relaxed);
        }
    }

    /// Needs no wake-up: a deadline that fires while a request is in flight finds none due.
    fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    /// When the connection must be closed, and why; `None` while a request is in flight.
    fn deadline(&self, deadlines: &Deadlines) -> Option<(Instant, Closed)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |nanos: u64, after: Duration| self.accepted + Duration::from_nanos(nanos) + after;
        if !self.served.load(Ordering::Relaxed) {
            return Some((at(0, deadlines.header), Closed::HeaderTimeout));
        }
        let next_head = self.next_head_since.load(Ordering::Relaxed);
        // An HTTP/2 client's reads between requests are pings and window updates, not heads.
        if next_head != 0 && !self.http2.load(Ordering::Relaxed) {
            return Some((at(next_head, deadlines.header), Closed::HeaderTimeout));
        }
        let idle = self.idle_since.load(Ordering::Relaxed);
        Some((at(idle, deadlines.idle), Closed::IdleTimeout))
    }

    /// Whether the connection failed because a write stalled.
    pub fn timed_out_writing(&self) -> bool {
        self.write_timed_out.load(Ordering::Relaxed)
    }
}

/// A request in flight, until its answer has been written (or abandoned).
struct RequestGuard(Arc<ConnectionState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let state = &self.0;
        if state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            state
                .read_when_idle
                .store(state.bytes_read.load(Ordering::Relaxed), Ordering::Relaxed);
            state.next_head_since.store(0, Ordering::Relaxed);
            state
                .idle_since
                .store(state.since_accept(), Ordering::Relaxed);
            // An HTTP/1 answer ends on the connection's own task, which reads the state again
            // before it sleeps; waking it would only hand it to another worker thread. An
            // HTTP/2 stream ends on a task of its own.
            if state.http2.load(Ordering::Relaxed) {
                state.watchdog.wake();
            }
        }
    }
}

/// The router as one connection serves it: each request counts as in flight until its answer's
/// body is done.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    state: Arc<ConnectionState>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, state: Arc<ConnectionState>) -> Self {
        Self { inner, state }
    }
}

impl<S, B> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = TrackedAnswer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        TrackedAnswer {
            guard: Some(self.state.begin_request()),
            answer: self.inner.call(request),
        }
    }
}

pin_project! {
    /// An answer being computed; its guard moves into the body once there is one.
    pub struct TrackedAnswer<F> {
        #[pin]
        answer: F,
        guard: Option<RequestGuard>,
    }
}

impl<F, E> Future for TrackedAnswer<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.answer.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(answer.map(|response| {
            response.map(|body| {
                Body::new(GuardedBody {
                    body,
                    _guard: guard,
                })
            })
        }))
    }
}

pin_project! {
    struct GuardedBody {
        #[pin]
        body: Body,
        _guard: Option<RequestGuard>,
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project! {
    /// A connection that is dropped once it is past its deadline.
    pub struct Watched<C> {
        #[pin]
        connection: C,
        #[pin]
        timer: Sleep,
        state: Arc<ConnectionState>,
        deadlines: Deadlines,
    }
}

impl<C> Watched<C> {
    pub fn new(connection: C, state: Arc<ConnectionState>, deadlines: Deadlines) -> Self {
        Self {
            connection,
            timer: tokio::time::sleep(deadlines.header),
            state,
            deadlines,
        }
    }

    /// The connection itself, to begin a graceful shutdown on it.
    pub fn connection(self: Pin<&mut Self>) -> Pin<&mut C> {
        self.project().connection
    }
}

impl<C: Future> Future for Watched<C> {
    /// The connection's own outcome, or the deadline it missed.
    type Output = Result<C::Output, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(outcome) = this.connection.poll(cx) {
            return Poll::Ready(Ok(outcome));
        }
        // Registered before reading the state, so that a change made meanwhile on another task
        // wakes this one.
        this.state.watchdog.register(cx.waker());
        let Some((at, reason)) = this.state.deadline(this.deadlines) else {
            return Poll::Pending;
        };
        if this.timer.deadline() != at {
            this.timer.as_mut().reset(at);
        }
        match this.timer.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(reason)),
            Poll::Pending => Poll::Pending,
        }
    }
}
