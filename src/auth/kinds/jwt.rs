//! Bearer tokens (SPEC §3): the key is selected by `kid` and `alg` among the
//! route's keys, the signature checked with that key's pre-parsed aws-lc
//! verifier, then the claims: `exp` (required), `nbf`, `iss`, `aud`,
//! maximum lifetime, required values and path binding.
//!
//! The pitfalls SPEC §3 lists for `jsonwebtoken` are avoided by
//! construction: the accepted algorithms come from the key, never from the
//! token (`none` is not an algorithm at all); `nbf` is always checked; the
//! leeway is explicit; a claim of the wrong type (`"exp": "never"`) is a
//! refusal, never a skipped check; `aud` is checked only when configured.
//! Verifying with keys parsed once (rather than through `jsonwebtoken::decode`,
//! which re-parses the public key on every call) keeps uncached RS256 close
//! to the cost of the RSA operation itself (see BENCHMARKS.md).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::borrow::Cow;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::auth::cache::{CacheKey, Verdict, Verified};
use crate::auth::cookie;
use crate::auth::error::{AuthError, Carrier};
use crate::auth::grant::Facts;
use crate::auth::grant::Grant;
use crate::auth::grant::Scope;
use crate::auth::keys::{JwtKey, JwtKeySource};
use crate::auth::kind::AuthRequest;
use crate::auth::kind::CookieName;
use crate::auth::kind::Kind;
use crate::auth::kind::NoTrace;
use crate::auth::kind::Presented;
use crate::auth::kind::Tracer;
use crate::auth::kind::VerifyContext;
use crate::auth::query;

/// Longest token accepted, in bytes: bounds the work an attacker can cause.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Where a route looks for tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carriers {
    pub header: bool,
    pub query: bool,
    pub cookie: bool,
}

/// Issuer, audience and timing rules shared by every key of a route.
#[derive(Debug, Clone, Default)]
pub struct ClaimRules {
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway: u64,
    /// Longest `exp - iat` accepted, seconds.
    pub max_lifetime: Option<u64>,
    /// Claims that must hold a value (or a list containing it).
    pub required: Vec<(String, Value)>,
    /// Claim holding the path patterns the token grants.
    pub path_claim: Option<String>,
}

/// A route's JWT rules, compiled.
#[derive(Debug)]
pub struct JwtPolicy {
    pub keys: Vec<JwtKeySource>,
    pub from: Carriers,
    pub query_param: String,
    pub cookie: String,
    pub rules: ClaimRules,
    /// Claims copied into request headers: (claim, header).
    pub forward_claims: Vec<(String, HeaderName)>,
}

/// The kind: a JWT from the `Authorization` header, the route's query
/// parameter or its cookie. Verdicts are cached (an RSA or ECDSA check
/// costs tens of microseconds), keyed on the whole token.
impl Kind for JwtPolicy {
    fn name(&self) -> &'static str {
        "jwt"
    }

    fn query_params(&self) -> Vec<&str> {
        if self.from.query { vec![self.query_param.as_str()] } else { Vec::new() }
    }

    fn cookies(&self) -> Vec<CookieName> {
        if self.from.cookie { vec![CookieName::Exact(self.cookie.as_str().into())] } else { Vec::new() }
    }

    fn claim_headers(&self) -> Vec<HeaderName> {
        self.forward_claims.iter().map(|(_, h)| h.clone()).collect()
    }

    fn challenges_bearer(&self) -> bool {
        true
    }

    fn key_sources(&self) -> &[JwtKeySource] {
        &self.keys
    }

    fn key_ids(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter_map(|k| match k {
                JwtKeySource::Static(key) => Some(format!("jwt:{}", key.kid.as_deref().unwrap_or(""))),
                JwtKeySource::Set(_) => None,
            })
            .collect()
    }

    fn find<'r>(&self, req: &AuthRequest<'r>, found: &mut dyn FnMut(Presented<'r>)) -> Result<(), AuthError> {
        if self.from.header
            && let Some(token) = bearer(req.headers)?
        {
            found(Presented { carrier: Carrier::Header, credential: Cow::Borrowed(token) });
        }
        if self.from.query
            && let Some(raw) = req.found.get(&self.query_param)
        {
            let token = match query::decode_component(raw).map_err(|_| AuthError::Malformed)? {
                Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(b).map_err(|_| AuthError::Malformed)?),
                Cow::Owned(v) => Cow::Owned(String::from_utf8(v).map_err(|_| AuthError::Malformed)?),
            };
            found(Presented { carrier: Carrier::Query, credential: token });
        }
        if self.from.cookie
            && let Some(value) = cookie::find(req.headers, &self.cookie)?
        {
            let token = std::str::from_utf8(value).map_err(|_| AuthError::Malformed)?;
            found(Presented { carrier: Carrier::Cookie, credential: Cow::Borrowed(token) });
        }
        Ok(())
    }

    fn verify(&self, cred: &Presented<'_>, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, AuthError> {
        let token = &*cred.credential;
        let key = CacheKey::new(req.route_id, req.method, cred.carrier, req.path, token);
        let verdict = match ctx.cache.get(&key, ctx.now) {
            Some(verdict) => {
                ctx.counters.hit.inc();
                verdict
            }
            None => {
                ctx.counters.miss.inc();
                let verdict = match self.verify_traced(token, req.path, ctx.now, &mut ctx.tracer()) {
                    Ok(verified) => Verdict::Allow(verified),
                    Err(e) => Verdict::Deny(e),
                };
                ctx.cache.insert(key, verdict.clone(), ctx.now);
                verdict
            }
        };
        match verdict {
            Verdict::Allow(verified) => Ok(Grant {
                headers: verified.headers,
                scope: Some(verified.scope.unwrap_or_else(|| Scope::Path(req.path.into()))),
                key: verified.key,
                facts: verified.facts,
                ..Grant::plain(cred.carrier)
            }),
            Verdict::Deny(error) => Err(error),
        }
    }
}

