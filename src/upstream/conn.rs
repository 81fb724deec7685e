//! Upstream connection bookkeeping: what happened on a connection (for
//! retries), and the handover of its socket to a spliced body.
//!
//! A keep-alive connection the upstream closes while tollgate picks it from
//! the pool (nginx's graceful reload closes every idle one at once) fails
//! the request written on it with EOF or a reset before any response byte.
//! Such a request never reached a live server and is sent once more on a
//! fresh connection. The rule, as RFC 9112 §9.3.1 allows a proxy:
//! - the request has no body (an empty, fully known one), so it can be
//!   rebuilt from its head;
//! - its method is idempotent, or it was provably never written (hyper
//!   handed it back unsent);
//! - the connection had served an earlier request (a fresh connection that
//!   fails says the upstream is unwell; that is a 502, not a retry);
//! - not one byte of this request's response arrived;
//! - the failure was a close, EOF or reset (not a timeout, not a parse error).
//!
//! The connector wraps each connection's byte stream, above TLS, in
//! [`Tracked`], which notes how many requests were started on it and
//! whether any byte was read since the latest one started; the pool keeps
//! that record with the connection, and [`retry_reason`] reads it when an
//! exchange fails. Above TLS matters: a TLS server's close_notify alert or
//! session tickets are bytes on the socket but not response bytes.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use http::{Method, Uri};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::body::BoxError;
use crate::metrics::RetryReason;

/// What happened on one upstream connection so far. Written only by the
/// task driving the connection; read after that task reported the failure,
/// so relaxed ordering is enough.
#[derive(Debug, Default)]
struct History {
    /// Requests whose first byte was written (or attempted).
    started: AtomicU32,
    /// Whether a byte was read since the latest request started.
    answered: AtomicBool,
    /// Plain TCP: the socket can be handed to a spliced body.
    plain: bool,
    handover: Arc<Handover>,
}

/// A connection's record, kept by the pool with the connection and put in
/// the extensions of each response that came on it.
#[derive(Debug, Clone, Default)]
pub struct ConnHistory(Arc<History>);

/// A connection's plain-text byte stream, noting requests and responses.
///
/// An HTTP/1 client alternates: it writes a request, reads its response,
/// then writes the next. So the first write after a read (or the very first
/// write) starts a request.
pub struct Tracked<T> {
    inner: T,
    history: ConnHistory,
}

impl<T> Tracked<T> {
    /// This connection's record.
    pub fn history(&self) -> ConnHistory {
        self.history.clone()
    }

    fn on_write(&self) {
        let h = &self.history.0;
        if h.started.load(Ordering::Relaxed) == 0 || h.answered.load(Ordering::Relaxed) {
            h.started.fetch_add(1, Ordering::Relaxed);
            h.answered.store(false, Ordering::Relaxed);
        }
    }
}

impl<T: AsyncRead + PlainSocket + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.history.0.handover.is_requested() {
            return self.history.0.handover.park(cx, self.inner.plain_socket());
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.history.0.answered.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.on_write();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.on_write();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

/// The stream hyper drives: the (maybe TLS) stream, seen as tokio I/O
/// so the wrapper needs no unsafe buffer handling, and back.
pub type TrackedStream = TokioIo<Tracked<TokioIo<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>>>;

impl PlainSocket for TokioIo<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>> {
    fn plain_socket(&self) -> Option<BorrowedFd<'_>> {
        match self.inner() {
            MaybeHttpsStream::Http(tcp) => Some(tcp.inner().as_fd()),
            MaybeHttpsStream::Https(_) => None,
        }
    }
}

/// The handover of the plain upstream connection a response came on (its
/// connection info is in the response's extensions).
pub fn handover(extensions: &http::Extensions) -> Option<Arc<Handover>> {
    extensions.get::<ConnHistory>().filter(|h| h.0.plain).map(|h| h.0.handover.clone())
}

/// The upstream connector: plain or TLS, each connection tracked.
#[derive(Clone)]
pub struct TrackingConnector(pub HttpsConnector<HttpConnector>);

impl tower_service::Service<Uri> for TrackingConnector {
    type Response = TrackedStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TrackedStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.0.call(dst);
        Box::pin(async move {
            let stream = connecting.await?;
            let plain = matches!(stream, MaybeHttpsStream::Http(_));
            let history = ConnHistory(Arc::new(History { plain, ..History::default() }));
            Ok(TokioIo::new(Tracked { inner: TokioIo::new(stream), history }))
        })
    }
}

/// Whether a request may be sent again if it fails unanswered: no body to
/// replay. `idempotent` says whether a written one may be (RFC 9110 §9.2.2).
pub fn replayable(method: &Method, body_is_empty: bool) -> Option<Idempotent> {
    body_is_empty.then_some(Idempotent(matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )))
}

/// Whether the request's method is idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idempotent(pub bool);

