//! The socket as the connection's watchdog sees it: every read is noted (so that the idle
//! deadline can give way to the header deadline once a client starts a new request), the
//! protocol is told from the first bytes, and a write that makes no progress for the write
//! timeout fails the connection, so that a client that stopped reading cannot hold its
//! connection, its stream slot and the buffered answer for ever.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::connection::ConnectionState;

/// The first bytes of every HTTP/2 connection (RFC 9113, 3.4); no HTTP/1 method starts so.
const H2_PREFACE_START: &[u8] = b"PRI ";

pin_project! {
    /// A socket whose reads and stalled writes are reported to its connection's state.
    pub struct WatchedIo<T> {
        #[pin]
        inner: T,
        state: Arc<ConnectionState>,
        write_timeout: Duration,
        // Armed when a write is first refused for want of room, disarmed by any progress.
        stalled: Option<Pin<Box<Sleep>>>,
        first_read: bool,
    }
}

impl<T> WatchedIo<T> {
    pub fn new(inner: T, state: Arc<ConnectionState>, write_timeout: Duration) -> Self {
        Self {
            inner,
            state,
            write_timeout,
            stalled: None,
            first_read: true,
        }
    }
}

impl<T: AsyncRead> AsyncRead for WatchedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            if std::mem::take(this.first_read) && read.starts_with(H2_PREFACE_START) {
                this.state.set_http2();
            }
            this.state.bytes_read(read.len());
        }
        result
    }
}

/// Passes a write's outcome through, failing it once it has waited for room longer than the
/// write timeout.
fn deadline<R>(
    outcome: Poll<io::Result<R>>,
    stalled: &mut Option<Pin<Box<Sleep>>>,
    write_timeout: Duration,
    state: &ConnectionState,
    cx: &mut Context<'_>,
) -> Poll<io::Result<R>> {
    if outcome.is_ready() {
        *stalled = None;
        return outcome;
    }
    let timer = stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(write_timeout)));
    if timer.as_mut().poll(cx).is_ready() {
        state.write_timed_out();
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing for the write timeout",
        )));
    }
    Poll::Pending
}

impl<T: AsyncWrite> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let outcome = this.inner.poll_write(cx, buf);
        deadline(outcome, this.stalled, *this.write_timeout, this.state, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let outcome = this.inner.poll_write_vectored(cx, bufs);
        deadline(outcome, this.stalled, *this.write_timeout, this.state, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let outcome = this.inner.poll_flush(cx);
        deadline(outcome, this.stalled, *this.write_timeout, this.state, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
