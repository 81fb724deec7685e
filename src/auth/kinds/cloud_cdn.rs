//! Google Cloud CDN signed URLs and signed cookies, verified at the origin.
//!
//! ```text
//! URL:        <url>?<query>&Expires=<t>&KeyName=<k>&Signature=<s>
//!             s = base64url(HMAC-SHA1(key, "<url>?<query>&Expires=<t>&KeyName=<k>"))
//! URL prefix: <url>?<query>&URLPrefix=<b64 prefix>&Expires=<t>&KeyName=<k>&Signature=<s>
//!             s = base64url(HMAC-SHA1(key, "URLPrefix=<b64 prefix>&Expires=<t>&KeyName=<k>"))
//! cookie:     Cloud-CDN-Cookie=URLPrefix=<b64 prefix>:Expires=<t>:KeyName=<k>:Signature=<s>
//!             s over "URLPrefix=<b64 prefix>:Expires=<t>:KeyName=<k>"
//! ```
//! Keys are 16 bytes; a key's `kid` is the `KeyName`. As for CloudFront, the
//! URL's scheme and host are the route's configured `origins`, never the
//! request's (see `cdn.rs`); the path is the raw request path and the query
//! the request's without the credential parameters, in order. A prefix is
//! compared as text, as Cloud CDN does: `https://m.example/u1` also grants
//! `/u10/` — sign prefixes that end with `/`. One HMAC-SHA1 costs less than
//! a cache lookup, so verdicts are not cached.

use std::borrow::Cow;
use std::sync::Arc;

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::cdn::{self, NamedSecret, Origins, Secret};
use crate::auth::cookie;
use crate::auth::error::{AuthError, Carrier};
use crate::auth::grant::Grant;
use crate::auth::keys::SecretEncoding;
use crate::auth::kind::AuthRequest;
use crate::auth::kind::CookieName;
use crate::auth::kind::Kind;
use crate::auth::kind::Presented;
use crate::auth::kind::VerifyContext;
use crate::auth::section::{CarrierFile, CompileContext, Compiled, KeyFormat, Registered, parse_section};
use crate::auth::sign::{OPTION_COOKIES, SignInput, SignOption, Signer, absolute};

/// The query parameters of a Cloud CDN signed URL.
pub const URL_PARAMS: [&str; 4] = ["URLPrefix", "Expires", "KeyName", "Signature"];
/// The signed cookie.
pub const COOKIE: &str = "Cloud-CDN-Cookie";

/// base64url, padding optional (Google's samples pad; keys may not).
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The kind: a route's Cloud CDN keys and origins.
#[derive(Debug)]
pub struct CloudCdn {
    pub keys: Vec<Arc<NamedSecret>>,
    pub origins: Origins,
    pub from_query: bool,
    pub from_cookie: bool,
}

/// The signature over `message` with `key`.
pub fn signature(key: &[u8], message: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key), message)
}

/// `Signature` as written by Google's samples: base64url with padding.
pub fn encode(tag: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(tag)
}

impl Kind for CloudCdn {
    fn name(&self) -> &'static str {
        "cloud_cdn"
    }

    fn query_params(&self) -> Vec<&str> {
        if self.from_query { URL_PARAMS.to_vec() } else { Vec::new() }
    }

    fn cookies(&self) -> Vec<CookieName> {
        if self.from_cookie { vec![CookieName::Exact(COOKIE.into())] } else { Vec::new() }
    }

    fn find<'r>(&self, req: &AuthRequest<'r>, found: &mut dyn FnMut(Presented<'r>)) -> Result<(), AuthError> {
        if self.from_query && req.found.any_of(&URL_PARAMS) {
            let sig = req.found.get("Signature").unwrap_or_default();
            found(Presented { carrier: Carrier::SignedUrl, credential: Cow::Borrowed(sig) });
        }
        if self.from_cookie
            && let Some(value) = cookie::find(req.headers, COOKIE)?
        {
            let value = std::str::from_utf8(value).map_err(|_| AuthError::Malformed)?;
            found(Presented { carrier: Carrier::Cookie, credential: Cow::Borrowed(value) });
        }
        Ok(())
    }

    fn verify(&self, cred: &Presented<'_>, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, AuthError> {
        let target = cdn::path_and_query(req);
        let verdict = match cred.carrier {
            Carrier::Cookie => self.check_cookie(&cred.credential, &target, ctx.now),
            _ => {
                let get = |name| req.found.get(name).ok_or(AuthError::Malformed);
                let prefix = req.found.get("URLPrefix");
                (|| self.check_url(prefix, get("Expires")?, get("KeyName")?, get("Signature")?, &target, ctx.now))()
            }
        };
        cdn::trace_verdict(&mut ctx.tracer(), "Cloud CDN", &verdict);
        verdict.map(|()| Grant::plain(cred.carrier))
    }
}