/// The bearer token of the `Authorization` header. Two `Authorization`
/// headers are malformed; another scheme is not a credential of ours.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
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

impl JwtPolicy {
    /// Builds the policy.
    pub fn new(
        keys: Vec<JwtKeySource>,
        from: Carriers,
        query_param: String,
        cookie: String,
        rules: ClaimRules,
        forward_claims: Vec<(String, HeaderName)>,
    ) -> Self {
        JwtPolicy { keys, from, query_param, cookie, rules, forward_claims }
    }

    /// Whether any of the route's keys is a replaceable set (JWKS).
    pub fn has_key_sets(&self) -> bool {
        self.keys.iter().any(|k| matches!(k, JwtKeySource::Set(_)))
    }

    /// Verifies `token` for a request on `path` (decoded). `now` is unix seconds.
    pub fn verify(&self, token: &str, path: &str, now: u64) -> Result<Verified, AuthError> {
        self.verify_traced(token, path, now, &mut NoTrace)
    }

    /// [`JwtPolicy::verify`], reporting each check to `t` in order.
    pub fn verify_traced(&self, token: &str, path: &str, now: u64, t: &mut dyn Tracer) -> Result<Verified, AuthError> {
        let parsed = parse(token);
        let Some((signing_input, header, alg, signature, payload)) = parsed else {
            t.step("token", false, format_args!("not a JWS compact token tollgate accepts (three base64url parts, a JSON object header with a known alg, no crit)"));
            return Err(AuthError::BadSignature);
        };
        t.step("token", true, format_args!("alg {alg:?}, kid {:?}", header.kid.as_deref().unwrap_or("")));
        let key = match self.check_signature(alg, header.kid.as_deref(), signing_input.as_bytes(), &signature) {
            Ok(key) => {
                t.step("signature", true, format_args!("verifies with the route's key {key:?}"));
                key
            }
            Err(e) => {
                let why = if e == AuthError::UnknownKey {
                    "no key of this route has that kid"
                } else {
                    "no key of this route that takes this alg verifies it"
                };
                t.step("signature", false, format_args!("{why}"));
                return Err(e);
            }
        };
        // A payload that is not a JSON object is a malformed token, not a
        // token of the wrong scope (RFC 6750 `invalid_token`).
        let Some(claims) = decode_json::<Map<String, Value>>(payload) else {
            t.step("claims", false, format_args!("the payload is not a JSON object"));
            return Err(AuthError::BadSignature);
        };
        self.check_claims(&claims, path, now, key, t)
    }

