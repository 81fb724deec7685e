//! Connection timeouts that hyper does not separate: a short deadline for
//! the request head (slowloris) and a longer one for idle keep-alive.
//!
//! hyper's own `header_read_timeout` starts whenever a connection waits for
//! a request, so it would also close idle keep-alive connections after the
//! (short) head timeout. Instead the socket is wrapped: the service counts
//! requests started and finished (a response body dropped after its last
//! byte), and the wrapper applies
//! - while idle (every request finished): close after `idle_timeout` without
//!   a byte, and once the first byte of a new request arrives, the whole head
//!   must arrive within `header_read_timeout`;
//! - while a request runs: nothing here (upstream timeouts apply).
//!
//! HTTP/2 connections get the idle rule only: control frames (PING,
//! WINDOW_UPDATE) may arrive while idle without starting a request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests started and finished on one connection.
#[derive(Debug, Default)]
pub struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    http2: AtomicBool,
}

impl Activity {
    /// Marks a request as started; the guard marks it finished when dropped.
    pub fn start(self: &Arc<Self>) -> FinishGuard {
        self.started.fetch_add(1, Ordering::AcqRel);
        FinishGuard(self.clone())
    }

    /// The connection speaks HTTP/2 (head deadlines do not apply).
    pub fn set_http2(&self) {
        self.http2.store(true, Ordering::Release);
    }

    fn counts(&self) -> (u64, u64) {
        (self.started.load(Ordering::Acquire), self.finished.load(Ordering::Acquire))
    }
}

/// Dropped when a response has been sent (or abandoned).
#[derive(Debug)]
pub struct FinishGuard(Arc<Activity>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::AcqRel);
    }
}

/// A response body that finishes its request when dropped.
pub struct Tracked<B> {
    body: B,
    _guard: FinishGuard,
}

impl<B> Tracked<B> {
    pub fn new(body: B, guard: FinishGuard) -> Self {
        Tracked { body, _guard: guard }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket with the head and idle deadlines.
pub struct TimedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    header_timeout: Duration,
    idle_timeout: Duration,
    last_io: Instant,
    /// Deadline for the head being received, and `started` when it began.
    head: Option<(Instant, u64)>,
    first_read: bool,
    sleep: Pin<Box<Sleep>>,
    sleep_at: Option<Instant>,
}

impl<T> TimedIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>, header_timeout: Duration, idle_timeout: Duration) -> Self {
        let now = Instant::now();
        TimedIo {
            inner,
            activity,
            header_timeout,
            idle_timeout,
            last_io: now,
            head: None,
            first_read: true,
            sleep: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
            sleep_at: None,
        }
    }

    fn on_read(&mut self, h2_preface: bool) {
        if h2_preface {
            self.activity.set_http2();
        }
        self.first_read = false;
        self.last_io = Instant::now();
        let (started, finished) = self.activity.counts();
        if matches!(self.head, Some((_, at)) if started > at) {
            self.head = None;
        }
        let idle = started == finished;
        if self.head.is_none() && idle && !self.activity.http2.load(Ordering::Acquire) {
            self.head = Some((self.last_io + self.header_timeout, started));
        }
    }

    /// The next deadline, and whether it closes the connection (`false`
    /// while a request runs: then it only schedules another look).
    fn deadline(&mut self) -> (Instant, bool) {
        let (started, finished) = self.activity.counts();
        if let Some((deadline, at)) = self.head {
            if started == at {
                return (deadline, true);
            }
            self.head = None;
        }
        (self.last_io + self.idle_timeout, started == finished)
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection timed out")
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let h2_preface = this.first_read && buf.filled()[before..].starts_with(b"PRI ");
                    this.on_read(h2_preface);
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        // One timer per connection, armed lazily: activity only moves the
        // deadline later, so an armed timer that is not too late is kept and
        // looked at again when it fires (no timer operation per request). It
        // stays armed while a request runs, so the end of a response needs
        // no wake-up of its own.
        loop {
            let (deadline, enforce) = this.deadline();
            let now = Instant::now();
            if now >= deadline {
                if enforce {
                    return Poll::Ready(Err(timed_out()));
                }
                // A request is running: the connection is not idle.
                this.last_io = now;
                continue;
            }
            if this.sleep_at.is_none_or(|at| at > deadline) {
                this.sleep.as_mut().reset(deadline);
                this.sleep_at = Some(deadline);
            }
            match this.sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => this.sleep_at = None,
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.last_io = Instant::now();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.last_io = Instant::now();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
