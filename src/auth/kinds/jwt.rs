//! Bearer tokens (README: Bearer tokens): the key is selected by `kid` and `alg` among the
//! route's keys, the signature checked with that key's pre-parsed aws-lc
//! verifier, then the claims: `exp` (required), `nbf`, `iss`, `aud`,
//! maximum lifetime, required values and path binding.
//!
//! The pitfalls README: Bearer tokens lists for `jsonwebtoken` are avoided by
//! construction: the accepted algorithms come from the key, never from the
//! token (`none` is not an algorithm at all); `nbf` is always checked; the
//! leeway is explicit; a claim of the wrong type (`"exp": "never"`) is a
//! refusal, never a skipped check; `aud` is checked only when configured.
//! Verifying with keys parsed once (rather than through `jsonwebtoken::decode`,
//! which re-parses the public key on every call) keeps uncached RS256 close
//! to the cost of the RSA operation itself (see BENCHMARKS.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::borrow::Cow;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
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
use crate::auth::section::{CarrierFile, CompileContext, Compiled, Registered, parse_section};
use crate::auth::sign::{OPTION_PREFIX, SignInput, SignOption, Signer, append_query, split_origin};
use crate::duration::HumanDuration;

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

    fn id_lifetime(&self) -> Option<Option<u64>> {
        Some(self.rules.max_lifetime.map(|m| m + self.rules.leeway))
    }

    fn leeway(&self) -> Option<u64> {
        Some(self.rules.leeway)
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
                JwtKeySource::Set(set) => set.current().for_kid(kid).find(|k| check(k)).map(|k| label(k)),
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
                    format_args!("nbf {nbf}: in {}", crate::duration::human(nbf - now)),
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
        let facts =
            Facts { id: text("jti"), subject: text("sub"), issued_at: iat, expires_at: Some(exp), fingerprint: None };
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

// ---- Its section of `routes[].auth`, its signer and its minting ----

/// `auth.jwt`: bearer tokens from a header, the query or a cookie.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    pub keys: Vec<String>,
    pub from: Option<Vec<CarrierFile>>,
    pub query_param: Option<String>,
    pub cookie: Option<String>,
    pub issuer: Option<OneOrMany>,
    pub audience: Option<OneOrMany>,
    pub leeway: Option<HumanDuration>,
    pub max_lifetime: Option<HumanDuration>,
    #[serde(default)]
    pub require: BTreeMap<String, serde_json::Value>,
    pub path_claim: Option<String>,
    /// Accept query-string tokens without a path claim (not recommended).
    #[serde(default)]
    pub allow_unbound_query_tokens: bool,
    /// Claims forwarded as request headers, e.g. `sub: X-Auth-Subject`.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
}

/// One value or a list of them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Clock leeway when the route sets none (README: Bearer tokens).
pub const DEFAULT_LEEWAY: u64 = 30;

/// The kind's registration (see `kinds/mod.rs`).
pub struct Section;

/// Listed in `kinds::REGISTRY`.
pub static SECTION: Section = Section;

impl Registered for Section {
    fn section(&self) -> &'static str {
        "jwt"
    }

    fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<JwtFile>()
    }

    fn compile(&self, cx: &mut dyn CompileContext, path: &str, section: serde_yaml_ng::Value) -> Compiled {
        let Some(raw) = parse_section::<JwtFile>(cx, path, section) else { return Vec::new() };
        if raw.keys.is_empty() {
            cx.error(&format!("{path}.keys"), "list at least one key".to_owned());
        }
        let mut keys = Vec::new();
        for (i, name) in raw.keys.iter().enumerate() {
            let kpath = format!("{path}.keys[{i}]");
            if let Some(key) = cx.key(&kpath, name) {
                match key.jwt_source() {
                    Some(source) => keys.push(source),
                    None => cx.error(&kpath, format!("key {name:?} is a CDN secret, not a JWT key")),
                }
            }
        }
        let mut from = Carriers::default();
        for carrier in raw.from.unwrap_or_else(|| vec![CarrierFile::Header]) {
            match carrier {
                CarrierFile::Header => from.header = true,
                CarrierFile::Query => from.query = true,
                CarrierFile::Cookie => from.cookie = true,
            }
        }
        if from.query && raw.path_claim.is_none() && !raw.allow_unbound_query_tokens {
            cx.error(
                &format!("{path}.from"),
                "tokens in the query string must be path-bound: set path_claim (or allow_unbound_query_tokens: true)"
                    .to_owned(),
            );
        }
        let query_param = raw.query_param.unwrap_or_else(|| "token".to_owned());
        if cx.counts_ids() && query_param == query::ID_PARAM {
            let why = "jti is the signed URL's id on routes with use_limit or revocation".to_owned();
            cx.error(&format!("{path}.query_param"), why);
        }
        if matches!(query_param.as_str(), "exp" | "sig" | "kid" | "prefix") || query_param.is_empty() {
            let why = "must be a non-empty name other than exp, sig, kid and prefix".to_owned();
            cx.error(&format!("{path}.query_param"), why);
        }
        let cookie = raw.cookie.unwrap_or_else(|| "tollgate_token".to_owned());
        if cookie.is_empty() || cookie.bytes().any(|b| b <= b' ' || b"=;,\"".contains(&b)) {
            cx.error(&format!("{path}.cookie"), "must be a valid cookie name".to_owned());
        }
        let mut forward_claims = Vec::new();
        for (claim, header) in raw.forward_claims {
            let hpath = format!("{path}.forward_claims.{claim}");
            match HeaderName::from_bytes(header.as_bytes()) {
                Ok(h) if !reserved_header(&h) => forward_claims.push((claim, h)),
                Ok(_) => cx.error(&hpath, format!("{header} is managed by tollgate or the protocol")),
                Err(_) => cx.error(&hpath, format!("{header:?} is not a valid header name")),
            }
        }
        let rules = ClaimRules {
            issuers: raw.issuer.map(OneOrMany::into_vec).unwrap_or_default(),
            audiences: raw.audience.map(OneOrMany::into_vec).unwrap_or_default(),
            leeway: raw.leeway.map_or(DEFAULT_LEEWAY, |d| d.0.as_secs()),
            max_lifetime: raw.max_lifetime.map(|d| d.0.as_secs()),
            required: raw.require.into_iter().collect(),
            path_claim: raw.path_claim,
        };
        vec![Box::new(JwtPolicy::new(keys, from, query_param, cookie, rules, forward_claims))]
    }

    fn signer(&self) -> &dyn Signer {
        self
    }
}

