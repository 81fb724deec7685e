//! The accept loops: HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN over TLS),
//! a connection limit, and graceful drain.
//!
//! Thread per core, as nginx and HAProxy do: each worker thread runs its own
//! single-threaded runtime and its own upstream connection pools, so a
//! request and the upstream connection that serves it never hop between
//! threads. One acceptor on the caller's runtime hands each new connection to
//! the worker with the fewest open connections (kernel `SO_REUSEPORT`
//! hashing balances a few dozen connections badly). The caller's runtime
//! also keeps the control plane: admin listener, signals, reloads, JWKS.
//!
//! Shutdown sequence (SIGTERM): `/readyz` turns 503 at once; connections are
//! still accepted for the grace delay so the endpoint can leave the Service;
//! then the listener closes, keep-alive connections are told to finish, and
//! in-flight requests drain up to the deadline.

pub mod coalesce;
pub mod head_errors;
pub mod timeouts;
pub mod tls;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::admin::Lifecycle;
use crate::config::{Config, Limits};
use crate::metrics::Metrics;
use crate::proxy::answers::ResponseBody;
use crate::proxy::{self, ConnInfo, Runtime, Shared};
use crate::splice;
use head_errors::HeadErrors;
use timeouts::{Activity, TimedIo, Tracked};

/// A running tollgate: its addresses and the means to reload and stop it.
pub struct Handle {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shared: Arc<Shared>,
    pub lifecycle: Arc<Lifecycle>,
    shutdown: watch::Sender<bool>,
    workers: Vec<oneshot::Receiver<bool>>,
    admin_task: JoinHandle<()>,
    /// Watches the memory store's revocations file.
    store_task: Option<JoinHandle<()>>,
    tls: Option<Arc<tls::TlsReloader>>,
}

impl Handle {
    /// Starts shutdown; returns at once.
    pub fn begin_shutdown(&self) {
        self.lifecycle.set_draining();
        self.shutdown.send_replace(true);
    }

    /// Waits until every worker has drained. `true` when every in-flight
    /// request finished before the deadline.
    pub async fn wait(self) -> bool {
        let mut clean = true;
        for worker in self.workers {
            clean &= worker.await.unwrap_or(false);
        }
        self.admin_task.abort();
        if let Some(t) = self.store_task {
            t.abort();
        }
        clean
    }

    /// `begin_shutdown` then `wait`.
    pub async fn shutdown(self) -> bool {
        self.begin_shutdown();
        self.wait().await
    }

    /// Swaps in a new configuration; requests in flight finish on the old one.
    /// Listener addresses, worker count and TLS files are not changed by a
    /// reload.
    pub fn swap(&self, config: Config) {
        self.shared.runtime.store(Arc::new(Runtime::new(config)));
    }

    /// Re-reads the TLS certificate now (otherwise polled).
    pub fn reload_tls(&self) -> Result<bool, String> {
        match &self.tls {
            Some(t) => t.reload_if_changed(),
            None => Ok(false),
        }
    }
}

/// A bind failure that names the setting and its address.
fn bind_error(setting: &str, addr: SocketAddr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("`{setting}` address {addr}: {e}"))
}

/// Binds the listeners, starts the worker threads, and serves until
/// shutdown; the acceptor and admin listener run on the caller's runtime.
pub async fn start(config: Config, metrics: Arc<Metrics>) -> io::Result<Handle> {
    let listener = TcpListener::bind(config.listen).await.map_err(|e| bind_error("listen", config.listen, e))?;
    let admin = TcpListener::bind(config.admin).await.map_err(|e| bind_error("admin", config.admin, e))?;
    let proxy_addr = listener.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let limits = config.limits;
    let shutdown_settings = config.shutdown;
    let worker_count = config.workers.max(1);
    let tls = match &config.tls {
        Some(settings) => Some(Arc::new(tls::TlsReloader::new(settings.clone()).map_err(io::Error::other)?)),
        None => None,
    };
    let store = crate::store::Store::new(&config.store, metrics.store.clone()).map_err(io::Error::other)?;
    let store = Arc::new(store);
    let store_task = store.memory().and_then(|m| m.revocations_file().cloned()).map(|path| {
        let store = store.clone();
        tokio::spawn(crate::store::revocations::watch(path, move || {
            if let Some(m) = store.memory() {
                m.reload_revocations();
            }
        }))
    });
    let shared = Arc::new(Shared { runtime: ArcSwap::from_pointee(Runtime::new(config)), metrics, limits, store });
    let lifecycle = Arc::new(Lifecycle::default());
    let (tx, rx) = watch::channel(false);
    let waits_for_keys = shared.runtime.load().config.jwks.iter().any(|j| j.required_for_ready);
    lifecycle.set_ready(!waits_for_keys);

    let admin_task = tokio::spawn(crate::admin::serve(admin, shared.clone(), lifecycle.clone()));
    if let Some(t) = &tls {
        tokio::spawn(tls::watch(t.clone(), rx.clone()));
    }
    let mut slots = Vec::with_capacity(worker_count);
    let mut workers = Vec::with_capacity(worker_count);
    for id in 0..worker_count {
        let (conns, incoming) = mpsc::unbounded_channel();
        let (done, finished) = oneshot::channel();
        let open = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            shared: shared.clone(),
            limits,
            tls: tls.clone(),
            drain: shutdown_settings.drain_timeout,
            open: open.clone(),
        };
        std::thread::Builder::new().name(format!("tollgate-worker-{id}")).spawn(move || {
            crate::worker::set(id);
            let clean = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(worker.serve(incoming)),
                Err(e) => {
                    tracing::error!(error = %e, "Worker cannot start its runtime");
                    false
                }
            };
            let _ = done.send(clean);
        })?;
        slots.push(Slot { conns, open });
        workers.push(finished);
    }
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::spawn(accept(listener, slots, permits, limits.max_connections, rx, shutdown_settings.grace));
    let handle =
        Handle { proxy_addr, admin_addr, shared, lifecycle, shutdown: tx, workers, admin_task, store_task, tls };
    start_key_refreshers(&handle, None);
    Ok(handle)
}

