//! Akamai EdgeAuth (Token Authorization) tokens, verified at the origin.
//!
//! ```text
//! __token__=[ip=<ip>~][st=<start>~]exp=<end>[~acl=<pattern>[!<pattern>…]][~id=<id>][~data=<data>]~hmac=<hex>
//! hmac = HMAC-<sha256|sha1|md5>(hex key, <fields before ~hmac>[~url=<path>][~salt=<salt>])
//! ```
//! ACL mode: the token carries `acl`, `*`-wildcard path patterns separated by
//! `!`, and one of them must match the request path. URL mode: the token
//! carries no path; the request's path is hashed in (`~url=<path>`), so a
//! token opens one path only. With `escape_early` the signer percent-encoded
//! `ip`, `id`, `data` and the URL-mode path (lower-case hex) before hashing;
//! the Python and Node libraries encode differently (`quote_plus` versus
//! `encodeURIComponent`), so both encodings of the path are tried.
//!
//! The token is read from the query, a cookie or a header of the same name
//! (`__token__` by default). A query or cookie value is hashed as sent, and
//! percent-decoded if that fails (a client or framework may have encoded
//! it). The path is matched and hashed as received, and decoded if that
//! fails: both name the same resource. An HMAC costs less than a cache
//! lookup, so verdicts are not cached.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::{constant_time, hmac};
use http::HeaderName;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::cdn::{self, NamedSecret, Secret};
use crate::auth::cookie;
use crate::auth::error::{AuthError, Carrier};
use crate::auth::grant::Grant;
use crate::auth::keys::SecretEncoding;
use crate::auth::kind::AuthRequest;
use crate::auth::kind::CookieName;
use crate::auth::kind::Kind;
use crate::auth::kind::Presented;
use crate::auth::kind::VerifyContext;
use crate::auth::kind::{NoTrace, Tracer};
use crate::auth::query;
use crate::auth::section::{CarrierFile, CompileContext, Compiled, KeyFormat, Registered, SecretFile, parse_section};
use crate::auth::sign::{
    KeySource, OPTION_IP, OPTION_NOT_BEFORE, SignInput, SignKey, SignOption, Signer, append_query, split_origin,
};

/// Longest token accepted, in bytes.
const MAX_TOKEN_LEN: usize = 4096;

/// The token's HMAC digest: `sha256` (default), `sha1` or `md5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "EdgeAuthAlgorithm")]
pub enum Algorithm {
    Sha256,
    Sha1,
    Md5,
}

