//! Cookie exchange (README: Cookies, CORS): a top-level navigation that carries a valid
//! URL credential is redirected to the clean URL with a cookie granting
//! exactly what the URL granted, so the credential leaves the address bar,
//! history, bookmarks and every Referer.
//!
//! ```text
//! name:  <prefix>_<8 hex of SHA-256(route \n mode \n scope)>   one cookie per route and grant
//! value: <exp>.<mode>.<base64url(scope)>.<base64url(key)>.<sig>  mode: p (prefix) | e (one path)
//! TOLLGATE-HMAC-SHA256-COOKIE2 \n GET \n exp \n mode \n scope \n key=<key>&route=<route>
//! ```
//! The last line is a canonical query (docs/reference.md: Signed URLs): `key` names the key that
//! verified the link (`<kind>:<key id>`, e.g. `signed_url:media`), `route`
//! the route's name. So a cookie
//! - verifies only on the route that minted it, whatever other route shares
//!   the host or the cookie key (sharing one is a configuration error too);
//! - stops working when the key that verified its link leaves the route;
//! - never verifies as a URL signature, and no URL signature (or cookie of
//!   the first format, `-COOKIE`) verifies as a cookie: its own first line.
//!
//! Its scope is clipped to the route's prefix, it grants GET and HEAD only,
//! for at most as long as the URL did. When several of a route's cookies
//! cover a path (a prefix and a deeper one), the most specific is the one
//! presented.

use std::borrow::Cow;
use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::hmac::{self as signed_url, ToSign};
use crate::auth::cookie;
use crate::auth::error::{AuthError, Carrier};
use crate::auth::grant::Facts;
use crate::auth::grant::Grant;
use crate::auth::grant::Scope;
use crate::auth::keys::{HmacKey, KeySet};
use crate::auth::kind::AuthRequest;
use crate::auth::kind::CookieName;
use crate::auth::kind::Kind;
use crate::auth::kind::Presented;
use crate::auth::kind::Tracer;
use crate::auth::kind::VerifyContext;
use crate::auth::query::encode_strict;

/// First line of an exchanged cookie's string to sign.
pub const SCHEME_COOKIE: &str = "TOLLGATE-HMAC-SHA256-COOKIE2";

/// The default cookie-name prefix.
pub const DEFAULT_NAME: &str = "tg_grant";

/// A route's cookie exchange: the kind that reads the cookies, and the
/// minting of them.
#[derive(Debug, Clone)]
pub struct ExchangedCookies {
    pub key: Arc<HmacKey>,
    /// Cookie names start with `<name>_`.
    pub name: Box<str>,
    /// The route's name: signed into every cookie, so a cookie verifies on
    /// its own route only.
    pub route: Box<str>,
    /// The route's prefix: no cookie grants beyond it.
    pub prefix: Box<str>,
    /// The keys whose links the route still accepts: a cookie whose link
    /// was verified by another key is refused.
    pub accepted: Arc<AcceptedKeys>,
}

/// The keys a route verifies URL credentials with, as cookies name them
/// (`<kind>:<key id>`).
#[derive(Debug, Default)]
pub struct AcceptedKeys {
    /// Fixed keys.
    pub fixed: Vec<Box<str>>,
    /// JWK sets (keys come and go): `jwt:<kid>` is accepted while one of
    /// them holds a key with that `kid`.
    pub sets: Vec<Arc<KeySet>>,
}

impl AcceptedKeys {
    /// Whether `key` (`<kind>:<key id>`) still verifies links on the route.
    pub fn accepts(&self, key: &str) -> bool {
        if self.fixed.iter().any(|k| **k == *key) {
            return true;
        }
        match key.strip_prefix("jwt:") {
            Some(kid) => {
                self.sets.iter().any(|set| set.current().iter().any(|k| k.kid.as_deref().unwrap_or("") == kid))
            }
            None => false,
        }
    }
}

fn mode_of(scope: &Scope) -> (&'static str, &str) {
    match scope {
        Scope::Prefix(p) => ("p", p),
        Scope::Path(p) => ("e", p),
    }
}

/// `key=<key>&route=<route>`, each value encoded as a canonical query
/// value (docs/reference.md: Signed URLs): the names sort before they are joined.
fn binding(key: &str, route: &str) -> String {
    let mut out = String::with_capacity(key.len() + route.len() + 12);
    out.push_str("key=");
    encode_strict(key.as_bytes(), &mut out);
    out.push_str("&route=");
    encode_strict(route.as_bytes(), &mut out);
    out
}

