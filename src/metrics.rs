//! Prometheus metrics (docs/reference.md: Metrics), owned by one `Metrics` value registered on
//! an injected `Registry` (a fresh one per test; no global registry).
//!
//! Labels are bounded by construction: route names come from the config,
//! outcomes and reasons from closed enums. Per-route handles are resolved
//! once when a configuration is compiled, so the request path increments
//! atomics instead of hashing label values.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// How many routes have series of their own unless `metrics.route_series`
/// says otherwise: bounds the exposition near 1 MB whatever the number of
/// routes (README, "Metrics and logs").
pub const DEFAULT_ROUTE_SERIES: usize = 200;

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

/// What the use-limit and revocation stage decided (README: One-time and limited links),
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
    /// Record a client network of a credential (share detection).
    Share,
    /// Take or free a stream slot (concurrent-stream limits).
    Stream,
    /// Read or add the bytes sent under a credential (byte quotas).
    Bytes,
}

impl StoreOp {
    pub const ALL: [StoreOp; 8] = [
        StoreOp::Admit,
        StoreOp::Subject,
        StoreOp::GiveBack,
        StoreOp::Revoke,
        StoreOp::Ping,
        StoreOp::Share,
        StoreOp::Stream,
        StoreOp::Bytes,
    ];

    pub fn label(self) -> &'static str {
        match self {
            StoreOp::Admit => "admit",
            StoreOp::Subject => "subject",
            StoreOp::GiveBack => "give_back",
            StoreOp::Revoke => "revoke",
            StoreOp::Ping => "ping",
            StoreOp::Share => "share",
            StoreOp::Stream => "stream",
            StoreOp::Bytes => "bytes",
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

/// A route's `tollgate_use_limit_total` handles, one per [`UseResult`],
/// created when the route first decides something.
#[derive(Clone)]
pub struct UseCounters {
    route: Arc<str>,
    family: IntCounterVec,
    series: Arc<OnceLock<Vec<IntCounter>>>,
}

impl UseCounters {
    pub fn get(&self, result: UseResult) -> &IntCounter {
        let series = self.series.get_or_init(|| {
            UseResult::ALL.iter().map(|r| self.family.with_label_values(&[&*self.route, r.label()])).collect()
        });
        &series[result as usize]
    }
}

/// A route's `tollgate_shared_credentials_total` handles: `refused` and
/// `reported` (report-only: served anyway).
#[derive(Clone)]
pub struct ShareCounters {
    route: Arc<str>,
    family: IntCounterVec,
    series: Arc<OnceLock<[IntCounter; 2]>>,
}

impl ShareCounters {
    /// The counter of one finding: refused, or only reported.
    pub fn get(&self, refused: bool) -> &IntCounter {
        let series = self
            .series
            .get_or_init(|| ["refused", "reported"].map(|mode| self.family.with_label_values(&[&*self.route, mode])));
        &series[usize::from(!refused)]
    }
}

/// Cache hit and miss counters.
#[derive(Clone)]
pub struct CacheCounters {
    pub hit: IntCounter,
    pub miss: IntCounter,
}

/// What a route can count: its series are made for these label values
/// only (a public route has no denial reasons; only an object-store route
/// has `kind="credentials"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteProfile {
    /// Every denial reason's code, in the order `RouteMetrics::denied`
    /// indexes them (`AuthError::CODES`).
    pub codes: &'static [&'static str],
    /// The reasons it can count (bit `i`: `codes[i]`).
    pub reasons: u64,
    /// It forwards to an object store (`kind="credentials"` can happen).
    pub object_store: bool,
}

/// A route's series, made on its first request (see [`RouteMetrics`]).
struct Series {
    outcomes: Vec<IntCounter>,
    /// Indexed by `AuthError::CODES` position; `None` where the route
    /// cannot produce the reason.
    denied: Vec<Option<IntCounter>>,
    upstream_errors: Vec<Option<IntCounter>>,
    upstream_retries: Vec<IntCounter>,
    duration: Histogram,
}