impl Algorithm {
    fn len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha1 => 20,
            Algorithm::Md5 => 16,
        }
    }

    /// HMAC of the concatenated `parts` under `key`.
    pub fn mac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Algorithm::Sha256 | Algorithm::Sha1 => {
                let alg =
                    if self == Algorithm::Sha256 { hmac::HMAC_SHA256 } else { hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY };
                let mut ctx = hmac::Context::with_key(&hmac::Key::new(alg, key));
                for p in parts {
                    ctx.update(p);
                }
                ctx.sign().as_ref().to_vec()
            }
            Algorithm::Md5 => {
                use hmac_md5::Mac as _;
                // HMAC accepts keys of any length: this cannot fail.
                let Ok(mut mac) = hmac_md5::HmacMd5::new_from_slice(key) else {
                    return Vec::new();
                };
                for p in parts {
                    mac.update(p);
                }
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

/// HMAC-MD5 from the RustCrypto crates (aws-lc has no MD5).
mod hmac_md5 {
    pub use hmac::Mac;
    pub type HmacMd5 = hmac::Hmac<md5::Md5>;
}

/// The kind: a route's EdgeAuth rules.
#[derive(Debug)]
pub struct EdgeAuth {
    /// Keys tried in order (a rotation's old and new).
    pub keys: Vec<Arc<NamedSecret>>,
    pub algorithm: Algorithm,
    pub token_name: Box<str>,
    pub from_query: bool,
    pub from_cookie: bool,
    /// The header of the same name, when tokens may come in one.
    pub header: Option<HeaderName>,
    pub salt: Option<Secret>,
    pub escape_early: bool,
}

impl Kind for EdgeAuth {
    fn name(&self) -> &'static str {
        "edgeauth"
    }

    fn query_params(&self) -> Vec<&str> {
        if self.from_query { vec![&*self.token_name] } else { Vec::new() }
    }

    fn cookies(&self) -> Vec<CookieName> {
        if self.from_cookie { vec![CookieName::Exact(self.token_name.clone())] } else { Vec::new() }
    }

    fn headers(&self) -> Vec<HeaderName> {
        self.header.iter().cloned().collect()
    }

    fn find<'r>(&self, req: &AuthRequest<'r>, found: &mut dyn FnMut(Presented<'r>)) -> Result<(), AuthError> {
        if self.from_query
            && let Some(token) = req.found.get(&self.token_name)
        {
            found(Presented { carrier: Carrier::SignedUrl, credential: Cow::Borrowed(token) });
        }
        if self.from_cookie
            && let Some(token) = cookie::find(req.headers, &self.token_name)?
        {
            let token = std::str::from_utf8(token).map_err(|_| AuthError::Malformed)?;
            found(Presented { carrier: Carrier::Cookie, credential: Cow::Borrowed(token) });
        }
        if let Some(name) = &self.header {
            let mut values = req.headers.get_all(name).iter();
            if let Some(value) = values.next() {
                if values.next().is_some() {
                    return Err(AuthError::Malformed);
                }
                let token = value.to_str().map_err(|_| AuthError::Malformed)?;
                found(Presented { carrier: Carrier::CustomHeader, credential: Cow::Borrowed(token) });
            }
        }
        Ok(())
    }

    fn verify(&self, cred: &Presented<'_>, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, AuthError> {
        let raw = &*cred.credential;
        let t = &mut ctx.tracer();
        let result = match self.check_traced(raw, req.raw_path, req.path, req.client_ip, ctx.now, t) {
            // A token hashed over its own bytes holds no `%` outside an
            // escaped field; one that arrived percent-encoded is tried
            // decoded, and keeps the first answer if that fails as well.
            Err(first @ (AuthError::BadSignature | AuthError::Malformed))
                if raw.contains('%') && cred.carrier != Carrier::CustomHeader =>
            {
                let decoded = query::decode_component(raw).map_err(|_| first)?;
                let decoded = std::str::from_utf8(&decoded).map_err(|_| first)?;
                match self.check_traced(decoded, req.raw_path, req.path, req.client_ip, ctx.now, t) {
                    Err(AuthError::BadSignature | AuthError::Malformed) => Err(first),
                    other => other,
                }
            }
            other => other,
        };
        result.map(|()| Grant::plain(cred.carrier))
    }
}

/// The fields of a token.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Token<'a> {
    pub ip: Option<&'a str>,
    pub st: Option<&'a str>,
    pub exp: Option<&'a str>,
    pub acl: Option<&'a str>,
    pub id: Option<&'a str>,
    pub data: Option<&'a str>,
    /// The bytes the HMAC covers (everything before `~hmac=`).
    pub signed: &'a str,
    pub hmac: &'a str,
}

impl<'a> Token<'a> {
    /// Splits a token; an unknown or repeated field, or an `hmac` that is
    /// not the last one, is malformed.
    pub fn parse(text: &'a str) -> Result<Self, AuthError> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let (signed, hmac) = match text.rsplit_once("~hmac=") {
            Some(parts) => parts,
            None => return Err(AuthError::Malformed),
        };
        let mut token = Token { signed, hmac, ..Token::default() };
        for field in signed.split('~') {
            let (name, value) = field.split_once('=').ok_or(AuthError::Malformed)?;
            let slot = match name {
                "ip" => &mut token.ip,
                "st" => &mut token.st,
                "exp" => &mut token.exp,
                "acl" => &mut token.acl,
                "id" => &mut token.id,
                "data" => &mut token.data,
                _ => return Err(AuthError::Malformed),
            };
            if slot.replace(value).is_some() {
                return Err(AuthError::Malformed);
            }
        }
        Ok(token)
    }
}

/// Python's `quote_plus(text, safe='')`, hex in lower case (akamai-edgeauth
/// on PyPI).
pub fn escape_python(text: &str) -> String {
    escape(text, b"_.-~", true)
}

