//! Path tokens (docs/reference.md: Path tokens): a prefix grant written as one path segment,
//! `<marker>~<exp>~[<kid>~]<sig>`, placed right after the prefix it grants.
//!
//! ```text
//! /media/u1/tg~1893456000~<sig>/720p/seg-1.ts
//! TOLLGATE-HMAC-SHA256-PATH \n GET \n exp \n kid \n /media/u1/ \n (empty)
//! ```
//! A player resolves relative segment URLs against the manifest's URL, so
//! everything below the token segment inherits the grant, while the query
//! (which players rewrite) is not signed. The first line differs from the
//! query-signed schemes, so no signature of one form verifies as another,
//! and the granted prefix is the path *before* the segment, so moving the
//! segment up or down a level breaks the signature.

use std::borrow::Cow;
use std::ops::Range;

use super::hmac::{self as signed_url, SignedUrlPolicy, ToSign};
use crate::auth::error::{AuthError, Carrier};
use crate::auth::grant::Facts;
use crate::auth::grant::Grant;
use crate::auth::grant::Scope;
use crate::auth::kind::AuthRequest;
use crate::auth::kind::Kind;
use crate::auth::kind::NoTrace;
use crate::auth::kind::Presented;
use crate::auth::kind::Tracer;
use crate::auth::kind::VerifyContext;
use crate::duration::human;
use crate::normalize;

/// First line of a path token's string to sign.
pub const SCHEME_PATH: &str = "TOLLGATE-HMAC-SHA256-PATH";

/// The default marker: `/media/u1/tg~.../`.
pub const DEFAULT_MARKER: &str = "tg";

/// The kind: path tokens under a route's signed-URL keys.
#[derive(Debug, Clone)]
pub struct PathTokens {
    /// Keys and the longest lifetime, shared with the route's signed URLs.
    pub policy: SignedUrlPolicy,
    /// The segment's marker (`tg`).
    pub marker: Box<str>,
}

impl Kind for PathTokens {
    fn name(&self) -> &'static str {
        "path_token"
    }

    fn find<'r>(&self, req: &AuthRequest<'r>, found: &mut dyn FnMut(Presented<'r>)) -> Result<(), AuthError> {
        if let Some(token) = find(req.raw_path, &self.marker)? {
            let segment = &req.raw_path[token.span.start + 1..token.span.end];
            found(Presented { carrier: Carrier::PathToken, credential: Cow::Borrowed(segment) });
        }
        Ok(())
    }

    fn path_marker(&self) -> Option<&str> {
        Some(&self.marker)
    }

    fn key_ids(&self) -> Vec<String> {
        self.policy.keys.iter().map(|k| format!("path_token:{}", k.id)).collect()
    }

    /// One HMAC, like a query-signed URL: never cached.
    fn verify(&self, _: &Presented<'_>, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, AuthError> {
        let token = find(req.raw_path, &self.marker)?.ok_or(AuthError::MissingCredential)?;
        let key = verify_traced(
            &self.policy,
            req.method,
            req.raw_path,
            &token,
            req.route_prefix,
            ctx.now,
            &mut ctx.tracer(),
        )?;
        let prefix = normalize::check_path(token.raw_prefix(req.raw_path)).map_err(|_| AuthError::Malformed)?;
        Ok(Grant {
            scope: Some(Scope::Prefix(prefix.decoded.into())),
            key: Some(std::sync::Arc::from(format!("path_token:{}", key.id))),
            facts: Facts { expires_at: signed_url::parse_exp(token.exp), ..Facts::default() },
            path_span: Some(token.span),
            ..Grant::plain(Carrier::PathToken)
        })
    }
}

/// A token segment found in a raw request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathToken<'a> {
    /// Bytes of the raw path taken by `/<segment>` (its leading slash
    /// included): removing them gives the path the upstream sees.
    pub span: Range<usize>,
    pub exp: &'a str,
    pub kid: Option<&'a str>,
    pub sig: &'a str,
}

impl PathToken<'_> {
    /// The raw granted prefix (up to and including the slash before the
    /// segment).
    pub fn raw_prefix<'p>(&self, raw_path: &'p str) -> &'p str {
        &raw_path[..=self.span.start]
    }

    /// The raw path without the token segment.
    pub fn strip(&self, raw_path: &str) -> String {
        let mut out = String::with_capacity(raw_path.len() - self.span.len());
        out.push_str(&raw_path[..self.span.start]);
        out.push_str(&raw_path[self.span.end..]);
        out
    }
}

