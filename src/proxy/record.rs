//! A request's accounting: in flight while it runs, then counted and
//! logged exactly once — when it is answered, or when the client goes away
//! first (hyper then drops the handler mid-way, and `Drop` records it as
//! aborted, status 499 as nginx logs it). The access-log line never holds
//! a credential: the query is not logged, path-token segments are redacted.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::header::ORIGIN;
use http::{HeaderValue, Method, Request};

use crate::auth::kinds::path_token;
use crate::auth::{Carrier, Grant};
use crate::config::Config;
use crate::metrics::{Metrics, Outcome, RouteMetrics, UNMATCHED};
use crate::routes::Route;

/// A request being handled.
pub struct InFlight<'a> {
    metrics: &'a Metrics,
    start: Instant,
    method: Method,
    /// The raw path with path tokens redacted, kept only when the access
    /// log is on.
    path: Option<String>,
    peer: SocketAddr,
    pub route: Option<Arc<Route>>,
    pub carrier: Option<Carrier>,
    /// The request's `Origin`, for routes with CORS rules.
    pub origin: Option<HeaderValue>,
    answered: bool,
}

impl<'a> InFlight<'a> {
    pub fn new<B>(metrics: &'a Metrics, req: &Request<B>, config: &Config, peer: SocketAddr) -> Self {
        metrics.inflight.inc();
        let redacted = |path| path_token::redact(path, &config.path_token_markers).into_owned();
        InFlight {
            metrics,
            start: Instant::now(),
            method: req.method().clone(),
            path: config.log.access_log.then(|| redacted(req.uri().path())),
            peer,
            route: None,
            carrier: None,
            origin: req.headers().get(ORIGIN).cloned(),
            answered: false,
        }
    }

    /// The counters of the request's route (or of no route).
    pub fn route_metrics(&self) -> &RouteMetrics {
        self.route.as_ref().map_or(self.metrics.unmatched(), |r| &r.metrics)
    }

    /// Counts and logs the request: outcome, duration, one access-log line.
    pub fn record(&mut self, status: u16, outcome: Outcome, reason: &str) {
        self.answered = true;
        let metrics = self.route_metrics();
        metrics.outcome(outcome).inc();
        let elapsed = self.start.elapsed();
        metrics.duration().observe(elapsed.as_secs_f64());
        if let Some(path) = &self.path {
            tracing::info!(
                target: "tollgate::access",
                route = self.route.as_ref().map_or(UNMATCHED, |r| r.name.as_str()),
                method = self.method.as_str(),
                path = path.as_str(),
                status,
                outcome = outcome.label(),
                reason,
                carrier = self.carrier.map_or("", Carrier::label),
                client = %self.peer.ip(),
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "Request"
            );
        }
    }
}

/// What a download record says about a request, taken at its answer's
/// head; bytes and completion come when the body ends.
pub struct Download {
    pub route: Arc<Route>,
    /// The credential's id, or `digest:` and a prefix of its fingerprint.
    pub credential: Option<String>,
    pub subject: Option<Arc<str>>,
    pub client: IpAddr,
    pub status: u16,
    pub start: Instant,
}

impl Download {
    pub fn new(route: Arc<Route>, grant: Option<&Grant>, client: IpAddr, status: u16, start: Instant) -> Self {
        let credential =
            grant.and_then(|g| {
                g.facts.id.as_deref().map(str::to_owned).or_else(|| {
                    g.facts.fingerprint.map(|f| format!("digest:{}", crate::normalize::encode_hex(&f[..8])))
                })
            });
        let subject = grant.and_then(|g| g.facts.subject.clone());
        Download { route, credential, subject, client, status, start }
    }

    /// Writes the record, on the `tollgate::download` target, once the
    /// body ended (`complete`) or broke off.
    pub fn write(self, bytes: u64, complete: bool) {
        tracing::info!(
            target: "tollgate::download",
            route = self.route.name.as_str(),
            credential = self.credential.as_deref().unwrap_or(""),
            sub = self.subject.as_deref().unwrap_or(""),
            client = %self.client,
            status = self.status,
            bytes,
            complete,
            duration_ms = self.start.elapsed().as_secs_f64() * 1000.0,
            "Download"
        );
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.record(499, Outcome::Aborted, "client_closed");
        }
        self.metrics.inflight.dec();
    }
}