/// JavaScript's `encodeURIComponent` with `~'*` also encoded, hex in lower
/// case (akamai-edgeauth on npm).
pub fn escape_node(text: &str) -> String {
    escape(text, b"-_.!()", false)
}

fn escape(text: &str, safe: &[u8], plus_for_space: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || safe.contains(&b) {
            out.push(b as char);
        } else if b == b' ' && plus_for_space {
            out.push('+');
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
    out
}

impl EdgeAuth {
    /// The URL-mode path texts a signer may have hashed for this request.
    fn url_candidates(&self, raw_path: &str, path: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(4);
        let mut push = |s: String| {
            if !out.contains(&s) {
                out.push(s);
            }
        };
        for p in [raw_path, path] {
            if self.escape_early {
                push(escape_python(p));
                push(escape_node(p));
            } else {
                push(p.to_owned());
            }
        }
        out
    }

    /// Verifies `text` for a request on `raw_path` (decoded: `path`) from `client`.
    pub fn check(&self, text: &str, raw_path: &str, path: &str, client: IpAddr, now: u64) -> Result<(), AuthError> {
        self.check_traced(text, raw_path, path, client, now, &mut NoTrace)
    }

    /// [`EdgeAuth::check`], reporting each check to `t` (`tollgate explain`).
    pub fn check_traced(
        &self,
        text: &str,
        raw_path: &str,
        path: &str,
        client: IpAddr,
        now: u64,
        t: &mut dyn Tracer,
    ) -> Result<(), AuthError> {
        let token = Token::parse(text).inspect_err(|_| {
            t.step("token", false, format_args!("not ip=~st=~exp=~acl=~id=~data=~hmac= fields in that order"));
        })?;
        t.step("token", true, format_args!("{} mode", if token.acl.is_some() { "ACL" } else { "URL" }));
        let given = crate::normalize::decode_hex(token.hmac.as_bytes())
            .filter(|h| h.len() == self.algorithm.len())
            .ok_or(AuthError::BadSignature)?;
        let exp = cdn::parse_epoch(token.exp.ok_or(AuthError::Malformed)?)?;
        let st = token.st.map(cdn::parse_epoch).transpose()?;
        let salt = self.salt.as_ref().map(|s| s.bytes());
        let urls = if token.acl.is_some() {
            vec![None]
        } else {
            self.url_candidates(raw_path, path).into_iter().map(Some).collect()
        };
        let verified = self.keys.iter().any(|key| {
            urls.iter().any(|url| {
                let mut parts: Vec<&[u8]> = vec![token.signed.as_bytes()];
                if let Some(url) = url {
                    parts.extend([&b"~url="[..], url.as_bytes()]);
                }
                if let Some(salt) = salt {
                    parts.extend([&b"~salt="[..], salt]);
                }
                let mac = self.algorithm.mac(key.secret.bytes(), &parts);
                constant_time::verify_slices_are_equal(&mac, &given).is_ok()
            })
        });
        if !verified {
            let why = "no key of the route (with its algorithm and salt) gives this hmac";
            t.step("signature", false, format_args!("{why}"));
            return Err(AuthError::BadSignature);
        }
        t.step("signature", true, format_args!("matches ({:?})", self.algorithm));
        if now > exp {
            t.step("expiry", false, format_args!("exp {exp} passed {} ago", crate::duration::human(now - exp)));
            return Err(AuthError::Expired);
        }
        if st.is_some_and(|st| now < st) {
            t.step("expiry", false, format_args!("not valid before st {}", st.unwrap_or_default()));
            return Err(AuthError::NotYetValid);
        }
        t.step("expiry", true, format_args!("exp {exp}: in {}", crate::duration::human(exp - now)));
        if let Some(ip) = token.ip {
            let ip = query::decode_component(ip).map_err(|_| AuthError::Malformed)?;
            let ip: Option<IpAddr> = std::str::from_utf8(&ip).ok().and_then(|s| s.parse().ok());
            if ip.map(|ip| ip.to_canonical()) != Some(client.to_canonical()) {
                t.step("ip", false, format_args!("the token is bound to another address than {client}"));
                return Err(AuthError::ClaimMismatch);
            }
            t.step("ip", true, format_args!("{client}"));
        }
        if let Some(acl) = token.acl {
            let granted = acl.split('!').any(|pattern| {
                let p = pattern.as_bytes();
                cdn::wildcard_match(p, raw_path.as_bytes(), false) || cdn::wildcard_match(p, path.as_bytes(), false)
            });
            if !granted {
                t.step("acl", false, format_args!("no pattern of {acl:?} matches {path:?}"));
                return Err(AuthError::WrongResource);
            }
            t.step("acl", true, format_args!("{path:?} matches {acl:?}"));
        }
        Ok(())
    }

    /// A token, as the Akamai libraries write it (`escape_early` off): ACL
    /// mode with `acl`, else URL mode for `url`.
    pub fn sign(algorithm: Algorithm, key: &[u8], salt: Option<&[u8]>, fields: &SignFields<'_>) -> String {
        let mut token = Vec::new();
        if let Some(ip) = fields.ip {
            token.push(format!("ip={ip}"));
        }
        if let Some(st) = fields.start {
            token.push(format!("st={st}"));
        }
        token.push(format!("exp={}", fields.exp));
        if let Some(acl) = fields.acl {
            token.push(format!("acl={acl}"));
        }
        let signed = token.join("~");
        let mut parts: Vec<&[u8]> = vec![signed.as_bytes()];
        if fields.acl.is_none() {
            parts.extend([&b"~url="[..], fields.url.as_bytes()]);
        }
        if let Some(salt) = salt {
            parts.extend([&b"~salt="[..], salt]);
        }
        let mac = crate::normalize::encode_hex(&algorithm.mac(key, &parts));
        format!("{signed}~hmac={mac}")
    }
}

/// The fields `tollgate sign --format edgeauth` writes.
#[derive(Debug, Clone, Default)]
pub struct SignFields<'a> {
    pub ip: Option<&'a str>,
    pub start: Option<u64>,
    pub exp: u64,
    /// ACL mode: `!`-separated patterns.
    pub acl: Option<&'a str>,
    /// URL mode: the path hashed in.
    pub url: &'a str,
}