/// Finds the token segment of `raw_path` (already in normal form).
/// `Ok(None)` when there is none; two token segments, a segment that only
/// decodes to one (`tg%7E...`), or a token segment that is not
/// `exp~[kid~]sig` are malformed.
pub fn find<'a>(raw_path: &'a str, marker: &str) -> Result<Option<PathToken<'a>>, AuthError> {
    let mut found = None;
    let mut start = 0;
    while let Some(slash) = raw_path[start..].find('/').map(|i| start + i) {
        let end = raw_path[slash + 1..].find('/').map_or(raw_path.len(), |i| slash + 1 + i);
        let segment = &raw_path[slash + 1..end];
        let body = segment.strip_prefix(marker).and_then(|rest| rest.strip_prefix('~'));
        if let Some(body) = body {
            if found.is_some() {
                return Err(AuthError::Malformed);
            }
            found = Some(parse(body, slash..end)?);
        } else if segment.contains('%') && disguised(segment, marker) {
            return Err(AuthError::Malformed);
        }
        start = end;
        if end == raw_path.len() {
            break;
        }
    }
    Ok(found)
}

/// The raw path with every segment that is, or decodes to, a token segment
/// of one of `markers` replaced by `<marker>~REDACTED`: what logs print. A
/// path token is a replayable grant, valid or not yet checked.
pub fn redact<'p>(raw_path: &'p str, markers: &[Box<str>]) -> Cow<'p, str> {
    let is_token = |segment: &str, marker: &str| {
        segment.strip_prefix(marker).is_some_and(|rest| rest.starts_with('~'))
            || (segment.contains('%') && disguised(segment, marker))
    };
    let hit = |segment: &str| markers.iter().find(|m| is_token(segment, m));
    if !raw_path.split('/').any(|segment| hit(segment).is_some()) {
        return Cow::Borrowed(raw_path);
    }
    let mut out = String::with_capacity(raw_path.len());
    for (i, segment) in raw_path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match hit(segment) {
            Some(marker) => {
                out.push_str(marker);
                out.push_str("~REDACTED");
            }
            None => out.push_str(segment),
        }
    }
    Cow::Owned(out)
}

/// Whether a percent-encoded segment decodes to a token segment.
fn disguised(segment: &str, marker: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(segment).collect::<Vec<u8>>();
    decoded.strip_prefix(marker.as_bytes()).is_some_and(|rest| rest.starts_with(b"~"))
}

fn parse(body: &str, span: Range<usize>) -> Result<PathToken<'_>, AuthError> {
    let mut fields = body.split('~');
    let (exp, second, third, extra) = (fields.next(), fields.next(), fields.next(), fields.next());
    let (exp, kid, sig) = match (exp, second, third, extra) {
        (Some(exp), Some(sig), None, None) => (exp, None, sig),
        (Some(exp), Some(kid), Some(sig), None) => (exp, Some(kid), sig),
        _ => return Err(AuthError::Malformed),
    };
    if signed_url::parse_exp(exp).is_none() || kid.is_some_and(|k| !signed_url::valid_kid(k)) {
        return Err(AuthError::Malformed);
    }
    Ok(PathToken { span, exp, kid, sig })
}

/// Verifies a path token for a request. `raw_path` is the path the token
/// was found in; `route_prefix` the decoded prefix of the route it matched.
pub fn verify(
    policy: &SignedUrlPolicy,
    method: &str,
    raw_path: &str,
    token: &PathToken<'_>,
    route_prefix: &str,
    now: u64,
) -> Result<(), AuthError> {
    verify_traced(policy, method, raw_path, token, route_prefix, now, &mut NoTrace).map(|_| ())
}

