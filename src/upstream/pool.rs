//! Keep-alive connections to one upstream, one pool per worker thread, on
//! hyper's own `client::conn::http1`.
//!
//! A request takes the most recently used idle connection of its worker (or
//! opens one), sends on it, and gets back a response whose body holds the
//! connection: it goes back to the pool when the body ends, and is dropped
//! (closed by hyper) when the body is dropped half-way. No task is spawned
//! per request and no pool is keyed or hashed: the pool belongs to one
//! upstream and one worker, and its lock is never contended.
//!
//! Idle connections older than `pool_idle_timeout` are closed by a sweeper
//! task of the worker (and skipped by a checkout that finds them first); at
//! most `pool_max_idle` are kept.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use tower_service::Service as _;

use super::conn::{ConnHistory, TrackingConnector};
use crate::body::RequestBody;

/// One worker's idle connections to one upstream, most recently used last.
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

/// A connection ready for (or busy with) a request.
pub struct Conn {
    pub sender: SendRequest<RequestBody>,
    pub history: ConnHistory,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Why a connection could not be had.
pub type ConnectError = Box<dyn std::error::Error + Send + Sync>;

impl Pool {
    /// A pool for the current worker; its sweeper runs on the current tokio
    /// runtime and stops when the pool is dropped.
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Arc<Self> {
        let pool = Arc::new(Pool { idle: Mutex::new(Vec::new()), max_idle, idle_timeout });
        if max_idle > 0 && tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sweep(Arc::downgrade(&pool), idle_timeout));
        }
        pool
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection that is still open, ready to
    /// send. `None` when there is none (the caller connects).
    pub async fn checkout(&self) -> Option<Conn> {
        loop {
            let mut conn = self.take_idle()?;
            if conn.sender.is_ready() || conn.sender.ready().await.is_ok() {
                return Some(conn);
            }
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle();
        while let Some(entry) = idle.pop() {
            if entry.conn.sender.is_closed() {
                continue;
            }
            if entry.since.elapsed() >= self.idle_timeout {
                // Every entry before it is older still.
                idle.clear();
                return None;
            }
            return Some(entry.conn);
        }
        None
    }

    /// Puts a connection whose last response has ended back.
    fn give_back(&self, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < self.max_idle {
            idle.push(Idle { conn, since: Instant::now() });
        }
    }

    /// Wraps a response so that its connection comes back when its body
    /// ends; the connection's history goes into the extensions (the
    /// splice handover reads it there).
    pub fn lend(self: &Arc<Self>, conn: Conn, resp: Response<Incoming>) -> Response<UpstreamBody> {
        let mut resp = once(&conn, resp);
        let body = resp.body_mut();
        body.lease = Some((self.clone(), conn));
        if body.inner.is_end_stream() {
            body.release();
        }
        resp
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle().len()
    }
}

/// Closes idle connections older than `timeout`, every `timeout / 2` (at
/// least every second), until the pool is gone.
async fn sweep(pool: Weak<Pool>, timeout: Duration) {
    let period = (timeout / 2).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        let expired = {
            let mut idle = pool.idle();
            let keep = idle.iter().position(|e| e.since.elapsed() < timeout).unwrap_or(idle.len());
            idle.drain(..keep).collect::<Vec<_>>()
        };
        // Closed outside the lock.
        drop(expired);
    }
}

/// Opens a connection to `uri` (scheme and authority only) through
/// `connector`; hyper drives it on a task of the current worker.
pub async fn connect(connector: &TrackingConnector, uri: Uri) -> Result<Conn, ConnectError> {
    let io = connector.clone().call(uri).await?;
    let history = io.inner().history();
    let (sender, connection) = http1::Builder::new().handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "Upstream connection ended");
        }
    });
    Ok(Conn { sender, history })
}

/// Wraps a response whose connection is not reused: hyper closes it after
/// the body, once `conn` (its sender) is dropped.
pub fn once(conn: &Conn, resp: Response<Incoming>) -> Response<UpstreamBody> {
    let (mut parts, inner) = resp.into_parts();
    parts.extensions.insert(conn.history.clone());
    Response::from_parts(parts, UpstreamBody { inner, lease: None })
}