// ---- Its section of `routes[].auth`, its key format and its signer ----

/// `auth.edgeauth`: Akamai EdgeAuth (Token Authorization) tokens.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeAuthFile {
    /// `edgeauth` keys, tried in order (a rotation's old and new key).
    pub keys: Vec<String>,
    /// `sha256` (default), `sha1` or `md5`.
    pub algorithm: Option<Algorithm>,
    /// The token's name in the query, cookie and header (default `__token__`).
    pub token_name: Option<String>,
    /// Where the token is read: `query`, `cookie`, `header` (default all three).
    pub from: Option<Vec<CarrierFile>>,
    /// The salt the tokens were made with, from a file or the environment.
    pub salt: Option<SecretFile>,
    /// URL-mode tokens were made with `escape_early` (the path hashed
    /// percent-encoded).
    #[serde(default)]
    pub escape_early: bool,
}

/// The kind's registration (see `kinds/mod.rs`).
pub struct Section;

/// Listed in `kinds::REGISTRY`.
pub static SECTION: Section = Section;

impl Registered for Section {
    fn section(&self) -> &'static str {
        "edgeauth"
    }

    fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<EdgeAuthFile>()
    }

    fn key_format(&self) -> Option<KeyFormat> {
        Some(KeyFormat {
            field: "edgeauth",
            about: "An Akamai EdgeAuth token key (default encoding `hex`, as Akamai shows it).",
            encoding: SecretEncoding::Hex,
            check: |_| Ok(()),
        })
    }

    fn compile(&self, cx: &mut dyn CompileContext, path: &str, section: Value) -> Compiled {
        let Some(raw) = parse_section::<EdgeAuthFile>(cx, path, section) else { return Vec::new() };
        let keys = cdn::secrets(cx, path, &raw.keys, "edgeauth");
        let token_name = raw.token_name.unwrap_or_else(|| "__token__".to_owned());
        let header = match HeaderName::from_bytes(token_name.to_ascii_lowercase().as_bytes()) {
            Ok(h) if cdn::valid_param(&token_name) => Some(h),
            _ => {
                cx.error(&format!("{path}.token_name"), "must be a plain name (A-Z a-z 0-9 - _ .)".to_owned());
                None
            }
        };
        let all = raw.from.is_none();
        let (mut from_query, mut from_cookie, mut from_header) = (all, all, all);
        for c in raw.from.iter().flatten() {
            match c {
                CarrierFile::Query => from_query = true,
                CarrierFile::Cookie => from_cookie = true,
                CarrierFile::Header => from_header = true,
            }
        }
        if !(from_query || from_cookie || from_header) {
            cx.error(&format!("{path}.from"), "list query, cookie and/or header".to_owned());
        }
        let salt = match raw.salt {
            None => None,
            Some(s) => match cx.secret(&format!("{path}.salt"), s, SecretEncoding::Raw) {
                Some(bytes) => Some(Secret::new(&bytes)),
                None => return Vec::new(),
            },
        };
        vec![Box::new(EdgeAuth {
            keys,
            algorithm: raw.algorithm.unwrap_or(Algorithm::Sha256),
            token_name: token_name.into_boxed_str(),
            from_query,
            from_cookie,
            header: if from_header { header } else { None },
            salt,
            escape_early: raw.escape_early,
        })]
    }

    fn signer(&self) -> &dyn Signer {
        self
    }
}