/// [`verify`], reporting each check to `t` in order (`tollgate explain`).
pub fn verify_traced<'p>(
    policy: &'p SignedUrlPolicy,
    method: &str,
    raw_path: &str,
    token: &PathToken<'_>,
    route_prefix: &str,
    now: u64,
    t: &mut dyn Tracer,
) -> Result<&'p crate::auth::keys::HmacKey, AuthError> {
    let exp = signed_url::parse_exp(token.exp).ok_or(AuthError::Malformed)?;
    let key = match token.kid {
        Some(kid) => policy.keys.get(kid),
        None => policy.keys.first(),
    };
    let Some(key) = key else {
        t.step("key", false, format_args!("no key of this route has kid {:?}", token.kid.unwrap_or("")));
        return Err(AuthError::UnknownKey);
    };
    t.step("key", true, format_args!("key id {:?}", key.id));
    if now > exp {
        t.step("expiry", false, format_args!("exp {exp} passed {} ago (now {now})", human(now - exp)));
        return Err(AuthError::Expired);
    }
    if let Some(max) = policy.max_ttl.filter(|max| exp - now > *max) {
        t.step(
            "expiry",
            false,
            format_args!(
                "the token lives {} more, longer than the route's max_ttl {} (sign it with a --ttl of {} or less)",
                human(exp - now),
                human(max),
                human(max)
            ),
        );
        return Err(AuthError::ClaimMismatch);
    }
    t.step("expiry", true, format_args!("exp {exp}: in {} (now {now})", human(exp - now)));
    let prefix = normalize::check_path(token.raw_prefix(raw_path)).map_err(|_| AuthError::Malformed)?;
    let to_sign = ToSign {
        scheme: SCHEME_PATH,
        method: "GET",
        exp: token.exp,
        kid: token.kid.unwrap_or(""),
        resource: &prefix.decoded,
        canonical_query: "",
    };
    let verified = signed_url::decode_signature(token.sig).is_some_and(|given| to_sign.verifies(key, &given));
    if !verified {
        let text = to_sign.text();
        t.step(
            "signature",
            false,
            format_args!(
                "mismatch; tollgate expected the HMAC-SHA256 of:{}{}",
                signed_url::Visible(&text),
                signed_url::KeyHint(key)
            ),
        );
        return Err(AuthError::BadSignature);
    }
    t.step("signature", true, format_args!("matches ({SCHEME_PATH}), granting {:?}", prefix.decoded));
    // A path token grants reads only, and never above the route it is on.
    if method != "GET" && method != "HEAD" {
        t.step("method", false, format_args!("a path token grants GET and HEAD, not {method}"));
        return Err(AuthError::WrongMethod);
    }
    if !prefix.decoded.starts_with(route_prefix) {
        t.step("prefix", false, format_args!("{:?} is above the route's prefix {route_prefix:?}", prefix.decoded));
        return Err(AuthError::WrongResource);
    }
    t.step("prefix", true, format_args!("everything under {:?}", prefix.decoded));
    Ok(key)
}

/// Errors from [`sign_path`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignPathError {
    #[error("the path is not in normal form ({0:?}); tollgate would refuse it")]
    NotNormal(normalize::NotNormal),
    #[error("prefix must be a normal path that starts and ends with /, and the path must lie under it")]
    BadPrefix,
    #[error("kid must match [A-Za-z0-9._-]{{1,64}}")]
    BadKid,
    #[error("the marker must match [A-Za-z0-9_-]{{1,16}}")]
    BadMarker,
}