/// Starts a refresher for each JWKS URL of the running configuration and
/// stops those of `old`.
pub fn start_key_refreshers(handle: &Handle, old: Option<&crate::config::Config>) {
    use crate::auth::jwks;
    if let Some(old) = old {
        old.jwks.iter().for_each(|s| s.set.stop());
    }
    let shared = handle.shared.clone();
    let lifecycle = handle.lifecycle.clone();
    let update_readiness = move || lifecycle.set_ready(jwks::all_ready(&shared.runtime.load().config.jwks));
    update_readiness();
    let shared = handle.shared.clone();
    let hooks = jwks::Hooks {
        keys_changed: Arc::new(move || shared.runtime.load().cache.invalidate_all()),
        attempted: Arc::new(update_readiness),
        fetches: handle.shared.metrics.jwks_fetches.clone(),
        last_success: handle.shared.metrics.jwks_age.clone(),
    };
    for spec in &handle.shared.runtime.load().config.jwks {
        tokio::spawn(jwks::run(spec.clone(), hooks.clone()));
    }
}

/// A connection on its way to a worker, with its share of the limit.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
}

/// The acceptor's view of a worker.
struct Slot {
    conns: mpsc::UnboundedSender<Accepted>,
    /// Connections the worker holds open now.
    open: Arc<AtomicUsize>,
}

/// Accepts until the grace delay after shutdown has passed, handing each
/// connection to the least busy worker; then closes the listener (which
/// tells the workers to drain).
async fn accept(
    listener: TcpListener,
    slots: Vec<Slot>,
    permits: Arc<Semaphore>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let grace_over = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
    tokio::pin!(grace_over);
    let mut stopping = false;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "Accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(limit = max_connections, "Connection limit reached; closing new connection");
                    continue;
                };
                let Ok(stream) = stream.into_std() else { continue };
                let Some(slot) = slots.iter().min_by_key(|s| s.open.load(Ordering::Relaxed)) else { continue };
                slot.open.fetch_add(1, Ordering::Relaxed);
                if slot.conns.send(Accepted { stream, peer, permit }).is_err() {
                    slot.open.fetch_sub(1, Ordering::Relaxed);
                    tracing::error!("A worker is gone; connection dropped");
                }
            }
            _ = shutdown.changed(), if !stopping => {
                tracing::info!(grace_ms = grace.as_millis() as u64, "Shutdown requested; readiness is now 503");
                stopping = true;
                grace_over.as_mut().reset(tokio::time::Instant::now() + grace);
            }
            () = &mut grace_over, if stopping => break,
        }
    }
    drop(listener);
    tracing::info!("Listener closed; draining");
}

/// The HTTP/1 and HTTP/2 connection builders with tollgate's limits. The
/// protocol is chosen per connection (ALPN, or the HTTP/2 preface on a
/// plain port), so each connection's task holds one protocol's state only:
/// hyper-util's `auto` connection holds room for both, about 4 KB more per
/// idle connection (BENCHMARKS.md, "Idle connections").
pub struct Builders {
    pub h1: http1::Builder,
    pub h2: http2::Builder<TokioExecutor>,
}

/// The builders with tollgate's limits.
pub fn builders(limits: &Limits) -> Builders {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        // `timeouts::TimedIo` enforces the head and idle deadlines; hyper's
        // own head timer would also run while idle, and cost a timer
        // operation per request.
        .header_read_timeout(None)
        .max_headers(limits.max_headers)
        // The buffer must hold the longest request head we answer properly
        // (414/431 come from the service, with exact limits).
        .max_buf_size(limits.max_header_bytes + limits.max_uri_bytes + 64 * 1024)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes + limits.max_uri_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    Builders { h1, h2 }
}