/// A route's handles. Its series appear with its first request, never
/// before (a configuration of many routes exports nothing for the ones no
/// one asks for), under the route's own name while fewer than
/// `metrics.route_series` routes have series of their own (or always, with
/// `own_metrics: true`), else under `route="(other)"`.
pub struct RouteMetrics {
    name: Arc<str>,
    profile: RouteProfile,
    own: bool,
    families: Arc<Families>,
    series: OnceLock<Series>,
}

impl RouteMetrics {
    fn series(&self) -> &Series {
        self.series.get_or_init(|| {
            let label = if self.families.admit(&self.name, self.own) { &*self.name } else { OTHER };
            self.families.series(label, self.profile)
        })
    }

    pub fn outcome(&self, outcome: Outcome) -> &IntCounter {
        &self.series().outcomes[outcome as usize]
    }

    /// The denial counter for the reason at `index` of `AuthError::CODES`,
    /// when the route can count it.
    pub fn denied(&self, index: usize) -> Option<&IntCounter> {
        self.series().denied.get(index).and_then(Option::as_ref)
    }

    pub fn upstream_error(&self, kind: UpstreamErrorKind) -> Option<&IntCounter> {
        self.series().upstream_errors[kind as usize].as_ref()
    }

    pub fn upstream_retry(&self, reason: RetryReason) -> &IntCounter {
        &self.series().upstream_retries[reason as usize]
    }

    pub fn duration(&self) -> &Histogram {
        &self.series().duration
    }
}

/// The label routes share past `metrics.route_series`.
pub const OTHER: &str = "(other)";

/// The per-route families, and which routes have series of their own.
struct Families {
    requests: IntCounterVec,
    denied: IntCounterVec,
    duration: HistogramVec,
    upstream_errors: IntCounterVec,
    upstream_retries: IntCounterVec,
    /// Routes with series of their own so far (they keep them: the series
    /// stay in the registry across reloads), and the bound.
    owners: Mutex<HashSet<Arc<str>>>,
    limit: AtomicUsize,
}

impl Families {
    /// Whether `route` gets series of its own.
    fn admit(&self, route: &Arc<str>, own: bool) -> bool {
        let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        if owners.contains(route) {
            return true;
        }
        if own || owners.len() < self.limit.load(Ordering::Relaxed) {
            owners.insert(route.clone());
            return true;
        }
        false
    }

    fn series(&self, route: &str, profile: RouteProfile) -> Series {
        let reasons = profile.codes;
        Series {
            outcomes: Outcome::ALL.iter().map(|o| self.requests.with_label_values(&[route, o.label()])).collect(),
            denied: reasons
                .iter()
                .enumerate()
                .map(|(i, r)| (profile.reasons & (1 << i) != 0).then(|| self.denied.with_label_values(&[route, r])))
                .collect(),
            upstream_errors: UpstreamErrorKind::ALL
                .iter()
                .map(|k| {
                    let possible = *k != UpstreamErrorKind::Credentials || profile.object_store;
                    possible.then(|| self.upstream_errors.with_label_values(&[route, k.label()]))
                })
                .collect(),
            upstream_retries: RetryReason::ALL
                .iter()
                .map(|r| self.upstream_retries.with_label_values(&[route, r.label()]))
                .collect(),
            duration: self.duration.with_label_values(&[route]),
        }
    }
}

