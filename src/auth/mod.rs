//! Stage 3: find the one credential a request carries and verify it.
//!
//! # Credential kinds
//! Each kind of credential is one module in `kinds/` behind one small
//! interface, [`Kind`], which answers three questions:
//! - **where** is my credential in this request ([`Kind::find`] reports each
//!   one it sees as a [`Presented`], with the [`Carrier`] it came in), and
//!   what would be stripped: the query parameters it owns
//!   ([`Kind::query_params`]), its cookies ([`Kind::cookies`]), and per
//!   credential its carrier (the `Authorization` header, a path segment);
//! - **is it valid** for this method, path and time ([`Kind::verify`]);
//! - **what does it grant**: the [`Grant`] (claim headers to forward, the
//!   path segment a path token occupies, and the [`Facts`] the stateful
//!   stage after verification reads: the credential's id, subject, issue
//!   and expiry times).
//!
//! [`authorize`] is the one place that applies the rule "at most one
//! credential per request" (SPEC §3): two credentials, of one kind or of
//! two, are refused as malformed rather than resolved by a precedence rule
//! a client could play against the upstream; a credential cookie counts
//! only when the request carries no header or URL credential.
//!
//! Adding a kind means a file in `kinds/`, its config struct, and one line
//! where the config compiler builds a route's kinds. Stateful checks (use
//! limits, revocation) are a stage after verification, not part of a kind.

pub mod cache;
pub mod cookie;
pub mod error;
pub mod jwks;
pub mod keyfile;
pub mod keys;
pub mod kinds;
pub mod query;

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

pub use cache::{CacheKey, CacheSettings, Verdict, VerifyCache, unix_now};
pub use error::{AuthError, Carrier};
use keys::JwtKeySource;
pub use kinds::{cloud_cdn, cloudfront, edgeauth, jwt, path_token, secure_link, signed_url};
use query::{CredentialNames, Found};

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

    /// The fixed keys this kind verifies with, as [`Grant::key`] names them
    /// (`<kind>:<key id>`): an exchanged cookie is honoured while the key
    /// that verified its link is one of them.
    fn key_ids(&self) -> Vec<String> {
        Vec::new()
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

/// What a credential grants, decoded: one path, or everything under a
/// prefix (ending in `/`). An exchanged cookie grants exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Path(Box<str>),
    Prefix(Box<str>),
}

impl Scope {
    /// Whether the decoded `path` lies in the scope.
    pub fn covers(&self, path: &str) -> bool {
        match self {
            Scope::Path(p) => **p == *path,
            Scope::Prefix(p) => path.starts_with(&**p),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Path(p) => write!(f, "the path {p:?}"),
            Scope::Prefix(p) => write!(f, "everything under {p:?}"),
        }
    }
}

/// What a protected route accepts.
#[derive(Debug)]
pub struct RouteAuth {
    kinds: Vec<Box<dyn Kind>>,
    names: CredentialNames,
    cookies: Vec<CookieName>,
    headers: Vec<HeaderName>,
    /// Exchange URL credentials for a cookie on top-level navigations.
    exchange: Option<kinds::exchanged_cookie::ExchangedCookies>,
}

/// A route names more credential parameters than tollgate tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyParams;

impl RouteAuth {
    /// A route accepting `kinds`.
    pub fn new(kinds: Vec<Box<dyn Kind>>) -> Result<Self, TooManyParams> {
        Self::with_params(kinds, &[])
    }

    /// A route accepting `kinds` that also treats `extra` query parameters
    /// as credential parameters (found once, stripped): the signed URL's id
    /// on routes with use limits or revocation.
    pub fn with_params(kinds: Vec<Box<dyn Kind>>, extra: &[&str]) -> Result<Self, TooManyParams> {
        let params = kinds.iter().flat_map(|k| k.query_params()).chain(extra.iter().copied());
        let names = CredentialNames::new(params).ok_or(TooManyParams)?;
        let mut cookies: Vec<CookieName> = kinds.iter().flat_map(|k| k.cookies()).collect();
        cookies.dedup();
        let mut headers: Vec<HeaderName> = kinds.iter().flat_map(|k| k.headers()).collect();
        headers.dedup();
        Ok(RouteAuth { kinds, names, cookies, headers, exchange: None })
    }

    /// Adds cookie exchange (SPEC §10): the cookies become a kind of the
    /// route, and URL credentials on navigations are exchanged for them.
    pub fn with_exchange(mut self, mut exchange: kinds::exchanged_cookie::ExchangedCookies) -> Self {
        let sets = self
            .key_sources()
            .into_iter()
            .filter_map(|s| match s {
                JwtKeySource::Set(set) => Some(set.clone()),
                JwtKeySource::Static(_) => None,
            })
            .collect();
        let fixed = self.kinds.iter().flat_map(|k| k.key_ids()).map(String::into_boxed_str).collect();
        exchange.accepted = Arc::new(kinds::exchanged_cookie::AcceptedKeys { fixed, sets });
        self.cookies.extend(exchange.cookies());
        self.kinds.push(Box::new(exchange.clone()));
        self.exchange = Some(exchange);
        self
    }