/// Whether `marker` can start a token segment: short, and nothing a path
/// would need to encode.
pub fn valid_marker(marker: &str) -> bool {
    (1..=16).contains(&marker.len()) && marker.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Writes a path token for the raw `target` path, granting `prefix` (a
/// decoded path ending in `/`; default: the target's directory), and
/// returns the target with the token segment inserted after the prefix.
pub fn sign_path(
    key: &crate::auth::keys::HmacKey,
    target: &str,
    exp: u64,
    kid: Option<&str>,
    prefix: Option<&str>,
    marker: &str,
) -> Result<String, SignPathError> {
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    normalize::check_path(raw_path).map_err(SignPathError::NotNormal)?;
    if !valid_marker(marker) {
        return Err(SignPathError::BadMarker);
    }
    if kid.is_some_and(|k| !signed_url::valid_kid(k)) {
        return Err(SignPathError::BadKid);
    }
    // The raw prefix: the leading part of the raw path whose decoding is
    // the requested prefix (segments decode one by one, `/` is never encoded).
    let raw_prefix = match prefix {
        None => &raw_path[..=raw_path.rfind('/').unwrap_or(0)],
        Some(want) => {
            let cut = raw_path
                .match_indices('/')
                .map(|(i, _)| &raw_path[..=i])
                .find(|p| normalize::check_path(p).is_ok_and(|n| n.decoded == want));
            cut.ok_or(SignPathError::BadPrefix)?
        }
    };
    let decoded = normalize::check_path(raw_prefix).map_err(SignPathError::NotNormal)?;
    let exp = exp.to_string();
    let sig = ToSign {
        scheme: SCHEME_PATH,
        method: "GET",
        exp: &exp,
        kid: kid.unwrap_or(""),
        resource: &decoded.decoded,
        canonical_query: "",
    }
    .signature(key);
    let mut out = String::with_capacity(target.len() + 80);
    out.push_str(raw_prefix);
    out.push_str(marker);
    out.push('~');
    out.push_str(&exp);
    if let Some(k) = kid {
        out.push('~');
        out.push_str(k);
    }
    out.push('~');
    out.push_str(&sig);
    out.push('/');
    out.push_str(&raw_path[raw_prefix.len()..]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::keys::HmacKey;

    const SECRET: &[u8] = b"tollgate-test-vector-secret-0123456789abcdef";
    const EXP: u64 = 1_893_456_000;

    fn policy(secret: &[u8]) -> SignedUrlPolicy {
        SignedUrlPolicy { keys: vec![Arc::new(HmacKey::new("k2026", secret))].into(), max_ttl: None }
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        secret: String,
        method: String,
        marker: String,
        request_target: String,
        string_to_sign: String,
        sig: String,
        granted_prefix: String,
        forwarded_target: String,
    }

    /// Every case of `shared/vectors/path-token.json`: the string to sign,
    /// the signature, verification, the granted prefix and what is forwarded.
    #[test]
    fn shared_vectors() {
        let text = include_str!("../../../tests/vectors/path-token.json");
        let vectors: Vec<Vector> = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(vectors.len() >= 5);
        for v in vectors {
            let key = HmacKey::new("k2026", v.secret.as_bytes());
            let (raw_path, query) = v.request_target.split_once('?').unwrap_or((&v.request_target, ""));
            let token = find(raw_path, &v.marker).ok().flatten().unwrap_or_else(|| panic!("{}: no token", v.name));
            let prefix = normalize::check_path(token.raw_prefix(raw_path)).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(prefix.decoded, v.granted_prefix, "{}", v.name);
            let to_sign = ToSign {
                scheme: SCHEME_PATH,
                method: &v.method,
                exp: token.exp,
                kid: token.kid.unwrap_or(""),
                resource: &prefix.decoded,
                canonical_query: "",
            };
            assert_eq!(to_sign.text(), v.string_to_sign, "{}", v.name);
            assert_eq!(to_sign.signature(&key), v.sig, "{}", v.name);
            assert_eq!(token.sig, v.sig, "{}", v.name);
            let p = policy(v.secret.as_bytes());
            assert_eq!(verify(&p, &v.method, raw_path, &token, "/media/", EXP - 60), Ok(()), "{}", v.name);
            let mut forwarded = token.strip(raw_path);
            if !query.is_empty() {
                forwarded = format!("{forwarded}?{query}");
            }
            assert_eq!(forwarded, v.forwarded_target, "{}", v.name);
            // Signing the forwarded target under the granted prefix gives the
            // request target back.
            let resigned = sign_path(&key, &v.forwarded_target, EXP, token.kid, Some(&v.granted_prefix), &v.marker);
            assert_eq!(resigned.as_deref(), Ok(v.request_target.as_str()), "{}", v.name);
        }
    }

    #[derive(serde::Deserialize)]
    struct Refused {
        name: String,
        secret: String,
        method: String,
        request_target: String,
        error: String,
    }

    /// Every case of `shared/vectors/signed-url-refused.json` is refused with
    /// its code, on a route that takes both query-signed URLs and path tokens.
    #[test]
    fn shared_refused_vectors() {
        let text = include_str!("../../../tests/vectors/signed-url-refused.json");
        let vectors: Vec<Refused> = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(vectors.len() >= 4);
        for v in vectors {
            let p = policy(v.secret.as_bytes());
            let (raw_path, query) = v.request_target.split_once('?').unwrap_or((&v.request_target, ""));
            let path = normalize::check_path(raw_path).unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
            let names = crate::auth::query::CredentialNames::signed_url();
            let found = crate::auth::query::scan(query, &names).unwrap_or_default();
            let verdict = match find(raw_path, "tg") {
                Ok(Some(token)) if !found.any() => verify(&p, &v.method, raw_path, &token, "/media/", EXP - 60),
                Ok(None) => {
                    crate::auth::kinds::signed_url::verify(&p, &v.method, &path.decoded, query, &found, EXP - 60)
                }
                other => panic!("{}: {other:?}", v.name),
            };
            assert_eq!(verdict.map_err(AuthError::code), Err(v.error.as_str()), "{}", v.name);
        }
    }

    #[test]
    fn refusals() {
        let p = policy(SECRET);
        let key = HmacKey::new("k2026", SECRET);
        let url = sign_path(&key, "/media/u1/index.m3u8", EXP, None, None, "tg").unwrap_or_default();
        let check = |method: &str, path: &str, now: u64| -> Result<(), AuthError> {
            let token = find(path, "tg")?.ok_or(AuthError::MissingCredential)?;
            verify(&p, method, path, &token, "/media/", now)
        };
        assert_eq!(check("GET", &url, EXP - 1), Ok(()));
        assert_eq!(check("HEAD", &url, EXP - 1), Ok(()));
        assert_eq!(check("GET", &url, EXP + 1), Err(AuthError::Expired));
        assert_eq!(check("PUT", &url, EXP - 1), Err(AuthError::WrongMethod));
        assert_eq!(check("GET", &url.replace("/u1/", "/u2/"), EXP - 1), Err(AuthError::BadSignature));
        let moved = url.replace("/media/u1/tg~", "/media/tg~").replace("/index.m3u8", "/u1/index.m3u8");
        assert_eq!(check("GET", &moved, EXP - 1), Err(AuthError::BadSignature));
        let twice = format!("{}/tg~1~x/a", url.rsplit_once('/').map(|(a, _)| a).unwrap_or_default());
        assert_eq!(check("GET", &twice, EXP - 1), Err(AuthError::Malformed));
        assert_eq!(check("GET", &url.replace("tg~", "tg%7E"), EXP - 1), Err(AuthError::Malformed));
        assert_eq!(check("GET", &url.replace("tg~", "%74g~"), EXP - 1), Err(AuthError::Malformed));
        for bad in ["/m/tg~/x", "/m/tg~1/x", "/m/tg~01~sig/x", "/m/tg~1~k~s~x/x", "/m/tg~1~a%20b~s/x"] {
            assert_eq!(find(bad, "tg"), Err(AuthError::Malformed), "{bad}");
        }
        assert_eq!(find("/m/tgx~1~s/x", "tg"), Ok(None));
        let other_key = sign_path(&HmacKey::new("k2026", &[9u8; 32]), "/media/u1/a", EXP, None, None, "tg");
        assert_eq!(check("GET", &other_key.unwrap_or_default(), EXP - 1), Err(AuthError::BadSignature));
        let unknown = sign_path(&key, "/media/u1/a", EXP, Some("nope"), None, "tg").unwrap_or_default();
        assert_eq!(check("GET", &unknown, EXP - 1), Err(AuthError::UnknownKey));
    }

    #[test]
    fn logs_see_token_segments_redacted() {
        let markers: Vec<Box<str>> = vec!["tg".into(), "k".into()];
        assert_eq!(redact("/m/u1/tg~1~sig/a.ts", &markers), "/m/u1/tg~REDACTED/a.ts");
        assert_eq!(redact("/m/tg%7E1~sig/a", &markers), "/m/tg~REDACTED/a");
        assert_eq!(redact("/m/k~1~kid~sig/", &markers), "/m/k~REDACTED/");
        assert_eq!(redact("/m/tgx~1/a~b", &markers), "/m/tgx~1/a~b");
        assert!(matches!(redact("/m/a.ts", &markers), Cow::Borrowed(_)));
    }

    #[test]
    fn signing_picks_the_raw_prefix() {
        let key = HmacKey::new("k", SECRET);
        let url = sign_path(&key, "/m/caf%C3%A9/a%20b.ts?x=1", EXP, None, Some("/m/café/"), "tg").unwrap_or_default();
        assert!(url.starts_with("/m/caf%C3%A9/tg~1893456000~") && url.ends_with("/a%20b.ts?x=1"), "{url}");
        assert_eq!(sign_path(&key, "/m/a/b", EXP, None, Some("/x/"), "tg"), Err(SignPathError::BadPrefix));
        assert_eq!(sign_path(&key, "/m/a/b", EXP, None, Some("/m/a"), "tg"), Err(SignPathError::BadPrefix));
        assert_eq!(sign_path(&key, "/m/a/b", EXP, None, None, "t~g"), Err(SignPathError::BadMarker));
    }
}