    /// Finds a key for (`alg`, `kid`) whose signature check passes, and
    /// names it (`jwt:<kid>`). A `kid` no key has is `UnknownKey` (a JWKS
    /// set may be refetched); keys that exist but do not verify, or do not
    /// take `alg`, are `BadSignature`.
    fn check_signature(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
    ) -> Result<Arc<str>, AuthError> {
        let mut kid_known = kid.is_none();
        let mut check = |key: &JwtKey| {
            if let (Some(want), Some(have)) = (kid, key.kid.as_deref()) {
                kid_known |= want == have;
            }
            key.accepts(alg, kid) && key.verify(alg, message, signature)
        };
        let label = |key: &JwtKey| Arc::from(format!("jwt:{}", key.kid.as_deref().unwrap_or("")));
        for source in &self.keys {
            let verified = match source {
                JwtKeySource::Static(key) => check(key).then(|| label(key)),
                JwtKeySource::Set(set) => set.current().iter().find(|k| check(k)).map(|k| label(k)),
            };
            if let Some(key) = verified {
                return Ok(key);
            }
        }
        Err(if kid_known { AuthError::BadSignature } else { AuthError::UnknownKey })
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        path: &str,
        now: u64,
        key: Arc<str>,
        t: &mut dyn Tracer,
    ) -> Result<Verified, AuthError> {
        let rules = &self.rules;
        let fail = |t: &mut dyn Tracer, check, detail: std::fmt::Arguments<'_>, e| {
            t.step(check, false, detail);
            Err(e)
        };
        // Registered time claims that are absent (exp) or not a NumericDate
        // make the token invalid, whatever its signature: 401
        // `invalid_token` from a header, `bad_signature` from a URL.
        let Some(exp) = claims.get("exp").and_then(as_seconds) else {
            return fail(
                t,
                "expiry",
                format_args!("exp is missing or not an integer NumericDate"),
                AuthError::BadSignature,
            );
        };
        if exp.saturating_add(rules.leeway) < now {
            let ago = now - exp;
            return fail(
                t,
                "expiry",
                format_args!("exp {exp} passed {ago} s ago (leeway {} s)", rules.leeway),
                AuthError::Expired,
            );
        }
        t.step("expiry", true, format_args!("exp {exp} (now {now}, leeway {} s)", rules.leeway));
        if let Some(nbf) = claims.get("nbf") {
            let Some(nbf) = as_seconds(nbf) else {
                return fail(
                    t,
                    "not before",
                    format_args!("nbf is not an integer NumericDate"),
                    AuthError::BadSignature,
                );
            };
            if nbf > now.saturating_add(rules.leeway) {
                return fail(
                    t,
                    "not before",
                    format_args!("nbf {nbf} is {} s away", nbf - now),
                    AuthError::NotYetValid,
                );
            }
            t.step("not before", true, format_args!("nbf {nbf}"));
        }
        if !rules.issuers.is_empty() && !one_of(claims.get("iss"), &rules.issuers) {
            return fail(t, "issuer", format_args!("iss is not one of {:?}", rules.issuers), AuthError::ClaimMismatch);
        }
        if !rules.audiences.is_empty() && !one_of(claims.get("aud"), &rules.audiences) {
            return fail(
                t,
                "audience",
                format_args!("aud holds none of {:?}", rules.audiences),
                AuthError::ClaimMismatch,
            );
        }
        let iat = match claims.get("iat") {
            None => None,
            Some(v) => match as_seconds(v) {
                Some(iat) => Some(iat),
                None => {
                    return fail(
                        t,
                        "issued at",
                        format_args!("iat is not an integer NumericDate"),
                        AuthError::BadSignature,
                    );
                }
            },
        };
        if let Some(max) = self.rules.max_lifetime {
            let start = iat.unwrap_or(now);
            if exp.saturating_sub(start) > max {
                let life = exp.saturating_sub(start);
                return fail(
                    t,
                    "lifetime",
                    format_args!("{life} s from iat (or now) to exp, max_lifetime is {max} s"),
                    AuthError::ClaimMismatch,
                );
            }
        }
        for (name, want) in &self.rules.required {
            if !claim_has(claims.get(name), want) {
                return fail(t, "claims", format_args!("claim {name:?} must hold {want}"), AuthError::ClaimMismatch);
            }
        }
        let mut scope = None;
        if let Some(name) = &self.rules.path_claim {
            let granted = match claims.get(name) {
                Some(Value::String(p)) => path_matches(p, path).then_some(p.as_str()),
                Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
                    list.iter().filter_map(Value::as_str).find(|p| path_matches(p, path))
                }
                _ => {
                    return fail(
                        t,
                        "path",
                        format_args!("claim {name:?} is not a string or list of strings"),
                        AuthError::ClaimMismatch,
                    );
                }
            };
            let Some(pattern) = granted else {
                return fail(
                    t,
                    "path",
                    format_args!("no pattern of claim {name:?} grants {path:?}"),
                    AuthError::WrongResource,
                );
            };
            t.step("path", true, format_args!("{pattern:?} grants {path:?}"));
            scope = Some(match pattern.strip_suffix('*') {
                Some(prefix) if prefix.ends_with('/') => Scope::Prefix(prefix.into()),
                _ => Scope::Path(pattern.into()),
            });
        }
        let mut headers = Vec::with_capacity(self.forward_claims.len());
        for (claim, header) in &self.forward_claims {
            let text = match claims.get(claim) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            let value = HeaderValue::try_from(text).map_err(|_| AuthError::ClaimMismatch)?;
            headers.push((header.clone(), value));
        }
        // Only string ids and subjects are ids (RFC 7519 §4.1.2, §4.1.7); a
        // number there is no id, so a use-limited route refuses the token.
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(Arc::from);
        let facts = Facts { id: text("jti"), subject: text("sub"), issued_at: iat, expires_at: Some(exp) };
        Ok(Verified { exp, headers: headers.into(), scope, facts, key: Some(key) })
    }
}

