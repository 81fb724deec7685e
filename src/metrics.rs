//! Prometheus metrics (SPEC §8), owned by one `Metrics` value registered on
//! an injected `Registry` (a fresh one per test; no global registry).
//!
//! Labels are bounded by construction: route names come from the config,
//! outcomes and reasons from closed enums. Per-route handles are resolved
//! once when a configuration is compiled, so the request path increments
//! atomics instead of hashing label values.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Route label used for requests that matched no route.
pub const UNMATCHED: &str = "(none)";

/// How a request ended, as counted in `tollgate_requests_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Verified (or public) and answered by the upstream.
    Forwarded,
    /// Refused by authentication (401/403, and 400 for malformed credentials).
    Denied,
    /// Path not in normal form, or another malformed request (400).
    Malformed,
    /// No route (404).
    NoRoute,
    /// Method not allowed on the route (405).
    MethodNotAllowed,
    /// Request body over the route's limit (413).
    TooLarge,
    /// The upstream failed or timed out (502/504).
    UpstreamError,
    /// The client closed the connection before the answer (logged as 499).
    Aborted,
    /// Answered by tollgate itself, as designed: a CORS preflight, a
    /// cookie-exchange redirect.
    Answered,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Forwarded,
        Outcome::Denied,
        Outcome::Malformed,
        Outcome::NoRoute,
        Outcome::MethodNotAllowed,
        Outcome::TooLarge,
        Outcome::UpstreamError,
        Outcome::Aborted,
        Outcome::Answered,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Denied => "denied",
            Outcome::Malformed => "malformed",
            Outcome::NoRoute => "no_route",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::TooLarge => "too_large",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Aborted => "client_aborted",
            Outcome::Answered => "answered",
        }
    }
}

/// Kinds of upstream failure, `tollgate_upstream_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// Could not connect (refused, unreachable, DNS, TLS handshake).
    Connect,
    /// No response head within the timeout.
    Timeout,
    /// Reset, malformed response, or the body stream broke.
    Protocol,
    /// The object store refused tollgate's own credentials.
    Credentials,
}

impl UpstreamErrorKind {
    pub const ALL: [UpstreamErrorKind; 4] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Protocol,
        UpstreamErrorKind::Credentials,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Protocol => "protocol",
            UpstreamErrorKind::Credentials => "credentials",
        }
    }
}

/// Why a request was sent to the upstream a second time,
/// `tollgate_upstream_retries_total{reason}` (see `upstream::retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The pooled connection was closed (EOF) before any response byte.
    Closed,
    /// The pooled connection was reset (or the write hit a broken pipe).
    Reset,
}

impl RetryReason {
    pub const ALL: [RetryReason; 2] = [RetryReason::Closed, RetryReason::Reset];

    pub fn label(self) -> &'static str {
        match self {
            RetryReason::Closed => "closed",
            RetryReason::Reset => "reset",
        }
    }
}

/// What the use-limit and revocation stage decided (SPEC §11),
/// `tollgate_use_limit_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseResult {
    /// A new use began (the first successful answer opens it).
    FirstUse,
    /// Inside the grace window of a use: the same use, not counted again.
    SameUse,
    /// HEAD: looked at, never counted.
    NotCounted,
    /// Used up: 410.
    Replayed,
    /// Revoked: 401/403.
    Revoked,
    /// The answer was not a success, so the use was given back.
    GivenBack,
    /// A use-limited route got a credential without an id: 403.
    NoId,
    /// The store failed and the route fails closed: 503.
    FailClosed,
    /// The store failed and the route opted to fail open: served unchecked.
    FailOpen,
}

impl UseResult {
    pub const ALL: [UseResult; 9] = [
        UseResult::FirstUse,
        UseResult::SameUse,
        UseResult::NotCounted,
        UseResult::Replayed,
        UseResult::Revoked,
        UseResult::GivenBack,
        UseResult::NoId,
        UseResult::FailClosed,
        UseResult::FailOpen,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UseResult::FirstUse => "first_use",
            UseResult::SameUse => "same_use",
            UseResult::NotCounted => "not_counted",
            UseResult::Replayed => "replayed",
            UseResult::Revoked => "revoked",
            UseResult::GivenBack => "given_back",
            UseResult::NoId => "no_id",
            UseResult::FailClosed => "fail_closed",
            UseResult::FailOpen => "fail_open",
        }
    }
}

/// Store operations, `tollgate_store_errors_total{op}` and
/// `tollgate_store_duration_seconds{op}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// Count a use and check a revocation by id (one round trip).
    Admit,
    /// Look up a subject's revocation.
    Subject,
    /// Give a failed use back.
    GiveBack,
    /// Write a revocation.
    Revoke,
    /// Readiness check.
    Ping,
}

impl StoreOp {
    pub const ALL: [StoreOp; 5] = [StoreOp::Admit, StoreOp::Subject, StoreOp::GiveBack, StoreOp::Revoke, StoreOp::Ping];

