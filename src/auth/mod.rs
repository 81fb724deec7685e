//! Stage 3: find the one credential a request carries and verify it.
//!
//! A request must carry at most one credential: a signed URL, a bearer
//! header or a token query parameter (SPEC §3). Two of them, or one of their
//! parameters twice, is refused as malformed rather than resolved by a
//! precedence rule the client could play against the upstream. The
//! credential cookie is consulted only when none of those is present.

pub mod cache;
pub mod cookie;
pub mod error;
pub mod jwks;
pub mod jwt;
pub mod keyfile;
pub mod keys;
pub mod path_token;
pub mod query;
pub mod signed_url;

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};

pub use cache::{CacheKey, CacheSettings, Verdict, VerifyCache, unix_now};
pub use error::{AuthError, Carrier};
use jwt::JwtPolicy;
use path_token::PathToken;
use query::{CredentialNames, Found};
use signed_url::SignedUrlPolicy;

use crate::metrics::CacheCounters;

/// What a protected route accepts. At least one of the two is set.
#[derive(Debug)]
pub struct RouteAuth {
    pub signed_url: Option<SignedUrlPolicy>,
    pub jwt: Option<JwtPolicy>,
}

impl RouteAuth {
    /// The query parameters that are credentials on this route.
    pub fn credential_names(&self) -> CredentialNames<'_> {
        CredentialNames {
            signed_url: self.signed_url.is_some(),
            token: self.jwt.as_ref().filter(|j| j.from.query).map(|j| j.query_param.as_str()),
        }
    }

    /// The cookie holding a credential on this route, if any.
    pub fn cookie_name(&self) -> Option<&str> {
        self.jwt.as_ref().filter(|j| j.from.cookie).map(|j| j.cookie.as_str())
    }

    /// The path-token marker, on routes that accept path tokens.
    pub fn path_token_marker(&self) -> Option<&str> {
        self.signed_url.as_ref().and_then(|s| s.path_token_marker.as_deref())
    }

    /// Whether 401 answers should invite a bearer token.
    pub fn accepts_bearer(&self) -> bool {
        self.jwt.is_some()
    }
}

/// The parts of a request that verification looks at.
pub struct AuthRequest<'a> {
    /// Method as received.
    pub method: &'a str,
    /// Decoded, normal-form path.
    pub path: &'a str,
    /// Raw query string (empty when absent).
    pub query: &'a str,
    /// Credential parameters found in the query.
    pub found: &'a Found<'a>,
    pub headers: &'a HeaderMap,
    /// The path as received, and the path token found in it.
    pub raw_path: &'a str,
    pub path_token: Option<&'a PathToken<'a>>,
    /// The decoded prefix of the matched route.
    pub route_prefix: &'a str,
}

/// A verified request.
#[derive(Debug, Clone)]
pub struct Grant {
    pub carrier: Carrier,
    /// Headers to add upstream (forwarded claims).
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
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
}

/// Finds the request's credential and verifies it for this route.
pub fn authorize(
    auth: &RouteAuth,
    route_id: u32,
    req: &AuthRequest<'_>,
    v: &VerifyContext<'_>,
) -> Result<Grant, Denial> {
    let jwt = auth.jwt.as_ref();
    let signed = auth.signed_url.is_some() && req.found.has_signed_url();
    let header = match jwt.filter(|j| j.from.header) {
        Some(_) => bearer(req.headers)?,
        None => None,
    };
    let query_token = req.found.token;
    let presented = usize::from(signed)
        + usize::from(header.is_some())
        + usize::from(query_token.is_some())
        + usize::from(req.path_token.is_some());
    if presented > 1 {
        return Err(AuthError::Malformed.into());
    }

    if let (Some(token), Some(policy)) = (req.path_token, &auth.signed_url) {
        let deny = |error| Denial { error, carrier: Some(Carrier::PathToken) };
        path_token::verify(policy, req.method, req.raw_path, token, req.route_prefix, v.now).map_err(deny)?;
        return Ok(Grant { carrier: Carrier::PathToken, headers: Arc::from(Vec::new()) });
    }

    if let (true, Some(policy)) = (signed, &auth.signed_url) {
        let deny = |error| Denial { error, carrier: Some(Carrier::SignedUrl) };
        signed_url::verify(policy, req.method, req.path, req.query, req.found, v.now).map_err(deny)?;
        return Ok(Grant { carrier: Carrier::SignedUrl, headers: Arc::from(Vec::new()) });
    }
    let Some(jwt) = jwt else {
        return Err(AuthError::MissingCredential.into());
    };
    if let Some(token) = header {
        return verify_token(jwt, route_id, req, v, token, Carrier::Header);
    }
    if let Some(raw) = query_token {
        let decoded = query::decode_component(raw).map_err(|_| AuthError::Malformed)?;
        let token = std::str::from_utf8(&decoded).map_err(|_| AuthError::Malformed)?;
        return verify_token(jwt, route_id, req, v, token, Carrier::Query);
    }
    if let Some(name) = auth.cookie_name()
        && let Some(value) = cookie::find(req.headers, name)?
    {
        let token = std::str::from_utf8(value).map_err(|_| AuthError::Malformed)?;
        return verify_token(jwt, route_id, req, v, token, Carrier::Cookie);
    }
    Err(AuthError::MissingCredential.into())
}

fn verify_token(
    jwt: &JwtPolicy,
    route_id: u32,
    req: &AuthRequest<'_>,
    v: &VerifyContext<'_>,
    token: &str,
    carrier: Carrier,
) -> Result<Grant, Denial> {
    let key = CacheKey::new(route_id, req.method, carrier, req.path, token);
    let verdict = match v.cache.get(&key, v.now) {
        Some(verdict) => {
            v.counters.hit.inc();
            verdict
        }
        None => {
            v.counters.miss.inc();
            let verdict = match jwt.verify(token, req.path, v.now) {
                Ok(verified) => Verdict::Allow(verified),
                Err(e) => Verdict::Deny(e),
            };
            v.cache.insert(key, verdict.clone(), v.now);
            verdict
        }
    };
    match verdict {
        Verdict::Allow(verified) => Ok(Grant { carrier, headers: verified.headers }),
        Verdict::Deny(error) => Err(Denial { error, carrier: Some(carrier) }),
    }
}

/// The bearer token of the `Authorization` header. Two `Authorization`
/// headers are malformed; another scheme is not a credential of ours.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed);
    }
    let bytes = value.as_bytes();
    if bytes.len() < 7 || !bytes[..7].eq_ignore_ascii_case(b"bearer ") {
        return Ok(None);
    }
    // Token68 is ASCII; anything else cannot verify and is refused there.
    let token = std::str::from_utf8(&bytes[7..]).map_err(|_| AuthError::Malformed)?;
    Ok(Some(token.trim_matches(' ')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(&headers(&[("authorization", "Bearer abc")])), Ok(Some("abc")));
        assert_eq!(bearer(&headers(&[("authorization", "bearer  abc ")])), Ok(Some("abc")));
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), Ok(None));
        assert_eq!(bearer(&headers(&[])), Ok(None));
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")])),
            Err(AuthError::Malformed)
        );
    }
}