/// The parts of a token whose shape and header tollgate accepts.
fn parse(token: &str) -> Option<(&str, TokenHeader, Algorithm, Vec<u8>, &str)> {
    if !well_formed(token) {
        return None;
    }
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    let header: TokenHeader = decode_json(header)?;
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: extensions we do not understand must fail.
        return None;
    }
    let alg: Algorithm = header.alg.parse().ok()?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    Some((signing_input, header, alg, signature, payload))
}

/// Three non-empty base64url segments and nothing else: rejects JWE (five
/// segments), padding, whitespace and oversized input before any parsing.
fn well_formed(token: &str) -> bool {
    let b = token.as_bytes();
    if b.is_empty() || b.len() > MAX_TOKEN_LEN {
        return false;
    }
    let mut dots = 0;
    let mut segment_len = 0;
    for &c in b {
        if c == b'.' {
            if segment_len == 0 {
                return false;
            }
            dots += 1;
            segment_len = 0;
        } else if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            segment_len += 1;
        } else {
            return false;
        }
    }
    dots == 2 && segment_len > 0
}

/// The JOSE header fields tollgate reads; every other field is ignored
/// (`jwk`, `jku`, `x5u`, `x5c` are never acted upon).
#[derive(serde::Deserialize)]
struct TokenHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// Decodes a segment that must hold a JSON object (RFC 7515 §4, RFC 7519
/// §7.2). A derived `Deserialize` would also take an array holding the
/// fields in order (`["HS256","k1"]`), which no JOSE library accepts.
fn decode_json<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// A claim that is one of `allowed`, or a list holding one of them.
fn one_of(claim: Option<&Value>, allowed: &[String]) -> bool {
    match claim {
        Some(Value::String(s)) => allowed.iter().any(|a| a == s),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(|s| allowed.iter().any(|a| a == s)),
        _ => false,
    }
}