impl CloudCdn {
    fn key(&self, name: &str) -> Result<&NamedSecret, AuthError> {
        self.keys.iter().find(|k| k.id == name).map(|k| &**k).ok_or(AuthError::UnknownKey)
    }

    /// Checks the common fields: the key, the signature over `signed`, then
    /// the expiry.
    fn check_signed(&self, signed: &str, expires: &str, key: &str, sig: &str, now: u64) -> Result<(), AuthError> {
        let exp = cdn::parse_epoch(expires)?;
        let key = self.key(key)?;
        let given = URL_SAFE_ANY_PAD.decode(sig).map_err(|_| AuthError::BadSignature)?;
        let tag = signature(key.secret.bytes(), signed.as_bytes());
        if constant_time::verify_slices_are_equal(tag.as_ref(), &given).is_err() {
            return Err(AuthError::BadSignature);
        }
        if now > exp {
            return Err(AuthError::Expired);
        }
        Ok(())
    }

    /// Whether the base64url `prefix` grants `target` under one origin.
    fn grants(&self, prefix_b64: &str, target: &str) -> Result<(), AuthError> {
        let prefix = URL_SAFE_ANY_PAD.decode(prefix_b64).map_err(|_| AuthError::Malformed)?;
        let granted = self.origins.iter().any(|origin| {
            let url = format!("{origin}{target}");
            url.as_bytes().starts_with(&prefix)
        });
        if granted { Ok(()) } else { Err(AuthError::WrongResource) }
    }

    /// A signed URL: the whole-URL form, or the `URLPrefix` form.
    pub fn check_url(
        &self,
        prefix: Option<&str>,
        expires: &str,
        key: &str,
        sig: &str,
        target: &str,
        now: u64,
    ) -> Result<(), AuthError> {
        match prefix {
            Some(p) => {
                let signed = format!("URLPrefix={p}&Expires={expires}&KeyName={key}");
                self.check_signed(&signed, expires, key, sig, now)?;
                self.grants(p, target)
            }
            None => {
                let sep = if target.contains('?') { '&' } else { '?' };
                let mut last = Err(AuthError::BadSignature);
                for origin in self.origins.iter() {
                    let signed = format!("{origin}{target}{sep}Expires={expires}&KeyName={key}");
                    last = self.check_signed(&signed, expires, key, sig, now);
                    if !matches!(last, Err(AuthError::BadSignature)) {
                        break;
                    }
                }
                last
            }
        }
    }

    /// A `Cloud-CDN-Cookie` value.
    pub fn check_cookie(&self, value: &str, target: &str, now: u64) -> Result<(), AuthError> {
        let (signed, sig) = value.rsplit_once(":Signature=").ok_or(AuthError::Malformed)?;
        let mut fields = signed.split(':');
        let mut field = |name: &str| {
            fields
                .next()
                .and_then(|f| f.strip_prefix(name))
                .and_then(|f| f.strip_prefix('='))
                .ok_or(AuthError::Malformed)
        };
        let (prefix, expires, key) = (field("URLPrefix")?, field("Expires")?, field("KeyName")?);
        if fields.next().is_some() {
            return Err(AuthError::Malformed);
        }
        self.check_signed(signed, expires, key, sig, now)?;
        self.grants(prefix, target)
    }

