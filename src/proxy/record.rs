//! A request's accounting: in flight while it runs, then counted and
//! logged exactly once — when it is answered, or when the client goes away
//! first (hyper then drops the handler mid-way, and `Drop` records it as
//! aborted, status 499 as nginx logs it). The access-log line never holds
//! a credential: the query is not logged, path-token segments are redacted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::ORIGIN;
use http::{HeaderValue, Method, Request};

use crate::auth::Carrier;
use crate::auth::kinds::path_token;
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

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.record(499, Outcome::Aborted, "client_closed");
        }
        self.metrics.inflight.dec();
    }
}