/// A NumericDate as tollgate accepts it: a JSON integer from 0 to
/// `u64::MAX`. Negatives, integers past `u64::MAX` (which JSON parsers turn
/// into lossy floats), `1e300`, strings and `null` are refused, as
/// `jsonwebtoken` refuses them; tollgate also refuses fractions and
/// exponent forms (`1.5e9`), which the library rounds, so no float
/// rounding ever decides an expiry (a named difference in SECURITY.md).
/// A huge but integral `exp` is a long-lived token: `max_lifetime` is what
/// bounds it.
fn as_seconds(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// A claim satisfies a required value when it equals it, or is a list that
/// contains it.
fn claim_has(claim: Option<&Value>, want: &Value) -> bool {
    match claim {
        Some(Value::Array(list)) if !want.is_array() => list.contains(want),
        Some(v) => v == want,
        None => false,
    }
}

/// A path pattern is an exact path, or a prefix written `/dir/*`.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('/') => path.starts_with(prefix),
        _ => pattern == path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"jwt-unit-test-secret-0123456789abcdef";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn policy(rules: ClaimRules) -> JwtPolicy {
        let key = JwtKey::hmac(Some("k1".into()), SECRET, vec![Algorithm::HS256]).unwrap_or_else(|e| panic!("{e}"));
        JwtPolicy::new(
            vec![JwtKeySource::Static(Arc::new(key))],
            Carriers { header: true, ..Carriers::default() },
            "token".into(),
            "c".into(),
            rules,
            vec![("sub".into(), HeaderName::from_static("x-auth-subject"))],
        )
    }

    fn token(claims: Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap_or_default()
    }

    #[test]
    fn valid_token_forwards_claims() {
        let p = policy(ClaimRules::default());
        let t = token(json!({"sub": "alice", "exp": now() + 60}), Some("k1"));
        let v = p.verify(&t, "/x", now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.headers[0].1, "alice");
        assert_eq!(v.facts.subject.as_deref(), Some("alice"));
        assert_eq!(v.facts.id, None);
        let no_kid = token(json!({"sub": "alice", "exp": now() + 60}), None);
        assert!(p.verify(&no_kid, "/x", now()).is_ok());
    }

    #[test]
    fn time_checks_use_the_leeway() {
        let p = policy(ClaimRules { leeway: 30, ..ClaimRules::default() });
        let inside = token(json!({"exp": now() - 20}), None);
        assert!(p.verify(&inside, "/x", now()).is_ok());
        let outside = token(json!({"exp": now() - 40}), None);
        assert_eq!(p.verify(&outside, "/x", now()).err(), Some(AuthError::Expired));
        let future = token(json!({"exp": now() + 600, "nbf": now() + 300}), None);
        assert_eq!(p.verify(&future, "/x", now()).err(), Some(AuthError::NotYetValid));
        let no_exp = token(json!({"sub": "a"}), None);
        assert_eq!(p.verify(&no_exp, "/x", now()).err(), Some(AuthError::BadSignature));
        let never = token(json!({"exp": "never"}), None);
        assert_eq!(p.verify(&never, "/x", now()).err(), Some(AuthError::BadSignature));
    }

    #[test]
    fn claim_rules() {
        let p = policy(ClaimRules {
            issuers: vec!["https://idp".into()],
            audiences: vec!["media".into()],
            required: vec![("division".into(), json!("Honda"))],
            path_claim: Some("path".into()),
            max_lifetime: Some(3600),
            ..ClaimRules::default()
        });
        let base = json!({"iss": "https://idp", "aud": ["x", "media"], "division": "Honda",
                          "path": ["/m/u1/*", "/m/file"], "exp": now() + 60, "iat": now()});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            token(c, None)
        };
        assert!(p.verify(&token(base.clone(), None), "/m/u1/a/b", now()).is_ok());
        assert!(p.verify(&token(base.clone(), None), "/m/file", now()).is_ok());
        assert_eq!(p.verify(&token(base.clone(), None), "/m/u10/a", now()).err(), Some(AuthError::WrongResource));
        assert_eq!(
            p.verify(&with("iss", json!("https://evil")), "/m/file", now()).err(),
            Some(AuthError::ClaimMismatch)
        );
        assert_eq!(p.verify(&with("aud", json!("other")), "/m/file", now()).err(), Some(AuthError::ClaimMismatch));
        assert_eq!(
            p.verify(&with("division", json!("Toyota")), "/m/file", now()).err(),
            Some(AuthError::ClaimMismatch)
        );
        assert_eq!(p.verify(&with("path", json!(7)), "/m/file", now()).err(), Some(AuthError::ClaimMismatch));
        assert_eq!(p.verify(&with("iat", json!(now() - 7200)), "/m/file", now()).err(), Some(AuthError::ClaimMismatch));
        let mut missing_aud = base.clone();
        missing_aud.as_object_mut().map(|o| o.remove("aud"));
        assert_eq!(p.verify(&token(missing_aud, None), "/m/file", now()).err(), Some(AuthError::ClaimMismatch));
    }

    #[test]
    fn facts_for_the_stateful_stage() {
        let p = policy(ClaimRules::default());
        let (iat, exp) = (now() - 5, now() + 60);
        let t = token(json!({"jti": "j-1", "sub": "bob", "iat": iat, "exp": exp}), None);
        let v = p.verify(&t, "/x", now()).unwrap_or_else(|e| panic!("{e}"));
        let want =
            Facts { id: Some("j-1".into()), subject: Some("bob".into()), issued_at: Some(iat), expires_at: Some(exp) };
        assert_eq!(v.facts, want);
        let numeric = token(json!({"jti": 7, "sub": 8, "exp": exp}), None);
        let v = p.verify(&numeric, "/x", now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((v.facts.id, v.facts.subject), (None, None), "only strings are ids and subjects");
    }

    #[test]
    fn aud_is_ignored_when_not_configured() {
        let p = policy(ClaimRules::default());
        let t = token(json!({"aud": "someone", "exp": now() + 60}), None);
        assert!(p.verify(&t, "/x", now()).is_ok());
    }

    #[test]
    fn key_selection() {
        let p = policy(ClaimRules::default());
        let t = token(json!({"exp": now() + 60}), Some("other"));
        assert_eq!(p.verify(&t, "/x", now()).err(), Some(AuthError::UnknownKey));
        let forged = {
            let header = Header::new(Algorithm::HS256);
            let claims = json!({"exp": now() + 60});
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"another-secret-another-secret-xx"))
                .unwrap_or_default()
        };
        assert_eq!(p.verify(&forged, "/x", now()).err(), Some(AuthError::BadSignature));
        let hs384 = {
            let header = Header::new(Algorithm::HS384);
            jsonwebtoken::encode(&header, &json!({"exp": now() + 60}), &EncodingKey::from_secret(SECRET))
                .unwrap_or_default()
        };
        assert_eq!(p.verify(&hs384, "/x", now()).err(), Some(AuthError::BadSignature), "key pinned to HS256");
    }

    /// An HS256 token over a payload written as raw JSON text, so claim
    /// values no JSON library would produce (u64::MAX + 1) can be tested.
    fn raw_token(payload: &str) -> String {
        let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let input = format!("{head}.{}", URL_SAFE_NO_PAD.encode(payload));
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
        let sig = URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()));
        format!("{input}.{sig}")
    }

    /// Correctly signed tokens whose registered claims are not NumericDates
    /// are invalid tokens (401 `invalid_token` from a header), never a scope
    /// mismatch; no value panics.
    #[test]
    fn malformed_registered_claims_are_invalid_tokens() {
        let p = policy(ClaimRules { max_lifetime: Some(3600), ..ClaimRules::default() });
        let later = now() + 60;
        for exp in ["-1", "\"2000000000\"", "null", "1.5e9", "1e300", "18446744073709551616", "true", "[1]", "{}"] {
            let t = raw_token(&format!(r#"{{"exp":{exp}}}"#));
            assert_eq!(p.verify(&t, "/x", now()).err(), Some(AuthError::BadSignature), "exp {exp}");
        }
        for claim in ["nbf", "iat"] {
            for bad in ["-1", "\"1\"", "null", "1.5", "{}"] {
                let t = raw_token(&format!(r#"{{"exp":{later},"{claim}":{bad}}}"#));
                assert_eq!(p.verify(&t, "/x", now()).err(), Some(AuthError::BadSignature), "{claim} {bad}");
            }
        }
        for payload in ["[]", "7", "\"x\"", "null"] {
            assert_eq!(p.verify(&raw_token(payload), "/x", now()).err(), Some(AuthError::BadSignature), "{payload}");
        }
        // The largest integral exp parses, and max_lifetime still bounds it.
        let far = raw_token(&format!(r#"{{"exp":{}}}"#, u64::MAX));
        assert_eq!(p.verify(&far, "/x", now()).err(), Some(AuthError::ClaimMismatch));
        let unbounded = policy(ClaimRules::default());
        assert!(unbounded.verify(&far, "/x", now()).is_ok());
        assert!(p.verify(&raw_token(&format!(r#"{{"exp":{later}}}"#)), "/x", now()).is_ok());
    }

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

    #[test]
    fn shapes_are_checked_before_parsing() {
        assert!(well_formed("a.b.c"));
        for bad in ["", "a.b", "a.b.c.d", "a.b.c.d.e", "a..c", "a.b.c=", "a.b .c", ".b.c", "a.b."] {
            assert!(!well_formed(bad), "{bad:?}");
        }
        assert!(!well_formed(&"a".repeat(MAX_TOKEN_LEN + 1)));
    }

    #[test]
    fn path_patterns() {
        assert!(path_matches("/a/b", "/a/b"));
        assert!(!path_matches("/a/b", "/a/b/c"));
        assert!(path_matches("/a/*", "/a/b/c"));
        assert!(!path_matches("/a/*", "/ab"));
        assert!(!path_matches("/a*", "/ab"), "a prefix must end with /*");
    }
}
