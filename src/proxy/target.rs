//! Phase 4, target: where the verified request goes. A navigation that
//! carries a URL credential on a route with cookie exchange goes to the
//! clean URL with a cookie granting the same (README: Cookies, CORS); every other
//! request goes upstream, asking for the raw path (without a path token's
//! segment) and the query without its credential parameters, or, to an
//! object store, for the object key (`upstream::s3`).

use std::borrow::Cow;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Response};

use super::answers::{self, Rejection, ResponseBody};
use super::verify::Verified;
use crate::auth::query::{self, Found};
use crate::auth::{self, Carrier, RouteAuth};
use crate::normalize::{NormalPath, check_path};
use crate::routes::Route;
use crate::upstream::s3::NoObject;

/// What the upstream is asked for.
pub struct Target {
    pub path_and_query: PathAndQuery,
    /// A path token to put back into the upstream's redirects.
    pub reinsert: Option<Reinsert>,
}

/// The upstream target of a verified request.
pub fn upstream(route: &Route, parts: &Parts, path: &NormalPath<'_>, v: &Verified<'_>) -> Result<Target, Rejection> {
    let raw_path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or("");
    let keep_overrides = v.grant.as_ref().is_some_and(|g| g.carrier == Carrier::SignedUrl);
    let object = |decoded: &str, query: &str| {
        route.upstream.s3.as_ref().map(|s3| {
            s3.target(&route.prefix, decoded, query, keep_overrides).map_err(|e| match e {
                NoObject::Listing => Rejection::NoRoute,
                NoObject::Invalid => Rejection::NotNormal,
            })
        })
    };
    // A credential in the path leaves it here: the upstream sees the path
    // without it, and answers get it put back into `Location`.
    match v.grant.as_ref().and_then(|g| g.path_span.clone()) {
        Some(span) => {
            let stripped = format!("{}{}", &raw_path[..span.start], &raw_path[span.end..]);
            let decoded = check_path(&stripped).map_err(|_| Rejection::NotNormal)?;
            let path_and_query = match object(&decoded.decoded, "") {
                Some(object) => object?,
                None => forwarded_target(&stripped, raw_query, &v.found)?,
            };
            let reinsert = Reinsert {
                raw_prefix: raw_path[..=span.start].to_owned(),
                segment: raw_path[span.start + 1..span.end].to_owned(),
            };
            Ok(Target { path_and_query, reinsert: Some(reinsert) })
        }
        None => {
            let path_and_query = match object(&path.decoded, raw_query) {
                Some(object) => object?,
                None => forwarded_target(raw_path, raw_query, &v.found)?,
            };
            Ok(Target { path_and_query, reinsert: None })
        }
    }
}

/// The raw path and the query without credentials.
pub fn forwarded_target(raw_path: &str, raw_query: &str, found: &Found<'_>) -> Result<PathAndQuery, Rejection> {
    let pq = match query::strip(raw_query, found) {
        Some(q) => PathAndQuery::try_from(format!("{raw_path}?{q}")),
        None => PathAndQuery::try_from(raw_path),
    };
    pq.map_err(|_| Rejection::NotNormal)
}

/// The cookie exchange's answer, when this request is one to exchange: a
/// GET navigation with a URL credential on a route that exchanges, with
/// time left (inside its leeway a cookie would already have expired, so
/// such a request is served as it is).
pub fn exchange(route: &Route, parts: &Parts, v: &Verified<'_>) -> Result<Option<Response<ResponseBody>>, Rejection> {
    let raw_path = parts.uri.path();
    if let Some(grant) = &v.grant
        && let Some(exchange) = route.auth.as_ref().and_then(RouteAuth::exchange)
        && grant.carrier.in_url()
        // A link bound to a client range stays one: a cookie would carry no binding.
        && v.found.get(crate::auth::query::IP_PARAM).is_none()
        && parts.method == Method::GET
        && is_navigation(&parts.headers)
        && let (Some(scope), Some(exp), Some(key)) = (&grant.scope, grant.facts.expires_at, &grant.key)
        && let Some(max_age) = exp.checked_sub(auth::unix_now()).filter(|left| *left > 0)
        && let Some(scope) = exchange.clip(scope)
    {
        let path = match &grant.path_span {
            Some(span) => Cow::Owned(format!("{}{}", &raw_path[..span.start], &raw_path[span.end..])),
            None => Cow::Borrowed(raw_path),
        };
        let location = forwarded_target(&path, parts.uri.query().unwrap_or(""), &v.found)?;
        let cookie = exchange.set_cookie(&scope, key, exp, max_age);
        return Ok(Some(answers::see_other(location.as_str(), &cookie)));
    }
    Ok(None)
}

/// A top-level navigation (a link followed, a URL typed), as opposed to a
/// sub-resource (`<img>`, `<video>`, `fetch`), by the Fetch metadata
/// headers every current browser sends.
fn is_navigation(headers: &http::HeaderMap) -> bool {
    let is = |name: &str, want: &[u8]| headers.get(name).is_some_and(|v| v.as_bytes() == want);
    is("sec-fetch-mode", b"navigate") && is("sec-fetch-dest", b"document")
}

/// A path token to put back into redirects under the prefix it grants.
#[derive(Debug, Clone)]
pub struct Reinsert {
    /// The granted prefix as it arrived (ends with `/`).
    pub raw_prefix: String,
    /// The token segment, without slashes.
    pub segment: String,
}

impl Reinsert {
    /// An origin-relative `location` with the token segment after the
    /// granted prefix, when its path lies under it (nginx's `/dir` →
    /// `/dir/` redirect); else `None`. Absolute locations never get one.
    pub(super) fn location(&self, location: &str) -> Option<String> {
        if !location.starts_with('/') || location.starts_with("//") {
            return None;
        }
        let rest = location.strip_prefix(self.raw_prefix.as_str())?;
        Some(format!("{}{}/{rest}", self.raw_prefix, self.segment))
    }
}