/// Headers a claim may not be forwarded as.
fn reserved_header(h: &HeaderName) -> bool {
    let n = h.as_str();
    matches!(
        n,
        "host"
            | "authorization"
            | "cookie"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "te"
            | "upgrade"
            | "keep-alive"
            | "proxy-authorization"
            | "forwarded"
    ) || n.starts_with("x-forwarded-")
}

impl Signer for Section {
    fn format(&self) -> &'static str {
        "jwt"
    }

    fn options(&self) -> &'static [SignOption] {
        const OPTIONS: &[SignOption] = &[
            OPTION_PREFIX,
            SignOption {
                name: "query-param",
                value: Some("NAME"),
                help: "jwt: the route's token query parameter",
                default: Some("token"),
            },
        ];
        OPTIONS
    }

    /// A link carrying an HS256 token bound to the target's path (or to
    /// `--prefix`), in the route's query parameter.
    fn sign(&self, input: &SignInput<'_>) -> Result<String, String> {
        let (_, target) = split_origin(input.target);
        let path = target.split_once('?').map_or(&*target, |(p, _)| p);
        let pattern = match input.option("prefix") {
            Some(prefix) if prefix.ends_with('/') => format!("{prefix}*"),
            Some(_) => return Err("--prefix must end with /".to_owned()),
            None => crate::normalize::check_path(path)
                .map_err(|e| format!("the path is not in normal form ({e:?}); tollgate would refuse it"))?
                .decoded
                .into_owned(),
        };
        let now = crate::auth::cache::unix_now();
        let mut claims = Map::new();
        claims.insert("path".into(), Value::from(vec![pattern]));
        let token = mint(
            &TokenKey::Secret(input.key.hmac()?),
            Algorithm::HS256,
            input.kid,
            input.exp.saturating_sub(now),
            claims,
        )?;
        Ok(append_query(input.target, &[(input.option("query-param").unwrap_or("token"), token)]))
    }
}

/// The key material a token is signed with.
pub enum TokenKey {
    Secret(Vec<u8>),
    PrivatePem(Vec<u8>),
}

/// Mints a JWT (`tollgate token`, `tollgate sign --format jwt`): `claims`
/// merged over `exp = now + ttl` and `iat = now`.
pub fn mint(
    key: &TokenKey,
    alg: Algorithm,
    kid: Option<&str>,
    ttl_secs: u64,
    claims: Map<String, Value>,
) -> Result<String, String> {
    use jsonwebtoken::{AlgorithmFamily, EncodingKey, Header};
    let encoding = match (key, alg.family()) {
        (TokenKey::Secret(s), AlgorithmFamily::Hmac) => EncodingKey::from_secret(s),
        (TokenKey::PrivatePem(pem), AlgorithmFamily::Rsa) => {
            EncodingKey::from_rsa_pem(pem).map_err(|e| e.to_string())?
        }
        (TokenKey::PrivatePem(pem), AlgorithmFamily::Ec) => EncodingKey::from_ec_pem(pem).map_err(|e| e.to_string())?,
        (TokenKey::PrivatePem(pem), AlgorithmFamily::Ed) => EncodingKey::from_ed_pem(pem).map_err(|e| e.to_string())?,
        (TokenKey::Secret(_), _) => {
            return Err(format!("{alg:?} needs --private-key, not an HMAC secret"));
        }
        (TokenKey::PrivatePem(_), _) => {
            return Err(format!("{alg:?} needs an HMAC secret, not a private key"));
        }
    };
    let now = crate::auth::cache::unix_now();
    let mut body = Map::new();
    body.insert("iat".into(), now.into());
    body.insert("exp".into(), (now + ttl_secs).into());
    body.extend(claims);
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &body, &encoding).map_err(|e| e.to_string())
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