    /// The route's cookie exchange, if any.
    pub fn exchange(&self) -> Option<&kinds::exchanged_cookie::ExchangedCookies> {
        self.exchange.as_ref()
    }

    /// The kinds, in the order they are asked.
    pub fn kinds(&self) -> &[Box<dyn Kind>] {
        &self.kinds
    }

    /// The query parameters that are credentials on this route.
    pub fn credential_names(&self) -> &CredentialNames {
        &self.names
    }

    /// The cookies holding credentials on this route.
    pub fn cookies(&self) -> &[CookieName] {
        &self.cookies
    }

    /// The headers (other than `Authorization`) holding credentials on this route.
    pub fn credential_headers(&self) -> &[HeaderName] {
        &self.headers
    }

    /// Whether 401 answers should invite a bearer token.
    pub fn accepts_bearer(&self) -> bool {
        self.kinds.iter().any(|k| k.challenges_bearer())
    }

    /// Every key source of the route's kinds (for a refetch on an unknown key).
    pub fn key_sources(&self) -> Vec<&JwtKeySource> {
        self.kinds.iter().flat_map(|k| k.key_sources()).collect()
    }

    /// Headers the route's kinds set upstream.
    pub fn claim_headers(&self) -> impl Iterator<Item = HeaderName> + '_ {
        self.kinds.iter().flat_map(|k| k.claim_headers())
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

/// A verified request.
#[derive(Debug, Clone)]
pub struct Grant {
    pub carrier: Carrier,
    /// Headers to add upstream (forwarded claims).
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
    /// Bytes of the raw path the credential occupies (`/<segment>`),
    /// removed before forwarding.
    pub path_span: Option<Range<usize>>,
    /// What the credential grants (for cookie exchange), when known.
    pub scope: Option<Scope>,
    /// The key that verified it, `<kind>:<key id>` (for cookie exchange:
    /// the cookie names it, and dies with it), when known.
    pub key: Option<Arc<str>>,
    /// What the use-limit and revocation stage (and the cookie exchange's
    /// expiry) needs to know.
    pub facts: Facts,
}

impl Grant {
    /// A grant that forwards nothing of its own.
    pub fn plain(carrier: Carrier) -> Self {
        Grant {
            carrier,
            headers: Arc::from(Vec::new()),
            path_span: None,
            scope: None,
            key: None,
            facts: Facts::default(),
        }
    }
}

/// Facts a verified credential states about itself, for the stage after
/// verification (use limits and revocation, SPEC §11). Never logged: an id
/// or a subject may be personal data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The credential's id: a JWT's `jti` (a string), a signed URL's `jti`
    /// parameter on routes that read it.
    pub id: Option<Arc<str>>,
    /// A JWT's `sub` (a string).
    pub subject: Option<Arc<str>>,
    /// A JWT's `iat`, unix seconds.
    pub issued_at: Option<u64>,
    /// The credential's expiry, unix seconds.
    pub expires_at: Option<u64>,
}

/// A refused request; `carrier` is known when a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial {
    pub error: AuthError,
    pub carrier: Option<Carrier>,
}

impl From<AuthError> for Denial {
    fn from(error: AuthError) -> Self {
        Denial { error, carrier: None }
    }
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

/// The credential a request presents on a route, and the kind that reads it.
pub struct Choice<'k, 'r> {
    pub kind: &'k dyn Kind,
    pub presented: Presented<'r>,
}

/// Finds the one credential the request presents (SPEC §3).
pub fn choose<'k, 'r>(auth: &'k RouteAuth, req: &AuthRequest<'r>) -> Result<Choice<'k, 'r>, AuthError> {
    let mut direct: Option<Choice<'k, 'r>> = None;
    let mut cookie: Option<Choice<'k, 'r>> = None;
    let (mut directs, mut cookies) = (0, 0);
    for kind in &auth.kinds {
        kind.find(req, &mut |presented| {
            let (slot, count) = if presented.carrier == Carrier::Cookie {
                (&mut cookie, &mut cookies)
            } else {
                (&mut direct, &mut directs)
            };
            *count += 1;
            *slot = Some(Choice { kind: kind.as_ref(), presented });
        })?;
    }
    // A cookie counts only when nothing else is presented; two of either
    // are two credentials.
    match (directs, cookies) {
        (1, _) => direct.ok_or(AuthError::MissingCredential),
        (0, 1) => cookie.ok_or(AuthError::MissingCredential),
        (0, 0) => Err(AuthError::MissingCredential),
        _ => Err(AuthError::Malformed),
    }
}

/// Finds the request's credential and verifies it for this route.
pub fn authorize(auth: &RouteAuth, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, Denial> {
    let choice = choose(auth, req)?;
    let carrier = choice.presented.carrier;
    choice.kind.verify(&choice.presented, req, ctx).map_err(|error| Denial { error, carrier: Some(carrier) })
}