impl Signer for Section {
    fn format(&self) -> &'static str {
        "edgeauth"
    }

    fn options(&self) -> &'static [SignOption] {
        const OPTIONS: &[SignOption] = &[
            SignOption {
                name: "acl",
                value: Some("PATTERNS"),
                help: "edgeauth: ACL mode with these `!`-separated path patterns (default: URL mode, the target's path hashed in)",
                default: None,
            },
            SignOption {
                name: "algorithm",
                value: Some("ALG"),
                help: "edgeauth: sha256, sha1 or md5",
                default: Some("sha256"),
            },
            SignOption {
                name: "salt-file",
                value: Some("FILE"),
                help: "edgeauth: a file holding the salt",
                default: None,
            },
            SignOption {
                name: "token-name",
                value: Some("NAME"),
                help: "edgeauth: the token's query parameter",
                default: Some("__token__"),
            },
            OPTION_IP,
            OPTION_NOT_BEFORE,
        ];
        OPTIONS
    }

    /// The target with an EdgeAuth token in its query (characters a query
    /// cannot hold are percent-encoded).
    fn sign(&self, input: &SignInput<'_>) -> Result<String, String> {
        let algorithm = match input.option("algorithm").unwrap_or("sha256") {
            "sha256" => Algorithm::Sha256,
            "sha1" => Algorithm::Sha1,
            "md5" => Algorithm::Md5,
            other => return Err(format!("unknown algorithm {other:?}: sha256, sha1 or md5")),
        };
        let salt = match input.option("salt-file") {
            Some(file) => {
                let key = SignKey { source: KeySource::File(file.into()), encoding: Some(SecretEncoding::Raw) };
                Some(key.secret(SecretEncoding::Raw, 1)?)
            }
            None => None,
        };
        let start = input.option("not-before").map(|s| s.parse::<u64>().map_err(|_| format!("--not-before {s:?}")));
        let req = EdgeAuthSign {
            target: input.target,
            algorithm,
            salt: salt.as_deref(),
            token_name: input.option("token-name").unwrap_or("__token__"),
            ip: input.option("ip"),
            start: start.transpose()?,
            exp: input.exp,
            acl: input.option("acl"),
        };
        sign_edgeauth(&input.key.secret(SecretEncoding::Hex, 1)?, &req)
    }
}

/// What `tollgate sign --format edgeauth` needs.
pub struct EdgeAuthSign<'a> {
    /// `/path?query` or a full URL; URL mode hashes its path.
    pub target: &'a str,
    pub algorithm: Algorithm,
    pub salt: Option<&'a [u8]>,
    pub token_name: &'a str,
    pub ip: Option<&'a str>,
    pub start: Option<u64>,
    pub exp: u64,
    /// ACL mode: `!`-separated patterns.
    pub acl: Option<&'a str>,
}

