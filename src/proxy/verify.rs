//! Phase 3, verify: the credential parameters of the query (found once,
//! any twice is malformed), then the one credential the route accepts,
//! verified (`auth::authorize`, cached per kind). A key id no key has
//! triggers one refetch of the route's JWK sets and one more try: the
//! identity provider may have rotated. `tollgate explain` runs this same
//! phase with a tracer.

use std::net::IpAddr;
use std::sync::Mutex;

use http::request::Parts;

use super::answers::Rejection;
use crate::auth::query::{self, CredentialNames, Found};
use crate::auth::{
    self, AuthError, AuthRequest, Denial, Grant, RouteAuth, Step, StepLog, Tracer, VerifyCache, VerifyContext,
};
use crate::metrics::CacheCounters;
use crate::normalize::NormalPath;
use crate::routes::Route;

/// What the phase needs besides the request.
pub struct Verifier<'a> {
    pub cache: &'a VerifyCache,
    pub counters: &'a CacheCounters,
    /// Read the client's address from `X-Forwarded-For` (IP-bound links).
    pub trust_forwarded: bool,
    /// Unix seconds.
    pub now: u64,
    /// Where `tollgate explain` reads the checks; `None` in the proxy.
    pub trace: Option<&'a Mutex<Vec<Step>>>,
}

/// What verification found: the query's credential parameters (stripped
/// later), and the grant (`None` on an `auth: none` route).
pub struct Verified<'r> {
    pub found: Found<'r>,
    pub grant: Option<Grant>,
}

/// Verifies the request's credential for `route`.
pub async fn verify<'r>(
    route: &'r Route,
    parts: &'r Parts,
    path: &'r NormalPath<'r>,
    peer: IpAddr,
    v: &Verifier<'_>,
) -> Result<Verified<'r>, Rejection> {
    static NO_NAMES: std::sync::LazyLock<CredentialNames> = std::sync::LazyLock::new(CredentialNames::default);
    let raw_query = parts.uri.query().unwrap_or("");
    let names = route.auth.as_ref().map_or(&*NO_NAMES, RouteAuth::credential_names);
    let found = query::scan(raw_query, names).map_err(|_| {
        StepLog::new(v.trace).step("credential", false, format_args!("a credential parameter appears twice"));
        deny(route, AuthError::Malformed)
    })?;
    let Some(policy) = &route.auth else {
        StepLog::new(v.trace).step("credential", true, format_args!("none needed (auth: none)"));
        return Ok(Verified { found, grant: None });
    };
    let request = AuthRequest {
        method: parts.method.as_str(),
        path: &path.decoded,
        raw_path: parts.uri.path(),
        query: raw_query,
        found: &found,
        headers: &parts.headers,
        route_prefix: &route.prefix,
        route_id: route.id,
        client_ip: auth::client_ip(peer, &parts.headers, v.trust_forwarded),
    };
    let ctx = VerifyContext { cache: v.cache, counters: v.counters, now: v.now, trace: v.trace };
    let mut verdict = auth::authorize(policy, &request, &ctx);
    if let Err(Denial { error: AuthError::UnknownKey, carrier: Some(_) }) = verdict
        && Box::pin(auth::jwks::refetch_for_unknown_kid(policy.key_sources())).await
    {
        ctx.tracer().step("keys", true, format_args!("the route's key sets were fetched again; one more try"));
        verdict = auth::authorize(policy, &request, &ctx);
    }
    let grant = verdict.map_err(|denial| Rejection::Auth { denial, bearer: policy.accepts_bearer() })?;
    Ok(Verified { found, grant: Some(grant) })
}

/// A request `auth.report_only` serves although verification refused it:
/// its credential parameters are found (and so stripped) as usual, and it
/// goes on with no grant. `None` when that would not be safe: the query is
/// malformed, or the path holds a credential segment (a path token would
/// reach the upstream).
pub fn unverified<'r>(route: &'r Route, parts: &'r Parts, markers: &[Box<str>]) -> Option<Verified<'r>> {
    let names = route.auth.as_ref()?.credential_names();
    let found = query::scan(parts.uri.query().unwrap_or(""), names).ok()?;
    let path = parts.uri.path();
    matches!(crate::auth::kinds::path_token::redact(path, markers), std::borrow::Cow::Borrowed(_))
        .then_some(Verified { found, grant: None })
}

/// A refusal on `route` before any credential was read.
pub fn deny(route: &Route, error: AuthError) -> Rejection {
    Rejection::Auth {
        denial: Denial { error, carrier: None },
        bearer: route.auth.as_ref().is_some_and(RouteAuth::accepts_bearer),
    }
}
