//! How a request leaves: per-worker pools of keep-alive connections to
//! each upstream (plain or TLS, `pool.rs`), with connect and response-head
//! timeouts mapped to the errors of docs/reference.md: Answers, and one retry on a fresh
//! connection when a pooled one turns out to be closed (`retry.rs`).

pub mod conn;
pub mod error;
pub mod pool;
pub mod s3;
pub mod tls;

use std::error::Error as _;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body::Body as _;
use hyper_rustls::{FixedServerNameResolver, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::body::{BodyError, RequestBody};
use crate::metrics::{RouteMetrics, UpstreamErrorKind};
use crate::worker::{self, MAX_WORKERS};
use conn::TrackingConnector;
pub use error::UpstreamError;
use pool::{Pool, UpstreamBody};

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

/// An upstream with its connection pools.
pub struct Upstream {
    pub settings: UpstreamSettings,
    /// `Host` value to send (the upstream's authority, or the bucket's).
    pub host: HeaderValue,
    /// Set for object stores: requests are mapped to keys and re-signed.
    pub s3: Option<s3::S3Target>,
    connector: TrackingConnector,
    /// `scheme://authority`, what the connector dials.
    origin: Uri,
    /// One pool per worker thread, made on first use: a pooled connection
    /// is driven by the thread that uses it.
    pools: Box<[OnceLock<Arc<Pool>>]>,
}

/// The connector for an upstream: plain or TLS, with its timeouts, each
/// connection tracked.
fn tracking_connector(settings: &UpstreamSettings) -> Result<TrackingConnector, String> {
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
    Ok(TrackingConnector(builder.enable_http1().wrap_connector(connector)))
}

/// Why one exchange failed, before it is mapped to an answer.
enum Failure {
    Connect,
    Exchange(hyper::Error),
}

impl Upstream {
    /// Builds the connector (no connection is made yet).
    pub fn new(settings: UpstreamSettings, s3: Option<s3::S3Target>) -> Result<Self, String> {
        let host = match &s3 {
            Some(target) => target.host(settings.authority.as_str()),
            None => HeaderValue::from_str(settings.authority.as_str()),
        }
        .map_err(|e| e.to_string())?;
        let connector = tracking_connector(&settings)?;
        let origin = Uri::builder()
            .scheme(settings.scheme.clone())
            .authority(settings.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| e.to_string())?;
        let pools = (0..MAX_WORKERS).map(|_| OnceLock::new()).collect();
        Ok(Upstream { settings, host, s3, connector, origin, pools })
    }

    /// This worker's pool.
    fn pool(&self) -> &Arc<Pool> {
        self.pools[worker::current()]
            .get_or_init(|| Pool::new(self.settings.pool_max_idle, self.settings.pool_idle_timeout))
    }

    /// Opens a connection. Boxed: a connect and handshake's state is large
    /// and needed once per connection, not once per request.
    async fn connect(&self) -> Result<pool::Conn, Failure> {
        Box::pin(pool::connect(&self.connector, self.origin.clone())).await.map_err(|e| {
            tracing::debug!(upstream = self.settings.name.as_str(), error = %e, "Upstream connect failed");
            Failure::Connect
        })
    }

    /// Sends a request whose URI is already absolute and waits for the
    /// response head, at most `response_timeout` (a retry included); an
    /// answer of ambiguous length is refused. To an object store the head
    /// is signed first and its errors retold (`s3`). Retries are counted on
    /// `metrics`, the route's; `route` names it in logs.
    pub async fn send(
        &self,
        req: Request<RequestBody>,
        route: &str,
        metrics: &RouteMetrics,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let req = match &self.s3 {
            None => req,
            Some(s3) => {
                let (mut parts, body) = req.into_parts();
                s3.sign_for(route, &mut parts)?;
                Request::from_parts(parts, body)
            }
        };
        let resp = match tokio::time::timeout(self.settings.response_timeout, self.exchange(req, metrics)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Ok(resp)) => check_framing(resp),
            Ok(Err(Failure::Connect)) => Err(UpstreamError::Failed(UpstreamErrorKind::Connect)),
            Ok(Err(Failure::Exchange(e))) => Err(classify(&e)),
        }?;
        match &self.s3 {
            None => Ok(resp),
            // Boxed: only object-store routes wait on an error body.
            Some(s3) => Box::pin(s3.answer(route, resp)).await,
        }
    }

    async fn exchange(
        &self,
        mut req: Request<RequestBody>,
        metrics: &RouteMetrics,
    ) -> Result<Response<UpstreamBody>, Failure> {
        origin_form(req.uri_mut());
        // hyper consumes the request, so the head of one that could be
        // retried is kept (its body is empty: nothing else to keep).
        let replay = conn::replayable(req.method(), req.body().is_end_stream()).map(|idempotent| {
            let mut copy = Request::new(());
            *copy.method_mut() = req.method().clone();
            *copy.uri_mut() = req.uri().clone();
            *copy.version_mut() = req.version();
            *copy.headers_mut() = req.headers().clone();
            (copy, idempotent)
        });
        let pool = self.pool();
        let mut conn = match pool.checkout().await {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let (error, unsent) = match conn.sender.try_send_request(req).await {
            Ok(resp) => return Ok(pool.lend(conn, resp)),
            Err(mut e) => {
                let unsent = e.take_message().is_some();
                (e.into_error(), unsent)
            }
        };
        let Some((head, idempotent)) = replay else {
            return Err(Failure::Exchange(error));
        };
        let Some(reason) = conn::retry_reason(&error, unsent, &conn.history, idempotent) else {
            return Err(Failure::Exchange(error));
        };
        metrics.upstream_retry(reason).inc();
        tracing::debug!(
            upstream = self.settings.name.as_str(),
            reason = reason.label(),
            "Retrying on a fresh connection"
        );
        // The fresh connection serves this request only, as a connection
        // that just failed suggests the upstream is restarting.
        let (parts, ()) = head.into_parts();
        let mut fresh = self.connect().await?;
        match fresh.sender.send_request(Request::from_parts(parts, RequestBody::empty())).await {
            Ok(resp) => Ok(pool::once(&fresh, resp)),
            Err(e) => Err(Failure::Exchange(e)),
        }
    }
}

/// The request target as HTTP/1.1 sends it to an origin server: the path
/// and query alone (the upstream's authority is in `Host`).
fn origin_form(uri: &mut Uri) {
    let pq = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    *uri = Uri::from(pq);
}

/// Refuses an answer whose length is ambiguous, as nginx does: both
/// `Content-Length` and `Transfer-Encoding`, `Content-Length`s that differ,
/// or a `Transfer-Encoding` other than a single `chunked`. A proxy and its
/// client could read such a body differently (response smuggling), so it
/// is never relayed: 502, counted as a protocol error.
pub fn check_framing(resp: Response<UpstreamBody>) -> Result<Response<UpstreamBody>, UpstreamError> {
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

fn classify(e: &hyper::Error) -> UpstreamError {
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
    UpstreamError::Failed(UpstreamErrorKind::Protocol)
}