/// Whether a plain connection speaks HTTP/2 with prior knowledge, from its
/// first bytes (peeked, not read): `None` when it closes, sends nothing
/// within `idle`, or leaves the preface unfinished for `head`.
async fn speaks_h2(stream: &TcpStream, idle: Duration, head: Duration) -> Option<bool> {
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    tokio::time::timeout(idle, stream.readable()).await.ok()?.ok()?;
    let sniff = async {
        let mut bytes = [0u8; 24];
        let mut wait = Duration::from_millis(1);
        loop {
            let n = stream.peek(&mut bytes).await.ok()?;
            if n == 0 {
                return None;
            }
            if bytes[..n] != PREFACE[..n] {
                return Some(false);
            }
            if n == PREFACE.len() {
                return Some(true);
            }
            // Part of the preface so far (a peek does not consume, so the
            // socket stays readable): look again, less and less often.
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(100));
        }
    };
    tokio::time::timeout(head, sniff).await.ok().flatten()
}

/// One worker thread's share of the proxy.
struct Worker {
    shared: Arc<Shared>,
    limits: Limits,
    tls: Option<Arc<tls::TlsReloader>>,
    drain: Duration,
    open: Arc<AtomicUsize>,
}

impl Worker {
    /// Serves the connections handed over until the acceptor stops, then
    /// drains. `true` when every connection finished before the deadline.
    async fn serve(self, mut incoming: mpsc::UnboundedReceiver<Accepted>) -> bool {
        let Worker { shared, limits, tls, drain, open } = self;
        let builders = Arc::new(builders(&limits));
        let graceful = GracefulShutdown::new();
        while let Some(Accepted { stream, peer, permit }) = incoming.recv().await {
            let Ok(stream) = TcpStream::from_std(stream) else {
                open.fetch_sub(1, Ordering::Relaxed);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let activity = Arc::new(Activity::default());
            let builders = builders.clone();
            let watcher = graceful.watcher();
            let shared = shared.clone();
            // Released when the connection ends, however it ends.
            let done = OpenGuard(open.clone(), permit);
            let (head_timeout, idle_timeout) = (limits.header_read_timeout, limits.idle_timeout);
            match &tls {
                None => {
                    tokio::spawn(async move {
                        let Some(h2) = speaks_h2(&stream, idle_timeout, head_timeout).await else { return drop(done) };
                        let outlet = Arc::new(splice::Outlet::default());
                        let info = ConnInfo { peer, tls: false, outlet: Some(outlet.clone()) };
                        let service = service(shared.clone(), info, activity.clone());
                        let stream = splice::SpliceOut::new(stream, outlet);
                        let stream = TimedIo::new(stream, activity.clone(), head_timeout, idle_timeout);
                        if h2 {
                            activity.set_http2();
                            let conn = builders.h2.serve_connection(TokioIo::new(stream), service);
                            // Boxed: HTTP/2's state is large, and only these
                            // connections should carry it.
                            let _ = Box::pin(watcher.watch(conn)).await;
                        } else {
                            let stream = HeadErrors::new(stream, activity, shared);
                            let _ = watcher.watch(builders.h1.serve_connection(TokioIo::new(stream), service)).await;
                        }
                        drop(done);
                    });
                }
                Some(tls) => {
                    let info = ConnInfo { peer, tls: true, outlet: None };
                    let service = service(shared.clone(), info, activity.clone());
                    let stream = TimedIo::new(stream, activity.clone(), head_timeout, idle_timeout);
                    let acceptor = tls.acceptor();
                    tokio::spawn(async move {
                        let handshake = tokio::time::timeout(head_timeout, acceptor.accept(stream)).await;
                        if let Ok(Ok(stream)) = handshake {
                            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                                activity.set_http2();
                                let stream = coalesce::Coalesce::new(stream);
                                let conn = builders.h2.serve_connection(TokioIo::new(stream), service);
                                let _ = Box::pin(watcher.watch(conn)).await;
                            } else {
                                let stream = HeadErrors::new(stream, activity, shared);
                                let conn = builders.h1.serve_connection(TokioIo::new(stream), service);
                                let _ = watcher.watch(conn).await;
                            }
                        }
                        drop(done);
                    });
                }
            }
        }
        tokio::select! {
            () = graceful.shutdown() => true,
            () = tokio::time::sleep(drain) => {
                tracing::warn!(deadline_ms = drain.as_millis() as u64, "Drain deadline reached; closing remaining connections");
                false
            }
        }
    }
}

/// Counts a connection out of its worker and (by dropping the permit) the
/// global limit.
struct OpenGuard(Arc<AtomicUsize>, #[allow(dead_code)] OwnedSemaphorePermit);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The service for one connection: each request is counted as started, and
/// as finished when its response body is dropped (see `timeouts`).
fn service(
    shared: Arc<Shared>,
    info: ConnInfo,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<Tracked<ResponseBody>>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Tracked<ResponseBody>>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |req| {
        let shared = shared.clone();
        let info = info.clone();
        let guard = activity.start();
        // Boxed: the request's future is large (every stage's state), and
        // hyper moves it into each HTTP/2 stream's task; a pointer moves
        // for free, and the task allocation stays small.
        Box::pin(async move {
            let resp = proxy::handle(&shared, req, info).await;
            Ok(resp.map(|body| Tracked::new(body, guard)))
        })
    })
}
