//! How a request leaves: one pooled hyper client per upstream (plain or
//! TLS), with connect and response-head timeouts mapped to the errors of
//! SPEC §4, and one retry on a fresh connection when a pooled one turns out
//! to be closed (`retry.rs`).

pub mod retry;
pub mod s3;
pub mod tls;

use std::cell::Cell;
use std::error::Error as _;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::metrics::{RouteMetrics, UpstreamErrorKind};
use crate::proxy::body::{BodyError, RequestBody};
use retry::TrackingConnector;

/// Settings of one upstream, as compiled from the config.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub name: String,
    pub scheme: Scheme,
    pub authority: Authority,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    /// Send the client's Host instead of the upstream's.
    pub preserve_host: bool,
    /// CA bundle for https upstreams (default: system roots).
    pub ca_file: Option<PathBuf>,
    /// TLS server name to send and verify (default: the URL's host).
    pub server_name: Option<String>,
}

impl UpstreamSettings {
    /// Defaults for an upstream at `scheme://authority`.
    pub fn new(name: impl Into<String>, scheme: Scheme, authority: Authority) -> Self {
        UpstreamSettings {
            name: name.into(),
            scheme,
            authority,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle: 256,
            preserve_host: false,
            ca_file: None,
            server_name: None,
        }
    }
}

/// Why an exchange with the upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Maps to 502 `upstream_unavailable`.
    Failed(UpstreamErrorKind),
    /// Maps to 504 `upstream_timeout`.
    Timeout,
    /// The client's body went over the route's limit while streaming (413).
    BodyTooLarge,
    /// The client's body broke off; nothing to answer.
    ClientAborted,
}

/// An upstream with its connection pool.
pub struct Upstream {
    pub settings: UpstreamSettings,
    /// `Host` value to send (the upstream's authority, or the bucket's).
    pub host: HeaderValue,
    /// Set for object stores: requests are mapped to keys and re-signed.
    pub s3: Option<s3::S3Target>,
    connector: TrackingConnector,
    /// One pool per worker thread, made on first use: a pooled connection
    /// is driven by the thread that uses it.
    clients: Box<[OnceLock<UpstreamClient>]>,
    /// Without a pool: every request on a new connection, used for retries.
    fresh: UpstreamClient,
}

type UpstreamClient = Client<TrackingConnector, RequestBody>;

/// Most worker threads with pools of their own (more share them).
pub const MAX_POOLS: usize = 64;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as worker `id` (selects its connection pools).
pub fn set_worker(id: usize) {
    WORKER.with(|w| w.set(id % MAX_POOLS));
}

/// The current thread's worker number, `0..MAX_POOLS` (0 off the workers):
/// selects per-worker connections (here, and the store's).
pub fn worker() -> usize {
    WORKER.with(Cell::get)
}

impl Upstream {
    /// Builds the pooled client (no connection is made yet).
    pub fn new(settings: UpstreamSettings, s3: Option<s3::S3Target>) -> Result<Self, String> {
        let host = match &s3 {
            Some(target) => target.host(settings.authority.as_str()),
            None => HeaderValue::from_str(settings.authority.as_str()),
        }
        .map_err(|e| e.to_string())?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        connector.enforce_http(false);
        let tls = if settings.scheme == Scheme::HTTPS {
            tls::client_config(settings.ca_file.as_deref())?
        } else {
            tls::client_config_without_roots()?
        };
        let builder = HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        let builder = match &settings.server_name {
            Some(name) => {
                let name = rustls_pki_types::ServerName::try_from(name.clone())
                    .map_err(|_| format!("{name:?} is not a valid TLS server name"))?;
                builder.with_server_name_resolver(FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = TrackingConnector(builder.enable_http1().wrap_connector(connector));
        let clients = (0..MAX_POOLS).map(|_| OnceLock::new()).collect();
        // A pool of size 0 is no pool at all in hyper-util: each request
        // connects, and the connection closes after its response.
        let fresh = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .timer(TokioTimer::new())
            .set_host(false)
            .retry_canceled_requests(false)
            .build(connector.clone());
        Ok(Upstream { settings, host, s3, connector, clients, fresh })
    }

    /// This worker's pooled client.
    fn client(&self) -> &UpstreamClient {
        let slot = &self.clients[worker()];
        slot.get_or_init(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(self.settings.pool_idle_timeout)
                .pool_max_idle_per_host(self.settings.pool_max_idle)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .set_host(false)
                // hyper-util would resend an unsent request on another
                // pooled connection, uncounted and as often as it likes;
                // `send` does it once, on a fresh one.
                .retry_canceled_requests(false)
                .build(self.connector.clone())
        })
    }

    /// Sends a request whose URI is already absolute and waits for the
    /// response head, at most `response_timeout` (a retry included).
    /// Retries are counted on `metrics`, the route's.
    pub async fn send(
        &self,
        req: Request<RequestBody>,
        metrics: &RouteMetrics,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.settings.response_timeout, self.exchange(req, metrics)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }

    async fn exchange(
        &self,
        req: Request<RequestBody>,
        metrics: &RouteMetrics,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        // hyper consumes the request, so the head of one that could be
        // retried is kept (its body is empty: nothing else to keep).
        let replay = retry::replayable(req.method(), req.body().is_end_stream()).map(|idempotent| {
            let mut copy = Request::new(());
            *copy.method_mut() = req.method().clone();
            *copy.uri_mut() = req.uri().clone();
            *copy.version_mut() = req.version();
            *copy.headers_mut() = req.headers().clone();
            (copy, idempotent)
        });
        let e = match self.client().request(req).await {
            Ok(resp) => return Ok(resp),
            Err(e) => e,
        };
        let Some((head, idempotent)) = replay else {
            return Err(e);
        };
        let Some(reason) = retry::retry_reason(&e, idempotent) else {
            return Err(e);
        };
        metrics.upstream_retry(reason).inc();
        tracing::debug!(
            upstream = self.settings.name.as_str(),
            reason = reason.label(),
            "Retrying on a fresh connection"
        );
        let (parts, ()) = head.into_parts();
        self.fresh.request(Request::from_parts(parts, RequestBody::empty())).await
    }
}

/// Refuses an answer whose length is ambiguous, as nginx does: both
/// `Content-Length` and `Transfer-Encoding`, `Content-Length`s that differ,
/// or a `Transfer-Encoding` other than a single `chunked`. A proxy and its
/// client could read such a body differently (response smuggling), so it
/// is never relayed: 502, counted as a protocol error.
pub fn check_framing(resp: Response<Incoming>) -> Result<Response<Incoming>, UpstreamError> {
    let headers = resp.headers();
    let mut te = headers.get_all(TRANSFER_ENCODING).iter();
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    let ok = match (te.next(), te.next()) {
        (None, _) => {
            let first = lengths.next();
            lengths.all(|v| Some(v) == first)
        }
        (Some(v), None) => v.as_bytes().eq_ignore_ascii_case(b"chunked") && lengths.next().is_none(),
        (Some(_), Some(_)) => false,
    };
    if ok { Ok(resp) } else { Err(UpstreamError::Failed(UpstreamErrorKind::Protocol)) }
}

fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(body) = err.downcast_ref::<BodyError>() {
            return match body {
                BodyError::TooLarge => UpstreamError::BodyTooLarge,
                BodyError::Client(_) => UpstreamError::ClientAborted,
            };
        }
        source = err.source();
    }
    if e.is_connect() {
        UpstreamError::Failed(UpstreamErrorKind::Connect)
    } else {
        UpstreamError::Failed(UpstreamErrorKind::Protocol)
    }
}