fn to_sign<'a>(exp: &'a str, mode: &'a str, scope: &'a str, binding: &'a str) -> ToSign<'a> {
    ToSign { scheme: SCHEME_COOKIE, method: "GET", exp, kid: mode, resource: scope, canonical_query: binding }
}

/// A parsed cookie value.
struct Value<'a> {
    exp: &'a str,
    scope: Scope,
    key: String,
    sig: [u8; 32],
    raw: &'a str,
}

impl ExchangedCookies {
    fn prefix(&self) -> String {
        format!("{}_", self.name)
    }

    /// The cookie name for a grant: one per route and scope, so grants
    /// coexist and a new link for the same scope replaces the old cookie.
    pub fn cookie_name(&self, scope: &Scope) -> String {
        let (mode, path) = mode_of(scope);
        let digest = digest::digest(&digest::SHA256, format!("{}\n{mode}\n{path}", self.route).as_bytes());
        let hex = crate::normalize::encode_hex(&digest.as_ref()[..4]);
        format!("{}{hex}", self.prefix())
    }

    /// The cookie value granting `scope` until `exp`, for a link verified
    /// by `key` (`<kind>:<key id>`).
    pub fn mint(&self, scope: &Scope, key: &str, exp: u64) -> String {
        let (mode, path) = mode_of(scope);
        let exp = exp.to_string();
        let bound = binding(key, &self.route);
        let sig = to_sign(&exp, mode, path, &bound).signature(&self.key);
        format!("{exp}.{mode}.{}.{}.{sig}", URL_SAFE_NO_PAD.encode(path), URL_SAFE_NO_PAD.encode(key))
    }

    /// What a link granted, clipped to the route's prefix: a prefix above
    /// the route's becomes the route's own (a `/*` path claim on `/docs/`
    /// grants `/docs/`). `None` when nothing of it lies on the route.
    pub fn clip(&self, scope: &Scope) -> Option<Scope> {
        let route = self.route_scope();
        match scope {
            Scope::Path(p) if crate::normalize::prefix_matches(&self.prefix, p) => Some(scope.clone()),
            Scope::Prefix(p) if p.starts_with(&*route) => Some(scope.clone()),
            Scope::Prefix(p) if route.starts_with(&**p) => Some(Scope::Prefix(route.into())),
            _ => None,
        }
    }

    /// The route's prefix as a cookie scope (ending in `/`).
    fn route_scope(&self) -> String {
        if self.prefix.ends_with('/') { self.prefix.to_string() } else { format!("{}/", self.prefix) }
    }

    /// A `Set-Cookie` value for the grant, valid for `max_age` seconds.
    pub fn set_cookie(&self, scope: &Scope, key: &str, exp: u64, max_age: u64) -> String {
        let path = match scope {
            Scope::Prefix(p) | Scope::Path(p) => encode_path(p),
        };
        format!(
            "{}={}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax",
            self.cookie_name(scope),
            self.mint(scope, key, exp)
        )
    }

    /// The cookie names this kind owns.
    pub fn cookies(&self) -> Vec<CookieName> {
        vec![CookieName::Prefix(self.prefix().into())]
    }

    fn parse<'a>(&self, raw: &'a str) -> Option<Value<'a>> {
        let mut parts = raw.split('.');
        let (exp, mode, scope, key, sig) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || signed_url::parse_exp(exp).is_none() {
            return None;
        }
        let scope = String::from_utf8(URL_SAFE_NO_PAD.decode(scope).ok()?).ok()?;
        let scope = match mode {
            "p" if scope.starts_with('/') && scope.ends_with('/') => Scope::Prefix(scope.into()),
            "e" if scope.starts_with('/') => Scope::Path(scope.into()),
            _ => return None,
        };
        let key = String::from_utf8(URL_SAFE_NO_PAD.decode(key).ok()?).ok()?;
        Some(Value { exp, scope, key, sig: signed_url::decode_signature(sig)?, raw })
    }

    /// The route's cookie that covers `path` most specifically. A cookie
    /// whose name is not the one this route gives its scope is another
    /// route's (or renamed): not a credential here.
    fn best<'r>(&self, req: &AuthRequest<'r>) -> Option<Value<'r>> {
        let prefix = self.prefix();
        let mut best: Option<Value<'r>> = None;
        for header in req.headers.get_all(http::header::COOKIE) {
            for (name, value) in cookie::pairs(header.as_bytes()) {
                if !name.starts_with(prefix.as_bytes()) {
                    continue;
                }
                // Values we cannot read are not credentials of ours.
                let Some(parsed) = std::str::from_utf8(value).ok().and_then(|v| self.parse(v)) else { continue };
                let len = |v: &Value<'_>| match &v.scope {
                    Scope::Prefix(p) | Scope::Path(p) => p.len(),
                };
                if parsed.scope.covers(req.path)
                    && best.as_ref().is_none_or(|b| len(&parsed) > len(b))
                    && self.cookie_name(&parsed.scope).as_bytes() == name
                {
                    best = Some(parsed);
                }
            }
        }
        best
    }
}