    pub fn label(self) -> &'static str {
        match self {
            StoreOp::Admit => "admit",
            StoreOp::Subject => "subject",
            StoreOp::GiveBack => "give_back",
            StoreOp::Revoke => "revoke",
            StoreOp::Ping => "ping",
        }
    }
}

/// Per-operation store handles, resolved once.
#[derive(Clone)]
pub struct StoreMetrics {
    errors: Vec<IntCounter>,
    duration: Vec<Histogram>,
}

impl StoreMetrics {
    pub fn error(&self, op: StoreOp) -> &IntCounter {
        &self.errors[op as usize]
    }

    pub fn duration(&self, op: StoreOp) -> &Histogram {
        &self.duration[op as usize]
    }
}

/// A route's `tollgate_use_limit_total` handles, one per [`UseResult`].
#[derive(Clone)]
pub struct UseCounters(Vec<IntCounter>);

impl UseCounters {
    pub fn get(&self, result: UseResult) -> &IntCounter {
        &self.0[result as usize]
    }
}

/// Cache hit and miss counters.
#[derive(Clone)]
pub struct CacheCounters {
    pub hit: IntCounter,
    pub miss: IntCounter,
}

/// Handles for one route, resolved once per compiled configuration.
#[derive(Clone)]
pub struct RouteMetrics {
    outcomes: Vec<IntCounter>,
    denied: Vec<IntCounter>,
    upstream_errors: Vec<IntCounter>,
    upstream_retries: Vec<IntCounter>,
    duration: Histogram,
}

impl RouteMetrics {
    pub fn outcome(&self, outcome: Outcome) -> &IntCounter {
        &self.outcomes[outcome as usize]
    }

    /// The denial counter for the reason at `index` of the list the
    /// route was made with.
    pub fn denied(&self, index: usize) -> Option<&IntCounter> {
        self.denied.get(index)
    }

    pub fn upstream_error(&self, kind: UpstreamErrorKind) -> &IntCounter {
        &self.upstream_errors[kind as usize]
    }

    pub fn upstream_retry(&self, reason: RetryReason) -> &IntCounter {
        &self.upstream_retries[reason as usize]
    }

    pub fn duration(&self) -> &Histogram {
        &self.duration
    }
}

/// Every metric tollgate exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    denied: IntCounterVec,
    duration: HistogramVec,
    upstream_errors: IntCounterVec,
    upstream_retries: IntCounterVec,
    pub cache: CacheCounters,
    pub inflight: IntGauge,
    /// Body bytes moved socket to socket (`crate::splice`).
    pub spliced_bytes: IntCounter,
    reloads: IntCounterVec,
    pub jwks_fetches: IntCounterVec,
    pub jwks_age: IntGaugeVec,
    unmatched: RouteMetrics,
    pub store: StoreMetrics,
    use_limit: IntCounterVec,
}

/// Store round trips are sub-millisecond on a LAN; the top buckets show
/// timeouts.
const STORE_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

