//! The interface of a credential kind, and what verification passes to
//! it: the request as verification sees it ([`AuthRequest`]), the
//! credential found ([`Presented`]), the context ([`VerifyContext`]) with
//! the tracer `tollgate explain` reads. Every kind in `kinds/` implements
//! [`Kind`]; this file imports no kind.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName};

use super::cache::VerifyCache;
use super::error::{AuthError, Carrier};
use super::grant::Grant;
use super::keys::{HmacKey, JwtKeySource};
use super::query::Found;
use crate::metrics::CacheCounters;

/// One kind of credential (see the module header).
pub trait Kind: Send + Sync + fmt::Debug {
    /// Short stable name, for logs and `tollgate explain`.
    fn name(&self) -> &'static str;

    /// Query parameters that carry this kind's credential. They are found
    /// once for all kinds (one of them twice is malformed) and always
    /// stripped before forwarding.
    fn query_params(&self) -> Vec<&str> {
        Vec::new()
    }

    /// Cookies that carry this kind's credential: always stripped.
    fn cookies(&self) -> Vec<CookieName> {
        Vec::new()
    }

    /// Request headers of its own (not `Authorization`) that carry this
    /// kind's credential: always stripped.
    fn headers(&self) -> Vec<HeaderName> {
        Vec::new()
    }

    /// Headers this kind sets upstream from what it verified: removed
    /// from every request on every route, so no client can pre-set one.
    fn claim_headers(&self) -> Vec<HeaderName> {
        Vec::new()
    }

    /// Whether a 401 should invite a bearer token (`WWW-Authenticate`).
    fn challenges_bearer(&self) -> bool {
        false
    }

    /// Key sets that may be refetched when a credential names an unknown key.
    fn key_sources(&self) -> &[JwtKeySource] {
        &[]
    }

    /// The segment marker of a credential carried in the path (path
    /// tokens): such segments are redacted from every log line.
    fn path_marker(&self) -> Option<&str> {
        None
    }

    /// For kinds whose credentials can carry an id (use limits,
    /// revocation): the longest lifetime they accept, seconds (`Some(None)`
    /// when unbounded); `None` for kinds whose credentials carry no id.
    fn id_lifetime(&self) -> Option<Option<u64>> {
        None
    }

    /// The query parameter holding a credential's id, on routes that
    /// count uses or check revocations (then a credential parameter).
    fn id_param(&self) -> Option<&'static str> {
        None
    }

    /// Seconds a credential of this kind is accepted past its expiry.
    fn leeway(&self) -> Option<u64> {
        None
    }

    /// The fixed keys this kind verifies with, as [`Grant::key`] names them
    /// (`<kind>:<key id>`): an exchanged cookie is honoured while the key
    /// that verified its link is one of them.
    fn key_ids(&self) -> Vec<String> {
        Vec::new()
    }

    /// The key this kind signs one-path links with (tollgate's own signed
    /// URLs): a manifest's key URIs on this route get such a link.
    fn link_key(&self) -> Option<&HmacKey> {
        None
    }

    /// Reports every credential of this kind the request presents. A
    /// presentation this kind cannot even parse apart (its cookie twice,
    /// two `Authorization` headers) is an error.
    fn find<'r>(&self, req: &AuthRequest<'r>, found: &mut dyn FnMut(Presented<'r>)) -> Result<(), AuthError>;

    /// Verifies one credential reported by [`Kind::find`].
    fn verify(&self, cred: &Presented<'_>, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, AuthError>;
}

/// A credential a request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented<'r> {
    pub carrier: Carrier,
    /// The credential's own bytes (a token, a signature, a path segment):
    /// what a verdict cache keys on, never logged.
    pub credential: Cow<'r, str>,
}

/// A cookie a kind reads: one name, or every name with a prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CookieName {
    Exact(Box<str>),
    Prefix(Box<str>),
}

impl CookieName {
    pub fn matches(&self, name: &[u8]) -> bool {
        match self {
            CookieName::Exact(n) => n.as_bytes() == name,
            CookieName::Prefix(p) => name.starts_with(p.as_bytes()),
        }
    }
}

/// The parts of a request that verification looks at.
pub struct AuthRequest<'a> {
    /// Method as received.
    pub method: &'a str,
    /// Decoded, normal-form path.
    pub path: &'a str,
    /// The path as received.
    pub raw_path: &'a str,
    /// Raw query string (empty when absent).
    pub query: &'a str,
    /// Credential parameters found in the query.
    pub found: &'a Found<'a>,
    pub headers: &'a HeaderMap,
    /// The decoded prefix of the matched route.
    pub route_prefix: &'a str,
    /// Position of the route in the configuration (cache keys).
    pub route_id: u32,
    /// The client's address, for credentials bound to one (see [`client_ip`]).
    pub client_ip: IpAddr,
}

/// The client's address as IP-bound credentials see it: the connection's
/// peer; or, with `trust_forwarded_headers`, the last address of the last
/// `X-Forwarded-For` header — the one the trusted proxy in front of
/// tollgate saw (a client can prepend anything, but not append). An entry
/// that is not an address (`unknown`, garbage) falls back to the peer, so
/// an IP-bound credential then fails rather than matching a forged value.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trust_forwarded: bool) -> IpAddr {
    let forwarded = trust_forwarded
        .then(|| headers.get_all("x-forwarded-for").iter().next_back())
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .and_then(|entry| {
            entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        });
    forwarded.unwrap_or(peer).to_canonical()
}

/// Context shared by all verifications of one configuration.
pub struct VerifyContext<'a> {
    pub cache: &'a VerifyCache,
    pub counters: &'a CacheCounters,
    pub now: u64,
    /// Where checks are reported, for `tollgate explain`; `None` in the proxy.
    pub trace: Option<&'a std::sync::Mutex<Vec<Step>>>,
}

impl VerifyContext<'_> {
    /// A tracer writing to `trace` (a no-op without one).
    pub fn tracer(&self) -> StepLog<'_> {
        StepLog(self.trace)
    }
}

impl<'a> StepLog<'a> {
    /// A tracer writing to `trace` (a no-op without one).
    pub fn new(trace: Option<&'a std::sync::Mutex<Vec<Step>>>) -> Self {
        StepLog(trace)
    }
}

/// One check of a verification, in order, as `tollgate explain` prints it.
/// Details name key ids and decoded request parts, never key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Receives the checks of a verification as they run. The proxy's tracer
/// does nothing: `format_args!` costs nothing until it is formatted.
pub trait Tracer {
    fn step(&mut self, check: &'static str, ok: bool, detail: fmt::Arguments<'_>);
}

/// Discards every step.
pub struct NoTrace;

impl Tracer for NoTrace {
    fn step(&mut self, _: &'static str, _: bool, _: fmt::Arguments<'_>) {}
}

/// Appends steps to a shared log when there is one.
pub struct StepLog<'a>(Option<&'a std::sync::Mutex<Vec<Step>>>);

impl Tracer for StepLog<'_> {
    fn step(&mut self, check: &'static str, ok: bool, detail: fmt::Arguments<'_>) {
        if let Some(log) = self.0
            && let Ok(mut steps) = log.lock()
        {
            steps.push(Step { check, ok, detail: detail.to_string() });
        }
    }
}
