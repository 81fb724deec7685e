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
//! HTTP/2 connections (the full 24-byte preface seen, or ALPN `h2`) get the
//! idle rule only, measured from the last stream opened or finished: PING
//! and WINDOW_UPDATE frames, hyper's own keep-alive pings included, flow
//! while idle without counting as activity.

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
#[derive(Debug)]
pub struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    http2: AtomicBool,
    /// For HTTP/2: when a stream last started or finished, in milliseconds
    /// after `born`.
    born: Instant,
    last_change_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            born: Instant::now(),
            last_change_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// Marks a request as started; the guard marks it finished when dropped.
    pub fn start(self: &Arc<Self>) -> FinishGuard {
        self.started.fetch_add(1, Ordering::AcqRel);
        self.touch();
        FinishGuard(self.clone())
    }

    /// The connection speaks HTTP/2 (head deadlines do not apply).
    pub fn set_http2(&self) {
        self.http2.store(true, Ordering::Release);
        self.touch();
    }

    fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Acquire)
    }

    /// Records stream activity (HTTP/2 only: HTTP/1 counts bytes).
    fn touch(&self) {
        if self.is_http2() {
            let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_change_ms.store(ms, Ordering::Release);
        }
    }

    fn last_change(&self) -> Instant {
        self.born + Duration::from_millis(self.last_change_ms.load(Ordering::Acquire))
    }

    /// Every request started has finished: nothing is being answered.
    pub fn idle(&self) -> bool {
        let (started, finished) = self.counts();
        started == finished
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
        self.0.touch();
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

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A socket with the head and idle deadlines.
pub struct TimedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    header_timeout: Duration,
    idle_timeout: Duration,
    last_io: Instant,
    /// Deadline for the head being received, and `started` when it began.
    head: Option<(Instant, u64)>,
    /// Bytes of the HTTP/2 preface matched so far; `None` once it cannot be one.
    preface: Option<usize>,
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
            preface: Some(0),
            sleep: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
            sleep_at: None,
        }
    }

    fn on_read(&mut self, bytes: &[u8]) {
        if let Some(matched) = self.preface {
            let want = &H2_PREFACE[matched..];
            let n = want.len().min(bytes.len());
            self.preface = if bytes[..n] != want[..n] {
                None
            } else if matched + n == H2_PREFACE.len() {
                self.activity.set_http2();
                None
            } else {
                Some(matched + n)
            };
        }
        self.last_io = Instant::now();
        let (started, finished) = self.activity.counts();
        if matches!(self.head, Some((_, at)) if started > at) {
            self.head = None;
        }
        if self.head.is_none() && started == finished && !self.activity.is_http2() {
            self.head = Some((self.last_io + self.header_timeout, started));
        }
    }

    /// The next deadline, and whether it closes the connection (`false`
    /// while a request runs: then it only schedules another look).
    fn deadline(&mut self) -> (Instant, bool) {
        let (started, finished) = self.activity.counts();
        if self.activity.is_http2() {
            return (self.activity.last_change() + self.idle_timeout, started == finished);
        }
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
                    this.on_read(&buf.filled()[before..]);
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
                this.activity.touch();
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