/// Why a failed exchange may be retried on a fresh connection, or `None`
/// when it must not be (see the module header for the rule). `unsent`: hyper
/// handed the request back without writing it.
pub fn retry_reason(
    error: &hyper::Error,
    unsent: bool,
    history: &ConnHistory,
    idempotent: Idempotent,
) -> Option<RetryReason> {
    let started = history.0.started.load(Ordering::Relaxed);
    let answered = history.0.answered.load(Ordering::Relaxed);
    if unsent || error.is_canceled() {
        // The connection closed before hyper wrote it. Reused if earlier
        // requests were started on it.
        return (started >= 1).then_some(RetryReason::Closed);
    }
    // Written (at least in part): this request is the latest started, so an
    // earlier one means the connection was reused.
    if !idempotent.0 || started < 2 || answered {
        return None;
    }
    let mut source = std::error::Error::source(error);
    let mut io_kind = None;
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        source = err.source();
    }
    match io_kind {
        Some(io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe) => {
            Some(RetryReason::Reset)
        }
        Some(io::ErrorKind::UnexpectedEof) => Some(RetryReason::Closed),
        None if error.is_incomplete_message() => Some(RetryReason::Closed),
        _ => None,
    }
}

/// An upstream connection's socket, handed from hyper's client to a body.
#[derive(Debug, Default)]
pub struct Handover {
    /// Read on every upstream read, so kept out of the mutex.
    requested: AtomicBool,
    state: Mutex<HandoverState>,
}

#[derive(Debug, Default)]
struct HandoverState {
    /// hyper read the socket after the handover was requested.
    parked: bool,
    /// A duplicate of the socket, left by the parked read.
    socket: Option<OwnedFd>,
    /// The body, waiting for hyper to park.
    taker: Option<Waker>,
    /// hyper's parked read.
    reader: Option<Waker>,
    /// The body is done: the parked read ends the connection.
    released: bool,
}

impl Handover {
    /// Asks hyper's next read of the socket to park (a body will splice).
    pub fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
    }

    /// The duplicate of the socket hyper's parked read left.
    pub fn take_socket(&self) -> Option<OwnedFd> {
        lock(&self.state).socket.take()
    }

    /// Whether reads must park (one relaxed load per upstream read).
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// hyper's read once the handover was requested: leaves a duplicate of
    /// `socket` for the body and waits; end-of-file once the body is done.
    pub fn park(&self, cx: &mut Context<'_>, socket: Option<BorrowedFd<'_>>) -> Poll<io::Result<()>> {
        let mut st = lock(&self.state);
        if st.released {
            return Poll::Ready(Ok(()));
        }
        if !st.parked {
            st.socket = socket.map(|fd| rustix::io::fcntl_dupfd_cloexec(fd, 0)).transpose()?;
            st.parked = true;
            if let Some(waker) = st.taker.take() {
                waker.wake();
            }
        }
        st.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    pub fn is_parked(&self) -> bool {
        lock(&self.state).parked
    }

    /// Whether hyper has parked; if not, wakes `cx` when it does.
    pub fn parked_or_wake(&self, cx: &mut Context<'_>) -> bool {
        let mut st = lock(&self.state);
        if !st.parked {
            st.taker = Some(cx.waker().clone());
        }
        st.parked
    }

    /// Ends the handover: a parked (or later) read returns end-of-file, so
    /// hyper closes the connection. When hyper never parked and the whole
    /// body came through it, the connection is left as it was.
    pub fn finish(&self, body_complete: bool) {
        let mut st = lock(&self.state);
        if !st.parked && body_complete {
            self.requested.store(false, Ordering::Relaxed);
            return;
        }
        st.released = true;
        st.socket = None;
        if let Some(waker) = st.reader.take() {
            waker.wake();
        }
    }
}

/// The socket under an upstream connection's byte stream, when it is plain
/// TCP (a TLS connection's bytes cannot be spliced).
pub trait PlainSocket {
    fn plain_socket(&self) -> Option<BorrowedFd<'_>>;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_requests_are_replayable_and_writes_only_when_idempotent() {
        assert_eq!(replayable(&Method::GET, true), Some(Idempotent(true)));
        assert_eq!(replayable(&Method::OPTIONS, true), Some(Idempotent(true)));
        assert_eq!(replayable(&Method::POST, true), Some(Idempotent(false)));
        assert_eq!(replayable(&Method::GET, false), None);
        assert_eq!(replayable(&Method::PUT, false), None);
    }

    impl PlainSocket for tokio::io::DuplexStream {
        fn plain_socket(&self) -> Option<BorrowedFd<'_>> {
            None
        }
    }

    #[tokio::test]
    async fn a_request_starts_at_the_first_write_and_at_each_write_after_a_read() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ok = |r: io::Result<()>| r.unwrap_or_else(|e| panic!("{e}"));
        let (client, mut server) = tokio::io::duplex(64);
        let history = ConnHistory::default();
        let mut conn = Tracked { inner: client, history: history.clone() };
        let state = || (history.0.started.load(Ordering::Relaxed), history.0.answered.load(Ordering::Relaxed));
        let mut buf = [0u8; 16];

        ok(conn.write_all(b"GET / ").await);
        ok(conn.write_all(b"HTTP/1.1\r\n\r\n").await);
        assert_eq!(state(), (1, false), "two writes of one request");
        ok(server.write_all(b"HTTP/1.1 200").await);
        assert!(conn.read(&mut buf).await.unwrap_or(0) > 0);
        assert_eq!(state(), (1, true));
        ok(conn.write_all(b"GET /2").await);
        assert_eq!(state(), (2, false), "a write after a response starts the next request");
        drop(server);
        assert_eq!(conn.read(&mut buf).await.unwrap_or(1), 0);
        assert_eq!(state(), (2, false), "EOF is not a response byte");
    }
}
