//! Cookie exchange (SPEC §10): a top-level navigation that carries a valid
//! URL credential is redirected to the clean URL with a cookie granting
//! exactly what the URL granted, so the credential leaves the address bar,
//! history, bookmarks and every Referer.
//!
//! ```text
//! name:  <prefix>_<8 hex of SHA-256(mode \n scope)>   one cookie per grant
//! value: <exp>.<mode>.<base64url(scope)>.<sig>       mode: p (prefix) | e (one path)
//! TOLLGATE-HMAC-SHA256-COOKIE \n GET \n exp \n mode \n scope \n (empty)
//! ```
//! The cookie is signed with a key of its own under its own first line, so
//! it never verifies as a URL signature and no URL signature verifies as a
//! cookie. It grants GET and HEAD only, for at most as long as the URL did.
//! When several of a route's cookies cover a path (a prefix and a deeper
//! one), the most specific is the one presented.

use std::borrow::Cow;
use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::signed_url::{self, ToSign};
use crate::auth::error::{AuthError, Carrier};
use crate::auth::keys::HmacKey;
use crate::auth::{AuthRequest, CookieName, Facts, Grant, Kind, Presented, Scope, Tracer, VerifyContext, cookie};

/// First line of an exchanged cookie's string to sign.
pub const SCHEME_COOKIE: &str = "TOLLGATE-HMAC-SHA256-COOKIE";

/// The default cookie-name prefix.
pub const DEFAULT_NAME: &str = "tg_grant";

/// A route's cookie exchange: the kind that reads the cookies, and the
/// minting of them.
#[derive(Debug, Clone)]
pub struct ExchangedCookies {
    pub key: Arc<HmacKey>,
    /// Cookie names start with `<name>_`.
    pub name: Box<str>,
}

fn mode_of(scope: &Scope) -> (&'static str, &str) {
    match scope {
        Scope::Prefix(p) => ("p", p),
        Scope::Path(p) => ("e", p),
    }
}

fn to_sign<'a>(exp: &'a str, mode: &'a str, scope: &'a str) -> ToSign<'a> {
    ToSign { scheme: SCHEME_COOKIE, method: "GET", exp, kid: mode, resource: scope, canonical_query: "" }
}

/// A parsed cookie value.
struct Value<'a> {
    exp: &'a str,
    scope: Scope,
    sig: [u8; 32],
    raw: &'a str,
}

impl ExchangedCookies {
    fn prefix(&self) -> String {
        format!("{}_", self.name)
    }

    /// The cookie name for a grant: one per scope, so grants coexist and a
    /// new link for the same scope replaces the old cookie.
    pub fn cookie_name(&self, scope: &Scope) -> String {
        let (mode, path) = mode_of(scope);
        let digest = digest::digest(&digest::SHA256, format!("{mode}\n{path}").as_bytes());
        let hex: String = digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}{hex}", self.prefix())
    }

    /// The cookie value granting `scope` until `exp`.
    pub fn mint(&self, scope: &Scope, exp: u64) -> String {
        let (mode, path) = mode_of(scope);
        let exp = exp.to_string();
        let sig = to_sign(&exp, mode, path).signature(&self.key);
        format!("{exp}.{mode}.{}.{sig}", URL_SAFE_NO_PAD.encode(path))
    }

    /// A `Set-Cookie` value for the grant, valid for `max_age` seconds.
    pub fn set_cookie(&self, scope: &Scope, exp: u64, max_age: u64) -> String {
        let path = match scope {
            Scope::Prefix(p) | Scope::Path(p) => encode_path(p),
        };
        format!(
            "{}={}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax",
            self.cookie_name(scope),
            self.mint(scope, exp)
        )
    }

    /// The cookie names this kind owns.
    pub fn cookies(&self) -> Vec<CookieName> {
        vec![CookieName::Prefix(self.prefix().into())]
    }

    fn parse<'a>(&self, raw: &'a str) -> Option<Value<'a>> {
        let mut parts = raw.split('.');
        let (exp, mode, scope, sig) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || signed_url::parse_exp(exp).is_none() {
            return None;
        }
        let scope = String::from_utf8(URL_SAFE_NO_PAD.decode(scope).ok()?).ok()?;
        let scope = match mode {
            "p" if scope.starts_with('/') && scope.ends_with('/') => Scope::Prefix(scope.into()),
            "e" if scope.starts_with('/') => Scope::Path(scope.into()),
            _ => return None,
        };
        Some(Value { exp, scope, sig: signed_url::decode_signature(sig)?, raw })
    }

    /// The route's cookie that covers `path` most specifically.
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
                if parsed.scope.covers(req.path) && best.as_ref().is_none_or(|b| len(&parsed) > len(b)) {
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
        if !to_sign(value.exp, mode, path).verifies(&self.key, &value.sig) {
            t.step("signature", false, format_args!("the cookie was not signed by this route's cookie key"));
            return Err(AuthError::BadSignature);
        }
        t.step("signature", true, format_args!("grants {:?}", value.scope));
        let exp = signed_url::parse_exp(value.exp).ok_or(AuthError::Malformed)?;
        if ctx.now > exp {
            t.step("expiry", false, format_args!("exp {exp} passed {} s ago", ctx.now - exp));
            return Err(AuthError::Expired);
        }
        if req.method != "GET" && req.method != "HEAD" {
            t.step("method", false, format_args!("an exchanged cookie grants GET and HEAD, not {}", req.method));
            return Err(AuthError::WrongMethod);
        }
        if !value.scope.covers(req.path) {
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

    fn exchange() -> ExchangedCookies {
        ExchangedCookies { key: Arc::new(HmacKey::new("c", &[3u8; 32])), name: DEFAULT_NAME.into() }
    }

    #[test]
    fn minted_cookies_parse_and_name_their_scope() {
        let x = exchange();
        let scope = Scope::Prefix("/media/café/".into());
        let value = x.mint(&scope, 1_893_456_000);
        let parsed = x.parse(&value).map(|v| v.scope);
        assert_eq!(parsed, Some(scope.clone()));
        let set = x.set_cookie(&scope, 1_893_456_000, 60);
        assert!(set.starts_with("tg_grant_"), "{set}");
        assert!(set.contains("; Path=/media/caf%C3%A9/; Max-Age=60; HttpOnly; Secure; SameSite=Lax"), "{set}");
        assert_ne!(x.cookie_name(&scope), x.cookie_name(&Scope::Path("/media/café/".into())));
    }

    #[test]
    fn values_that_are_not_ours_are_ignored() {
        let x = exchange();
        for bad in ["", "1.p.Lw.sig", "1893456000.q.Lw.AAAA", "1893456000.p.Lw", "01.p.Lw.x", "1.p.!!.x.y"] {
            assert!(x.parse(bad).is_none(), "{bad}");
        }
    }
}