    /// Signs a URL (`prefix`: the `URLPrefix` form) as Google's samples do.
    pub fn sign_url(key: &NamedSecret, url: &str, expires: u64, prefix: Option<&str>) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        let name = &key.id;
        match prefix {
            None => {
                let signed = format!("{url}{sep}Expires={expires}&KeyName={name}");
                let sig = encode(signature(key.secret.bytes(), signed.as_bytes()).as_ref());
                format!("{signed}&Signature={sig}")
            }
            Some(p) => {
                let policy = format!(
                    "URLPrefix={}&Expires={expires}&KeyName={name}",
                    base64::engine::general_purpose::URL_SAFE.encode(p)
                );
                let sig = encode(signature(key.secret.bytes(), policy.as_bytes()).as_ref());
                format!("{url}{sep}{policy}&Signature={sig}")
            }
        }
    }

    /// A `Cloud-CDN-Cookie` value granting `prefix`.
    pub fn sign_cookie(key: &NamedSecret, prefix: &str, expires: u64) -> String {
        let policy = format!(
            "URLPrefix={}:Expires={expires}:KeyName={}",
            base64::engine::general_purpose::URL_SAFE.encode(prefix),
            key.id
        );
        let sig = encode(signature(key.secret.bytes(), policy.as_bytes()).as_ref());
        format!("{policy}:Signature={sig}")
    }
}

// ---- Its section of `routes[].auth`, its key format and its signer ----

/// `auth.cloud_cdn`: Google Cloud CDN signed URLs and cookies.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudCdnFile {
    /// `cloud_cdn` keys; each key's `kid` is the `KeyName` links carry.
    pub keys: Vec<String>,
    /// The scheme and host links are signed for, e.g. `https://media.example.com`.
    pub origins: Vec<String>,
    /// Where credentials are read: `query`, `cookie` (default both).
    pub from: Option<Vec<CarrierFile>>,
}

/// The kind's registration (see `kinds/mod.rs`).
pub struct Section;

/// Listed in `kinds::REGISTRY`.
pub static SECTION: Section = Section;

impl Registered for Section {
    fn section(&self) -> &'static str {
        "cloud_cdn"
    }

    fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<CloudCdnFile>()
    }

    fn key_format(&self) -> Option<KeyFormat> {
        Some(KeyFormat {
            field: "cloud_cdn",
            about: "A Cloud CDN signing key: 16 bytes (default encoding `base64`, base64url as `gcloud` writes it accepted); `kid` is its `KeyName`.",
            encoding: SecretEncoding::Base64,
            check: |secret| match secret.len() {
                16 => Ok(()),
                n => Err(format!("a Cloud CDN key is 16 bytes; this one is {n}")),
            },
        })
    }

    fn compile(&self, cx: &mut dyn CompileContext, path: &str, section: Value) -> Compiled {
        let Some(raw) = parse_section::<CloudCdnFile>(cx, path, section) else { return Vec::new() };
        let keys = cdn::secrets(cx, path, &raw.keys, "cloud_cdn");
        let origins = cdn::origins(cx, path, &raw.origins);
        let (from_query, from_cookie) = cdn::query_or_cookie(cx, path, raw.from);
        match origins {
            Some(origins) => vec![Box::new(CloudCdn { keys, origins, from_query, from_cookie })],
            None => Vec::new(),
        }
    }

    fn signer(&self) -> &dyn Signer {
        self
    }
}

impl Signer for Section {
    fn format(&self) -> &'static str {
        "cloud_cdn"
    }

    fn options(&self) -> &'static [SignOption] {
        const OPTIONS: &[SignOption] = &[
            SignOption {
                name: "url-prefix",
                value: Some("URL"),
                help: "cloud_cdn: sign this URL prefix (the URLPrefix form, and cookies)",
                default: None,
            },
            OPTION_COOKIES,
        ];
        OPTIONS
    }

    fn sign(&self, input: &SignInput<'_>) -> Result<String, String> {
        let req = CloudCdnSign {
            url: input.target,
            key_name: input.kid.ok_or("cloud_cdn needs --kid (the KeyName)")?,
            expires: input.exp,
            url_prefix: input.option("url-prefix"),
            cookie: input.flag("cookies"),
        };
        sign_cloud_cdn(&input.key.secret(SecretEncoding::Base64, 1)?, &req)
    }
}

/// What `tollgate sign --format cloud_cdn` needs.
pub struct CloudCdnSign<'a> {
    /// The full URL.
    pub url: &'a str,
    pub key_name: &'a str,
    pub expires: u64,
    /// Sign this prefix (the `URLPrefix` form) instead of the whole URL.
    pub url_prefix: Option<&'a str>,
    /// Print a `Cookie` header value (needs `url_prefix`).
    pub cookie: bool,
}