/// Percent-encodes a decoded path for a `Path` attribute, as a browser
/// writes the path it compares against (upper-case hex).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Kind for ExchangedCookies {
    fn name(&self) -> &'static str {
        "exchanged_cookie"
    }

    fn cookies(&self) -> Vec<CookieName> {
        ExchangedCookies::cookies(self)
    }

    fn find<'r>(&self, req: &AuthRequest<'r>, found: &mut dyn FnMut(Presented<'r>)) -> Result<(), AuthError> {
        if let Some(best) = self.best(req) {
            found(Presented { carrier: Carrier::Cookie, credential: Cow::Borrowed(best.raw) });
        }
        Ok(())
    }

    /// One HMAC: never cached.
    fn verify(&self, cred: &Presented<'_>, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, AuthError> {
        let t = &mut ctx.tracer();
        let value = self.parse(&cred.credential).ok_or(AuthError::Malformed)?;
        let (mode, path) = mode_of(&value.scope);
        let bound = binding(&value.key, &self.route);
        if !to_sign(value.exp, mode, path, &bound).verifies(&self.key, &value.sig) {
            t.step("signature", false, format_args!("the cookie was not signed for this route with its cookie key"));
            return Err(AuthError::BadSignature);
        }
        t.step("signature", true, format_args!("grants {} on route {:?}", value.scope, self.route));
        if !self.accepted.accepts(&value.key) {
            t.step(
                "key",
                false,
                format_args!("its link was verified by {:?}, a key this route no longer accepts", value.key),
            );
            return Err(AuthError::UnknownKey);
        }
        t.step("key", true, format_args!("its link was verified by {:?}", value.key));
        let exp = signed_url::parse_exp(value.exp).ok_or(AuthError::Malformed)?;
        if ctx.now > exp {
            t.step("expiry", false, format_args!("exp {exp} passed {} ago", crate::duration::human(ctx.now - exp)));
            return Err(AuthError::Expired);
        }
        if req.method != "GET" && req.method != "HEAD" {
            t.step("method", false, format_args!("an exchanged cookie grants GET and HEAD, not {}", req.method));
            return Err(AuthError::WrongMethod);
        }
        if !value.scope.covers(req.path) || self.clip(&value.scope).as_ref() != Some(&value.scope) {
            return Err(AuthError::WrongResource);
        }
        t.step("scope", true, format_args!("{:?} is covered", req.path));
        let facts = Facts { expires_at: Some(exp), ..Facts::default() };
        Ok(Grant { scope: Some(value.scope), facts, ..Grant::plain(Carrier::Cookie) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(route: &str, prefix: &str) -> ExchangedCookies {
        ExchangedCookies {
            key: Arc::new(HmacKey::new("c", &[3u8; 32])),
            name: DEFAULT_NAME.into(),
            route: route.into(),
            prefix: prefix.into(),
            accepted: Arc::new(AcceptedKeys { fixed: vec!["signed_url:media".into()], sets: Vec::new() }),
        }
    }

    #[test]
    fn minted_cookies_parse_and_name_their_scope() {
        let x = exchange("media", "/media/");
        let scope = Scope::Prefix("/media/café/".into());
        let value = x.mint(&scope, "signed_url:media", 1_893_456_000);
        let parsed = x.parse(&value).map(|v| (v.scope, v.key));
        assert_eq!(parsed, Some((scope.clone(), "signed_url:media".to_owned())));
        let set = x.set_cookie(&scope, "signed_url:media", 1_893_456_000, 60);
        assert!(set.starts_with("tg_grant_"), "{set}");
        assert!(set.contains("; Path=/media/caf%C3%A9/; Max-Age=60; HttpOnly; Secure; SameSite=Lax"), "{set}");
        assert_ne!(x.cookie_name(&scope), x.cookie_name(&Scope::Path("/media/café/".into())));
        assert_ne!(x.cookie_name(&scope), exchange("other", "/media/").cookie_name(&scope), "one name per route");
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        secret: String,
        cookie_prefix: String,
        route: String,
        key: String,
        mode: String,
        scope: String,
        exp: u64,
        string_to_sign: String,
        cookie_name: String,
        cookie_value: String,
    }

    /// Every case of `tests/vectors/exchanged-cookie.json` (computed by an
    /// independent implementation): the string to sign, the cookie's name
    /// and value, and the value read back.
    #[test]
    fn vectors() {
        let text = include_str!("../../../tests/vectors/exchanged-cookie.json");
        let vectors: Vec<Vector> = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(vectors.len() >= 4);
        for v in vectors {
            let x = ExchangedCookies {
                key: Arc::new(HmacKey::new("cookies", v.secret.as_bytes())),
                name: v.cookie_prefix.as_str().into(),
                route: v.route.as_str().into(),
                prefix: "/".into(),
                accepted: Arc::default(),
            };
            let scope = match v.mode.as_str() {
                "p" => Scope::Prefix(v.scope.as_str().into()),
                _ => Scope::Path(v.scope.as_str().into()),
            };
            let exp = v.exp.to_string();
            let bound = binding(&v.key, &v.route);
            assert_eq!(to_sign(&exp, &v.mode, &v.scope, &bound).text(), v.string_to_sign, "{}", v.name);
            assert_eq!(x.cookie_name(&scope), v.cookie_name, "{}", v.name);
            assert_eq!(x.mint(&scope, &v.key, v.exp), v.cookie_value, "{}", v.name);
            let parsed = x.parse(&v.cookie_value).unwrap_or_else(|| panic!("{}: unreadable", v.name));
            assert_eq!((parsed.scope, parsed.key), (scope, v.key.clone()), "{}", v.name);
        }
    }

    #[test]
    fn the_signature_binds_route_and_key() {
        let x = exchange("media", "/media/");
        let value = x.mint(&Scope::Prefix("/media/u1/".into()), "signed_url:media", 1_893_456_000);
        let parsed = x.parse(&value).unwrap_or_else(|| panic!("unreadable"));
        let (mode, path) = mode_of(&parsed.scope);
        let verifies = |key: &str, route: &str| {
            to_sign(parsed.exp, mode, path, &binding(key, route)).verifies(&x.key, &parsed.sig)
        };
        assert!(verifies("signed_url:media", "media"));
        assert!(!verifies("signed_url:media", "admin"), "another route with the same cookie key");
        assert!(!verifies("signed_url:m2", "media"), "another key");
    }

    #[test]
    fn scopes_are_clipped_to_the_route() {
        let x = exchange("docs", "/docs/");
        let clip = |s: Scope| x.clip(&s);
        assert_eq!(clip(Scope::Prefix("/".into())), Some(Scope::Prefix("/docs/".into())));
        assert_eq!(clip(Scope::Prefix("/docs/u1/".into())), Some(Scope::Prefix("/docs/u1/".into())));
        assert_eq!(clip(Scope::Path("/docs/a".into())), Some(Scope::Path("/docs/a".into())));
        assert_eq!(clip(Scope::Prefix("/rep/".into())), None);
        assert_eq!(clip(Scope::Path("/rep/a".into())), None);
        let bare = exchange("v", "/v");
        assert_eq!(bare.clip(&Scope::Prefix("/".into())), Some(Scope::Prefix("/v/".into())));
    }

    #[test]
    fn values_that_are_not_ours_are_ignored() {
        let x = exchange("media", "/media/");
        for bad in
            ["", "1.p.Lw.sig", "1893456000.q.Lw.a2V5.AAAA", "1893456000.p.Lw.a2V5", "01.p.Lw.a2V5.x", "1.p.!!.x.y.z"]
        {
            assert!(x.parse(bad).is_none(), "{bad}");
        }
    }
}
