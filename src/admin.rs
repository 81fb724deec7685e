//! The admin listener: `/metrics`, `/healthz` (the process serves),
//! `/readyz` (start-up done and not shutting down; with the store's state
//! when some route needs the store). Kept off the proxy port
//! so probes and scrapes never pass through authentication or routing.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::proxy::Shared;
use crate::proxy::answers::ResponseBody;
use crate::proxy::answers::error_response;
use crate::server::timeouts::{Activity, TimedIo, Tracked};

/// Readiness, as `/readyz` reports it.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Every start-up condition holds (listeners bound, required JWKS loaded).
    ready: AtomicBool,
    /// Shutdown has begun.
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Shutdown has begun: `/readyz` turns 503 at once.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

/// Most admin connections open at once (probes and scrapes need a few).
const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Serves the admin endpoints until the task is aborted. Connections are
/// capped and timed out like the proxy's, so this port cannot be used to
/// exhaust the process's file descriptors.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, lifecycle: Arc<Lifecycle>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let shared = shared.clone();
        let lifecycle = lifecycle.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let activity = Arc::new(Activity::default());
            let io = TimedIo::new(stream, activity.clone(), Duration::from_secs(10), Duration::from_secs(30));
            let service = service_fn(move |req| {
                let guard = activity.start();
                let (shared, lifecycle) = (shared.clone(), lifecycle.clone());
                async move {
                    let resp = answer(&req, &shared, &lifecycle).await.map(|body| Tracked::new(body, guard));
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = builder.serve_connection(TokioIo::new(io), service).await;
            drop(permit);
        });
    }
}

async fn answer(req: &Request<Incoming>, shared: &Shared, lifecycle: &Lifecycle) -> Response<ResponseBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error_response(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut resp = Response::new(ResponseBody::full(shared.metrics.render()));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            resp
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if lifecycle.is_ready() && shared.runtime.load().config.needs_store() => {
            ready_with_store(shared).await
        }
        "/readyz" if lifecycle.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" if lifecycle.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        _ => error_response(StatusCode::NOT_FOUND, "no_route"),
    }
}

/// Readiness when some route needs the store: the store is pinged (within
/// its timeout) and reported. Its failure makes the answer 503 only when
/// the store is `required_for_ready`: every replica shares one store, so
/// taking them all out of the Service would stop the routes that need no
/// store too.
async fn ready_with_store(shared: &Shared) -> Response<ResponseBody> {
    let store = &shared.store;
    match store.ping().await {
        Ok(()) => text(
            StatusCode::OK,
            if store.kind() == "redis" { "ready\nstore: redis ok\n" } else { "ready\nstore: memory\n" },
        ),
        Err(_) if store.required_for_ready() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "not ready\nstore: redis unreachable\n")
        }
        Err(_) => text(StatusCode::OK, "ready\nstore: redis unreachable\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