/// A Cloud CDN signed URL, or its signed cookie.
pub fn sign_cloud_cdn(key: &[u8], req: &CloudCdnSign<'_>) -> Result<String, String> {
    absolute(req.url)?;
    if key.len() != 16 {
        return Err(format!("a Cloud CDN key is 16 bytes; this one is {}", key.len()));
    }
    let key = NamedSecret { id: req.key_name.to_owned(), secret: Secret::new(key) };
    if req.cookie {
        let prefix = req.url_prefix.ok_or("a signed cookie grants a prefix: give --url-prefix")?;
        return Ok(format!("{}={}", COOKIE, CloudCdn::sign_cookie(&key, prefix, req.expires)));
    }
    Ok(CloudCdn::sign_url(&key, req.url, req.expires, req.url_prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::kinds::cdn::Secret;

    fn cdn() -> (CloudCdn, NamedSecret) {
        let key = NamedSecret { id: "k1".into(), secret: Secret::new(&[7u8; 16]) };
        let route = CloudCdn {
            keys: vec![Arc::new(NamedSecret { id: "k1".into(), secret: Secret::new(&[7u8; 16]) })],
            origins: Origins::new(&["https://m.example".to_owned()]).unwrap_or_default(),
            from_query: true,
            from_cookie: true,
        };
        (route, key)
    }

    fn parts(url: &str) -> (Option<String>, String, String, String, String) {
        let (target, query) = url.trim_start_matches("https://m.example").split_once('?').unwrap_or_default();
        let mut rest = Vec::new();
        let (mut p, mut e, mut k, mut s) = (None, String::new(), String::new(), String::new());
        for piece in query.split('&') {
            match piece.split_once('=').unwrap_or((piece, "")) {
                ("URLPrefix", v) => p = Some(v.to_owned()),
                ("Expires", v) => e = v.to_owned(),
                ("KeyName", v) => k = v.to_owned(),
                ("Signature", v) => s = v.to_owned(),
                _ => rest.push(piece),
            }
        }
        let target = if rest.is_empty() { target.to_owned() } else { format!("{target}?{}", rest.join("&")) };
        (p, e, k, s, target)
    }

    #[test]
    fn urls_and_prefixes() {
        let (route, key) = cdn();
        let url = CloudCdn::sign_url(&key, "https://m.example/a/b.mp4?w=1", 100, None);
        let (p, e, k, s, target) = parts(&url);
        assert_eq!(route.check_url(p.as_deref(), &e, &k, &s, &target, 50), Ok(()));
        assert_eq!(route.check_url(p.as_deref(), &e, &k, &s, &target, 101), Err(AuthError::Expired));
        assert_eq!(route.check_url(p.as_deref(), &e, &k, &s, "/a/b.mp4?w=2", 50), Err(AuthError::BadSignature));
        assert_eq!(route.check_url(p.as_deref(), &e, "k2", &s, &target, 50), Err(AuthError::UnknownKey));
        let unpadded = s.trim_end_matches('=');
        assert_eq!(route.check_url(p.as_deref(), &e, &k, unpadded, &target, 50), Ok(()));

        let url = CloudCdn::sign_url(&key, "https://m.example/a/b.mp4", 100, Some("https://m.example/a/"));
        let (p, e, k, s, _) = parts(&url);
        assert_eq!(route.check_url(p.as_deref(), &e, &k, &s, "/a/other.ts?x", 50), Ok(()));
        assert_eq!(route.check_url(p.as_deref(), &e, &k, &s, "/b/x", 50), Err(AuthError::WrongResource));
    }

    #[test]
    fn cookies() {
        let (route, key) = cdn();
        let value = CloudCdn::sign_cookie(&key, "https://m.example/a/", 100);
        assert_eq!(route.check_cookie(&value, "/a/x", 50), Ok(()));
        assert_eq!(route.check_cookie(&value, "/ab/x", 50), Err(AuthError::WrongResource));
        assert_eq!(
            route.check_cookie(&value.replace(":Expires=100", ":Expires=101"), "/a/x", 50),
            Err(AuthError::BadSignature)
        );
        assert_eq!(route.check_cookie("URLPrefix=x:Signature=y", "/a/x", 50), Err(AuthError::Malformed));
    }
}