/// The target with an EdgeAuth token in its query (characters a query
/// cannot hold are percent-encoded).
pub fn sign_edgeauth(key: &[u8], req: &EdgeAuthSign<'_>) -> Result<String, String> {
    let (_, target) = split_origin(req.target);
    let raw_path = target.split_once('?').map_or(&*target, |(p, _)| p);
    let fields = SignFields { ip: req.ip, start: req.start, exp: req.exp, acl: req.acl, url: raw_path };
    let token = EdgeAuth::sign(req.algorithm, key, req.salt, &fields);
    let encoded: String = token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~=*!/:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok(append_query(req.target, &[(req.token_name, encoded)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(escape_early: bool, salt: Option<&[u8]>) -> EdgeAuth {
        EdgeAuth {
            keys: vec![Arc::new(NamedSecret { id: "k".into(), secret: Secret::new(&[0xab; 32]) })],
            algorithm: Algorithm::Sha256,
            token_name: "__token__".into(),
            from_query: true,
            from_cookie: true,
            header: None,
            salt: salt.map(Secret::new),
            escape_early,
        }
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn acl_tokens() {
        let p = policy(false, None);
        let token = EdgeAuth::sign(
            Algorithm::Sha256,
            &[0xab; 32],
            None,
            &SignFields { exp: 2000, acl: Some("/v/*!/a.txt"), ..Default::default() },
        );
        assert_eq!(p.check(&token, "/v/x/y.ts", "/v/x/y.ts", LOCAL, 1000), Ok(()));
        assert_eq!(p.check(&token, "/a.txt", "/a.txt", LOCAL, 1000), Ok(()));
        assert_eq!(p.check(&token, "/b.txt", "/b.txt", LOCAL, 1000), Err(AuthError::WrongResource));
        assert_eq!(p.check(&token, "/a.txt", "/a.txt", LOCAL, 2001), Err(AuthError::Expired));
        assert_eq!(
            p.check(&token.replace("exp=2000", "exp=2001"), "/a.txt", "/a.txt", LOCAL, 1),
            Err(AuthError::BadSignature)
        );
        assert_eq!(p.check(&format!("{token}~x=1"), "/a.txt", "/a.txt", LOCAL, 1), Err(AuthError::BadSignature));
        assert_eq!(p.check(&format!("exp=1~{token}"), "/a.txt", "/a.txt", LOCAL, 1), Err(AuthError::Malformed));
        assert_eq!(p.check("exp=1~hmac=zz", "/a.txt", "/a.txt", LOCAL, 1), Err(AuthError::BadSignature));
    }

    #[test]
    fn url_tokens_bind_the_path_salt_and_ip() {
        let p = policy(false, Some(b"pepper"));
        let fields =
            SignFields { exp: 2000, url: "/a.txt", ip: Some("192.0.2.1"), start: Some(500), ..Default::default() };
        let token = EdgeAuth::sign(Algorithm::Sha256, &[0xab; 32], Some(b"pepper"), &fields);
        let client: IpAddr = "192.0.2.1".parse().unwrap_or(LOCAL);
        assert_eq!(p.check(&token, "/a.txt", "/a.txt", client, 1000), Ok(()));
        assert_eq!(p.check(&token, "/b.txt", "/b.txt", client, 1000), Err(AuthError::BadSignature));
        assert_eq!(p.check(&token, "/a.txt", "/a.txt", LOCAL, 1000), Err(AuthError::ClaimMismatch));
        assert_eq!(p.check(&token, "/a.txt", "/a.txt", client, 499), Err(AuthError::NotYetValid));
        assert_eq!(policy(false, None).check(&token, "/a.txt", "/a.txt", client, 1000), Err(AuthError::BadSignature));
    }

    #[test]
    fn escapes_match_the_libraries() {
        assert_eq!(escape_python("/a b/~x*(y).mp4"), "%2fa+b%2f~x%2a%28y%29.mp4");
        assert_eq!(escape_node("/a b/~x*(y).mp4"), "%2fa%20b%2f%7ex%2a(y).mp4");
    }

    #[test]
    fn md5_and_sha1() {
        for alg in [Algorithm::Sha1, Algorithm::Md5] {
            let p = EdgeAuth { algorithm: alg, ..policy(false, None) };
            let token =
                EdgeAuth::sign(alg, &[0xab; 32], None, &SignFields { exp: 9, acl: Some("/*"), ..Default::default() });
            assert_eq!(p.check(&token, "/x", "/x", LOCAL, 1), Ok(()), "{alg:?}");
        }
    }
}