impl Metrics {
    /// Registers every metric on `registry`.
    pub fn new(registry: Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("tollgate_requests_total", "Requests handled, by route and outcome."),
            &["route", "outcome"],
        )?;
        let denied = IntCounterVec::new(
            Opts::new("tollgate_auth_denied_total", "Requests refused by authentication, by reason."),
            &["route", "reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("tollgate_request_duration_seconds", "Time from request head to response head.")
                .buckets(DURATION_BUCKETS.to_vec()),
            &["route"],
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new("tollgate_upstream_errors_total", "Failed exchanges with upstreams, by kind."),
            &["route", "kind"],
        )?;
        let upstream_retries = IntCounterVec::new(
            Opts::new(
                "tollgate_upstream_retries_total",
                "Requests sent again on a fresh connection after a pooled one failed unanswered, by reason.",
            ),
            &["route", "reason"],
        )?;
        let cache =
            IntCounterVec::new(Opts::new("tollgate_verify_cache_total", "Verification cache lookups."), &["result"])?;
        let inflight = IntGauge::new("tollgate_inflight_requests", "Requests being handled now.")?;
        let spliced_bytes = IntCounter::new(
            "tollgate_spliced_bytes_total",
            "Response body bytes moved from the upstream socket to the client's with splice(2), never copied through tollgate.",
        )?;
        let reloads = IntCounterVec::new(
            Opts::new("tollgate_config_reloads_total", "Configuration reloads, by result."),
            &["result"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("tollgate_build_info", "Build information; the value is always 1."),
            &["version"],
        )?;
        let jwks_fetches = IntCounterVec::new(
            Opts::new("tollgate_jwks_fetches_total", "JWKS fetches, by key set and result."),
            &["keyset", "result"],
        )?;
        let jwks_age = IntGaugeVec::new(
            Opts::new(
                "tollgate_jwks_last_success_timestamp_seconds",
                "Unix time of the last successful JWKS fetch, by key set.",
            ),
            &["keyset"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(denied.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(upstream_retries.clone()))?;
        registry.register(Box::new(cache.clone()))?;
        registry.register(Box::new(inflight.clone()))?;
        registry.register(Box::new(spliced_bytes.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        registry.register(Box::new(jwks_fetches.clone()))?;
        registry.register(Box::new(jwks_age.clone()))?;
        let use_limit = IntCounterVec::new(
            Opts::new("tollgate_use_limit_total", "Use-limit and revocation decisions, by route and result."),
            &["route", "result"],
        )?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "tollgate_store_errors_total",
                "Failed or timed-out operations on the shared store, by operation.",
            ),
            &["op"],
        )?;
        let store_duration = HistogramVec::new(
            HistogramOpts::new("tollgate_store_duration_seconds", "Time of operations on the shared store.")
                .buckets(STORE_BUCKETS.to_vec()),
            &["op"],
        )?;
        registry.register(Box::new(use_limit.clone()))?;
        registry.register(Box::new(store_errors.clone()))?;
        registry.register(Box::new(store_duration.clone()))?;
        let store = StoreMetrics {
            errors: StoreOp::ALL.iter().map(|op| store_errors.with_label_values(&[op.label()])).collect(),
            duration: StoreOp::ALL.iter().map(|op| store_duration.with_label_values(&[op.label()])).collect(),
        };
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for result in ["ok", "error"] {
            reloads.with_label_values(&[result]);
        }
        let cache = CacheCounters { hit: cache.with_label_values(&["hit"]), miss: cache.with_label_values(&["miss"]) };
        let unmatched =
            route_handles(&requests, &denied, &upstream_errors, &upstream_retries, &duration, UNMATCHED, &[]);
        Ok(Metrics {
            registry,
            requests,
            denied,
            duration,
            upstream_errors,
            upstream_retries,
            cache,
            inflight,
            spliced_bytes,
            reloads,
            jwks_fetches,
            jwks_age,
            unmatched,
            store,
            use_limit,
        })
    }

    /// A use-limited (or revocation-checking) route's decision counters,
    /// created with zero values.
    pub fn use_counters(&self, route: &str) -> UseCounters {
        UseCounters(UseResult::ALL.iter().map(|r| self.use_limit.with_label_values(&[route, r.label()])).collect())
    }

    /// Handles for a route (created with zero values so dashboards see
    /// them); `reasons` are the denial codes it can count.
    pub fn route(&self, name: &str, reasons: &[&str]) -> RouteMetrics {
        let (r, d, e, t, h) =
            (&self.requests, &self.denied, &self.upstream_errors, &self.upstream_retries, &self.duration);
        route_handles(r, d, e, t, h, name, reasons)
    }

    /// Handles for requests that matched no route.
    pub fn unmatched(&self) -> &RouteMetrics {
        &self.unmatched
    }

    /// Counts a configuration reload.
    pub fn reload(&self, ok: bool) {
        self.reloads.with_label_values(&[if ok { "ok" } else { "error" }]).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new().encode_to_string(&families).unwrap_or_default()
    }
}

fn route_handles(
    requests: &IntCounterVec,
    denied: &IntCounterVec,
    upstream_errors: &IntCounterVec,
    upstream_retries: &IntCounterVec,
    duration: &HistogramVec,
    name: &str,
    reasons: &[&str],
) -> RouteMetrics {
    RouteMetrics {
        outcomes: Outcome::ALL.iter().map(|o| requests.with_label_values(&[name, o.label()])).collect(),
        denied: reasons.iter().map(|r| denied.with_label_values(&[name, r])).collect(),
        upstream_errors: UpstreamErrorKind::ALL
            .iter()
            .map(|k| upstream_errors.with_label_values(&[name, k.label()]))
            .collect(),
        upstream_retries: RetryReason::ALL
            .iter()
            .map(|r| upstream_retries.with_label_values(&[name, r.label()]))
            .collect(),
        duration: duration.with_label_values(&[name]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_exported() {
        let m = Metrics::new(Registry::new()).unwrap_or_else(|e| panic!("{e}"));
        let r = m.route("media", &["malformed", "expired"]);
        r.outcome(Outcome::Forwarded).inc();
        r.denied(1).map(IntCounter::inc);
        m.use_counters("dl").get(UseResult::Replayed).inc();
        let text = m.render();
        for needle in [
            r#"tollgate_requests_total{outcome="forwarded",route="media"} 1"#,
            r#"tollgate_auth_denied_total{reason="expired",route="media"} 1"#,
            "tollgate_request_duration_seconds_bucket",
            r#"tollgate_verify_cache_total{result="hit"} 0"#,
            "tollgate_inflight_requests 0",
            "tollgate_spliced_bytes_total 0",
            r#"tollgate_config_reloads_total{result="error"} 0"#,
            r#"tollgate_build_info{version=""#,
            r#"tollgate_upstream_errors_total{kind="timeout",route="media"} 0"#,
            r#"tollgate_upstream_retries_total{reason="closed",route="media"} 0"#,
            r#"tollgate_upstream_retries_total{reason="reset",route="media"} 0"#,
            r#"tollgate_use_limit_total{result="replayed",route="dl"} 1"#,
            r#"tollgate_store_errors_total{op="admit"} 0"#,
            r#"tollgate_store_duration_seconds_bucket{op="give_back",le="0.001"} 0"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