/// An upstream response body that returns its connection to the pool when
/// it ends.
pub struct UpstreamBody {
    inner: Incoming,
    lease: Option<(Arc<Pool>, Conn)>,
}

impl UpstreamBody {
    fn release(&mut self) {
        if let Some((pool, conn)) = self.lease.take() {
            pool.give_back(conn);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            // The connection is not reused after a failed body.
            Poll::Ready(Some(Err(_))) => self.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn connector() -> TrackingConnector {
        let authority = http::uri::Authority::from_static("127.0.0.1:1");
        let settings = super::super::UpstreamSettings::new("t", http::uri::Scheme::HTTP, authority);
        super::super::tracking_connector(&settings).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server that answers every request on a connection with `body`,
    /// counting the connections it accepted.
    async fn server(body: &'static str) -> (Uri, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}").parse().unwrap_or_else(|e| panic!("{e}")), accepted)
    }

    async fn get(pool: &Arc<Pool>, uri: &Uri) -> Response<UpstreamBody> {
        let conn = match pool.checkout().await {
            Some(conn) => conn,
            None => connect(&connector(), uri.clone()).await.unwrap_or_else(|e| panic!("{e}")),
        };
        let mut conn = conn;
        let req = http::Request::get("/x").body(RequestBody::empty()).unwrap_or_else(|e| panic!("{e}"));
        let resp = conn.sender.try_send_request(req).await.unwrap_or_else(|e| panic!("{}", e.error()));
        pool.lend(conn, resp)
    }

    /// A request whose body is read to the end.
    async fn fetch(pool: &Arc<Pool>, uri: &Uri) -> Bytes {
        let resp = get(pool, uri).await;
        resp.into_body().collect().await.unwrap_or_else(|e| panic!("{e}")).to_bytes()
    }

    #[tokio::test]
    async fn a_connection_returns_when_its_body_ends_and_is_reused() {
        let (uri, accepted) = server("hello").await;
        let pool = Pool::new(8, Duration::from_secs(60));
        let resp = get(&pool, &uri).await;
        assert_eq!(pool.idle_count(), 0, "lent while the body is unread");
        let body = resp.into_body().collect().await.unwrap_or_else(|e| panic!("{e}")).to_bytes();
        assert_eq!(&body[..], b"hello");
        assert_eq!(pool.idle_count(), 1, "back once the body ended");
        for _ in 0..3 {
            fetch(&pool, &uri).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "one connection served all four");
    }

    #[tokio::test]
    async fn a_body_dropped_half_way_takes_its_connection_with_it() {
        let (uri, accepted) = server("hello").await;
        let pool = Pool::new(8, Duration::from_secs(60));
        drop(get(&pool, &uri).await);
        assert_eq!(pool.idle_count(), 0);
        fetch(&pool, &uri).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn idle_connections_past_the_timeout_are_not_used() {
        let (uri, accepted) = server("hello").await;
        let pool = Pool::new(8, Duration::from_millis(1));
        fetch(&pool, &uri).await;
        assert_eq!(pool.idle_count(), 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(pool.checkout().await.is_none(), "expired");
        assert_eq!(pool.idle_count(), 0);
        fetch(&pool, &uri).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_sweeper_closes_expired_idle_connections() {
        let (uri, _) = server("hello").await;
        let pool = Pool::new(8, Duration::from_millis(300));
        fetch(&pool, &uri).await;
        assert_eq!(pool.idle_count(), 1);
        // The sweeper runs every second at most.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(pool.idle_count(), 0, "swept without a checkout");
    }

    #[tokio::test]
    async fn at_most_max_idle_are_kept() {
        let (uri, _) = server("hello").await;
        let pool = Pool::new(2, Duration::from_secs(60));
        let mut open = Vec::new();
        for _ in 0..4 {
            open.push(get(&pool, &uri).await);
        }
        for resp in open {
            resp.into_body().collect().await.unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(pool.idle_count(), 2);
    }
}