/// Every metric tollgate exports.
pub struct Metrics {
    registry: Registry,
    families: Arc<Families>,
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
    shared: IntCounterVec,
    streams: IntGaugeVec,
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
        let shared = IntCounterVec::new(
            Opts::new(
                "tollgate_shared_credentials_total",
                "Requests from one client network more than a credential's share_limit allows, by route and mode (refused, reported).",
            ),
            &["route", "mode"],
        )?;
        registry.register(Box::new(shared.clone()))?;
        let streams = IntGaugeVec::new(
            Opts::new(
                "tollgate_streams_in_use",
                "Downloads in flight on this replica on routes with a stream_limit, by route.",
            ),
            &["route"],
        )?;
        registry.register(Box::new(streams.clone()))?;
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
        let families = Arc::new(Families {
            requests,
            denied,
            duration,
            upstream_errors,
            upstream_retries,
            owners: Mutex::new(HashSet::new()),
            limit: AtomicUsize::new(DEFAULT_ROUTE_SERIES),
        });
        let unmatched = RouteMetrics {
            name: Arc::from(UNMATCHED),
            profile: RouteProfile::default(),
            own: true,
            families: families.clone(),
            series: OnceLock::new(),
        };
        Ok(Metrics {
            registry,
            families,
            cache,
            inflight,
            spliced_bytes,
            reloads,
            jwks_fetches,
            jwks_age,
            unmatched,
            store,
            use_limit,
            shared,
            streams,
        })
    }

    /// A use-limited (or revocation-checking) route's decision counters,
    /// made with its first decision.
    pub fn use_counters(&self, route: &str) -> UseCounters {
        UseCounters { route: Arc::from(route), family: self.use_limit.clone(), series: Arc::default() }
    }

    /// A route's share-detection counters, made with its first finding.
    pub fn share_counters(&self, route: &str) -> ShareCounters {
        ShareCounters { route: Arc::from(route), family: self.shared.clone(), series: Arc::default() }
    }

    /// The gauge of a route's downloads in flight under its stream limit.
    pub fn streams_in_use(&self, route: &str) -> IntGauge {
        self.streams.with_label_values(&[route])
    }

    /// Handles for a route, whose series appear with its first request;
    /// `own` keeps the route's own label past `metrics.route_series`.
    pub fn route(&self, name: &str, profile: RouteProfile, own: bool) -> RouteMetrics {
        RouteMetrics { name: Arc::from(name), profile, own, families: self.families.clone(), series: OnceLock::new() }
    }

    /// How many routes may have series of their own (`metrics.route_series`).
    pub fn set_route_series(&self, limit: usize) {
        self.families.limit.store(limit, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_exported() {
        let m = Metrics::new(Registry::new()).unwrap_or_else(|e| panic!("{e}"));
        let codes = &["missing_credential", "malformed", "bad_signature", "expired"];
        let r = m.route("media", RouteProfile { codes, reasons: 0b1010, object_store: false }, false);
        r.outcome(Outcome::Forwarded).inc();
        r.denied(3).map(IntCounter::inc);
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

    #[test]
    fn a_route_has_series_only_once_used_and_only_what_it_can_count() {
        let m = Metrics::new(Registry::new()).unwrap_or_else(|e| panic!("{e}"));
        let public = m.route("public", RouteProfile::default(), false);
        assert!(!m.render().contains("route=\"public\""), "no series before the first request");
        public.outcome(Outcome::Forwarded).inc();
        let text = m.render();
        assert!(text.contains(r#"tollgate_requests_total{outcome="no_route",route="public"} 0"#), "{text}");
        assert!(!text.contains("tollgate_auth_denied_total{reason"), "a public route has no denial series:\n{text}");
        assert!(!text.contains(r#"kind="credentials",route="public""#), "only object stores refuse credentials");
        assert!(public.denied(0).is_none());
    }

    #[test]
    fn routes_past_the_bound_share_the_other_label_unless_they_ask() {
        let m = Metrics::new(Registry::new()).unwrap_or_else(|e| panic!("{e}"));
        m.set_route_series(2);
        for name in ["a", "b", "c", "d"] {
            m.route(name, RouteProfile::default(), name == "d").outcome(Outcome::Forwarded).inc();
        }
        // A route that had its own series keeps them (a reload compiles a new one).
        m.route("a", RouteProfile::default(), false).outcome(Outcome::Forwarded).inc();
        let text = m.render();
        for (route, n) in [("a", 2), ("b", 1), ("(other)", 1), ("d", 1)] {
            let line = format!("tollgate_requests_total{{outcome=\"forwarded\",route=\"{route}\"}} {n}");
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("route=\"c\""), "{text}");
    }
}
