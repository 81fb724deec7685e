//! Signed URLs, native format v1 (docs/reference.md: Signed URLs): verification and signing.
//!
//! ```text
//! scheme \n method \n exp \n kid \n resource \n canonical_query
//! sig = base64url_nopad(HMAC-SHA256(secret, string_to_sign))
//! ```
//! `scheme` is `TOLLGATE-HMAC-SHA256` for one path and
//! `TOLLGATE-HMAC-SHA256-PREFIX` for a prefix grant: a signature for a path
//! that ends in `/` (a directory index) can never be replayed as a grant over
//! everything below it, and a prefix grant never verifies as a one-path one.
//! The signature binds the method, the expiry, the key id, the path (or the
//! granted prefix) and every other query parameter, so a holder can neither
//! widen the grant nor add parameters the upstream would act on.

use std::net::IpAddr;
use std::sync::Arc;

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_yaml_ng::Value;

pub use super::hmac::{
    KeyHint, SignedUrlPolicy, ToSign, Visible, decode_signature, parse_exp, signing_method, valid_kid,
};
use super::path_token;
use crate::auth::error::{AuthError, Carrier};
use crate::auth::grant::Facts;
use crate::auth::grant::Grant;
use crate::auth::grant::Scope;
use crate::auth::keys::HmacKey;
use crate::auth::kind::AuthRequest;
use crate::auth::kind::Kind;
use crate::auth::kind::NoTrace;
use crate::auth::kind::Presented;
use crate::auth::kind::Tracer;
use crate::auth::kind::VerifyContext;
use crate::auth::query::{self, CredentialNames, Found, ID_PARAM, IP_PARAM, SIGNED_URL_PARAMS};
use crate::auth::section::{CompileContext, Compiled, CompiledKey, Registered, parse_section};
use crate::auth::sign::{OPTION_IP, OPTION_PREFIX, SignInput, SignOption, Signer, split_origin};
use crate::duration::HumanDuration;
use crate::duration::human;
use crate::normalize;

/// First line of a one-path grant's string to sign.
pub const SCHEME: &str = "TOLLGATE-HMAC-SHA256";
/// First line of a prefix grant's string to sign.
pub const SCHEME_PREFIX: &str = "TOLLGATE-HMAC-SHA256-PREFIX";

/// The first line for a grant with or without `prefix`.
pub fn scheme(prefix: bool) -> &'static str {
    if prefix { SCHEME_PREFIX } else { SCHEME }
}

impl Kind for SignedUrlPolicy {
    fn name(&self) -> &'static str {
        "signed_url"
    }

    fn query_params(&self) -> Vec<&str> {
        // `ip` is found and stripped like the others, but signed: the
        // canonical query keeps it.
        SIGNED_URL_PARAMS.iter().copied().chain([IP_PARAM]).collect()
    }

    fn link_key(&self) -> Option<&HmacKey> {
        self.keys.first().map(|k| &**k)
    }

    fn find<'r>(&self, req: &AuthRequest<'r>, found: &mut dyn FnMut(Presented<'r>)) -> Result<(), AuthError> {
        if req.found.any_of(&SIGNED_URL_PARAMS) {
            let sig = req.found.get("sig").unwrap_or_default();
            found(Presented { carrier: Carrier::SignedUrl, credential: Cow::Borrowed(sig) });
        }
        Ok(())
    }

    /// One HMAC: cheaper than a cache lookup, so never cached. The `jti`
    /// parameter is the link's id where the route reads it (it is then one
    /// of the route's credential parameters, see [`ID_PARAM`]); it is bound
    /// by the signature either way.
    fn verify(&self, _: &Presented<'_>, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, AuthError> {
        let key = verify_traced(self, req.method, req.path, req.query, req.found, ctx.now, &mut ctx.tracer())?;
        if let Some(raw) = req.found.get(IP_PARAM) {
            check_client(raw, req.client_ip, &mut ctx.tracer())?;
        }
        let scope = match req.found.get("prefix").and_then(decode_prefix) {
            Some(prefix) => Scope::Prefix(prefix.into()),
            None => Scope::Path(req.path.into()),
        };
        let id = match req.found.get(ID_PARAM) {
            None => None,
            Some(raw) => {
                let bytes = query::decode_component(raw).map_err(|_| AuthError::Malformed)?;
                let text = std::str::from_utf8(&bytes).map_err(|_| AuthError::Malformed)?;
                (!text.is_empty()).then(|| Arc::from(text))
            }
        };
        let expires_at = req.found.get("exp").and_then(parse_exp);
        let facts = Facts { id, expires_at, ..Facts::default() };
        let key = Some(Arc::from(format!("signed_url:{}", key.id)));
        Ok(Grant { scope: Some(scope), key, facts, ..Grant::plain(Carrier::SignedUrl) })
    }

    fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| format!("signed_url:{}", k.id)).collect()
    }

    fn id_lifetime(&self) -> Option<Option<u64>> {
        Some(self.max_ttl)
    }

    fn id_param(&self) -> Option<&'static str> {
        Some(ID_PARAM)
    }
}

/// The string to sign of a query-signed URL.
pub fn string_to_sign(method: &str, exp: &str, kid: &str, prefix: Option<&str>, path: &str, query: &str) -> String {
    ToSign {
        scheme: scheme(prefix.is_some()),
        method,
        exp,
        kid,
        resource: prefix.unwrap_or(path),
        canonical_query: query,
    }
    .text()
}

/// The link's parameters as written, the absent ones left out
/// (`exp=1767225600 kid=media-2025 prefix=/media/u1/`).
fn present_params(exp: &str, kid: &str, prefix: Option<&str>) -> String {
    let mut text = format!("exp={exp}");
    if !kid.is_empty() {
        text.push_str(&format!(" kid={kid}"));
    }
    if let Some(prefix) = prefix {
        text.push_str(&format!(" prefix={prefix}"));
    }
    text
}

/// Decodes and checks a `prefix` value: a normal path that ends with `/`.
fn decode_prefix(raw: &str) -> Option<String> {
    let bytes = query::decode_component(raw).ok()?;
    let prefix = String::from_utf8(bytes.into_owned()).ok()?;
    let normal = prefix.starts_with('/')
        && prefix.ends_with('/')
        && !prefix.contains("//")
        && !prefix.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\')
        && !prefix.split('/').any(|s| s == "." || s == "..");
    normal.then_some(prefix)
}

/// Verifies a signed URL. `path` is the decoded request path, `query` the raw
/// query, `found` its credential parameters, `now` unix seconds.
pub fn verify(
    policy: &SignedUrlPolicy,
    method: &str,
    path: &str,
    query: &str,
    found: &Found<'_>,
    now: u64,
) -> Result<(), AuthError> {
    verify_traced(policy, method, path, query, found, now, &mut NoTrace).map(|_| ())
}

/// [`verify`], reporting each check to `t` in order (`tollgate explain`);
/// the key that verified the link.
pub fn verify_traced<'p>(
    policy: &'p SignedUrlPolicy,
    method: &str,
    path: &str,
    query: &str,
    found: &Found<'_>,
    now: u64,
    t: &mut dyn Tracer,
) -> Result<&'p HmacKey, AuthError> {
    let (Some(exp_raw), Some(sig_raw)) = (found.get("exp"), found.get("sig")) else {
        t.step("parameters", false, format_args!("a signed URL needs both exp and sig"));
        return Err(AuthError::Malformed);
    };
    let Some(exp) = parse_exp(exp_raw) else {
        t.step("parameters", false, format_args!("exp {exp_raw:?} is not a plain decimal (^[1-9][0-9]{{0,10}}$)"));
        return Err(AuthError::Malformed);
    };
    let kid = found.get("kid").unwrap_or("");
    if found.get("kid").is_some() && !valid_kid(kid) {
        t.step("parameters", false, format_args!("kid {kid:?} does not match [A-Za-z0-9._-]{{1,64}}"));
        return Err(AuthError::Malformed);
    }
    let prefix = match found.get("prefix") {
        Some(raw) => match decode_prefix(raw) {
            Some(p) => Some(p),
            None => {
                t.step("parameters", false, format_args!("prefix {raw:?} is not a normal path ending in /"));
                return Err(AuthError::Malformed);
            }
        },
        None => None,
    };
    t.step("parameters", true, format_args!("{}", present_params(exp_raw, kid, prefix.as_deref())));
    let key = match found.get("kid") {
        Some(kid) => policy.keys.get(kid),
        None => policy.keys.first(),
    };
    let Some(key) = key else {
        t.step("key", false, format_args!("no key of this route has kid {kid:?}"));
        return Err(AuthError::UnknownKey);
    };
    t.step(
        "key",
        true,
        format_args!("key id {:?}{}", key.id, if kid.is_empty() { " (the route's first key)" } else { "" }),
    );
    if now > exp {
        t.step("expiry", false, format_args!("exp {exp} passed {} ago (now {now})", human(now - exp)));
        return Err(AuthError::Expired);
    }
    if let Some(max) = policy.max_ttl.filter(|max| exp - now > *max) {
        t.step(
            "expiry",
            false,
            format_args!(
                "the link lives {} more, longer than the route's max_ttl {} (sign it with a --ttl of {} or less)",
                human(exp - now),
                human(max),
                human(max)
            ),
        );
        return Err(AuthError::ClaimMismatch);
    }
    t.step("expiry", true, format_args!("exp {exp}: in {} (now {now})", human(exp - now)));
    let canonical = match query::canonical(query) {
        Ok(c) => c,
        Err(_) => {
            t.step("signature", false, format_args!("the query has invalid percent-encoding"));
            return Err(AuthError::Malformed);
        }
    };
    let to_sign = |method| ToSign {
        scheme: scheme(prefix.is_some()),
        method,
        exp: exp_raw,
        kid,
        resource: prefix.as_deref().unwrap_or(path),
        canonical_query: &canonical,
    };
    let Some(given) = decode_signature(sig_raw) else {
        t.step(
            "signature",
            false,
            format_args!(
                "sig is not 43 base64url characters; expected the HMAC of {}",
                Visible(&to_sign(method).text())
            ),
        );
        return Err(AuthError::BadSignature);
    };
    if !to_sign(method).verifies(key, &given) {
        // Tell a replay under another method apart from a forgery: costs one
        // more HMAC, and only on a request that is refused anyway.
        let signed_get = signing_method(method) != "GET" && to_sign("GET").verifies(key, &given);
        if signed_get {
            t.step("method", false, format_args!("the signature is for GET, the request is {method}"));
            return Err(AuthError::WrongMethod);
        }
        t.step(
            "signature",
            false,
            format_args!(
                "mismatch; tollgate expected the HMAC-SHA256 of:{}{}",
                Visible(&to_sign(method).text()),
                KeyHint(key)
            ),
        );
        return Err(AuthError::BadSignature);
    }
    t.step("signature", true, format_args!("matches ({})", scheme(prefix.is_some())));
    if let Some(p) = &prefix {
        if !path.starts_with(p.as_str()) {
            t.step("prefix", false, format_args!("{path:?} is not under the granted prefix {p:?}"));
            return Err(AuthError::WrongResource);
        }
        t.step("prefix", true, format_args!("{path:?} is under {p:?}"));
    }
    Ok(key)
}

/// A link bound to a client address or range (its signed `ip`
/// parameter): the client's address must lie in it.
fn check_client(raw: &str, client: IpAddr, t: &mut dyn Tracer) -> Result<(), AuthError> {
    let text =
        query::decode_component(raw).ok().and_then(|b| String::from_utf8(b.into_owned()).ok()).unwrap_or_default();
    let Some((network, bits)) = parse_network(&text) else {
        t.step("ip", false, format_args!("ip {text:?} is not an address or a CIDR range"));
        return Err(AuthError::Malformed);
    };
    if !in_network(client, network, bits) {
        t.step("ip", false, format_args!("the client address {client} is not in {text}"));
        return Err(AuthError::ClaimMismatch);
    }
    t.step("ip", true, format_args!("the client address {client} is in {text}"));
    Ok(())
}

/// `203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`: the address and the
/// prefix length (the full length without one). Host bits must be zero.
pub fn parse_network(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) && b.len() <= 3 => {
            (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?))
        }
        Some(_) => return None,
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(full);
    (bits <= full && mask(addr, bits) == addr).then_some((addr, bits))
}

/// Whether `client` lies in `network/bits` (same family; a mapped IPv4
/// client is IPv4).
pub fn in_network(client: IpAddr, network: IpAddr, bits: u8) -> bool {
    let client = client.to_canonical();
    client.is_ipv4() == network.is_ipv4() && mask(client, bits) == mask(network, bits)
}

fn mask(addr: IpAddr, bits: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(bits.min(32))).unwrap_or(0);
            IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(bits.min(128))).unwrap_or(0);
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

/// Adds the client binding (`ip`, an address or CIDR range) to a target's
/// query, encoded strictly; it is then signed like every other parameter.
pub fn with_ip(target: &str, ip: &str) -> Result<String, String> {
    if parse_network(ip).is_none() {
        return Err(format!("--ip {ip:?} is not an address or a CIDR range with zero host bits"));
    }
    let mut out = target.trim_end_matches('?').to_owned();
    out.push(if out.contains('?') { '&' } else { '?' });
    out.push_str(IP_PARAM);
    out.push('=');
    query::encode_strict(ip.as_bytes(), &mut out);
    Ok(out)
}

/// Errors from [`sign_target`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("the path is not in normal form ({0:?}); tollgate would refuse it")]
    NotNormal(normalize::NotNormal),
    #[error("the query already holds exp, sig, kid or prefix")]
    HasCredential,
    #[error("the query has invalid percent-encoding")]
    BadQuery,
    #[error("kid must match [A-Za-z0-9._-]{{1,64}}")]
    BadKid,
    #[error("prefix must be a normal path that starts and ends with /, and the path must lie under it")]
    BadPrefix,
}

/// Signs a request target (`/path?query`), returning it with `exp`, `kid`,
/// `prefix` and `sig` appended to the query.
pub fn sign_target(
    key: &HmacKey,
    method: &str,
    target: &str,
    exp: u64,
    kid: Option<&str>,
    prefix: Option<&str>,
) -> Result<String, SignError> {
    let (raw_path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = normalize::check_path(raw_path).map_err(SignError::NotNormal)?;
    let names = CredentialNames::signed_url();
    if query::scan(query, &names).map_or(true, |f| f.any()) {
        return Err(SignError::HasCredential);
    }
    if kid.is_some_and(|k| !valid_kid(k)) {
        return Err(SignError::BadKid);
    }
    let canonical = query::canonical(query).map_err(|_| SignError::BadQuery)?;
    let mut encoded_prefix = String::new();
    if let Some(p) = prefix {
        query::encode_strict(p.as_bytes(), &mut encoded_prefix);
        if decode_prefix(&encoded_prefix).is_none() || !path.decoded.starts_with(p) {
            return Err(SignError::BadPrefix);
        }
    }
    let exp = exp.to_string();
    let method = method.to_ascii_uppercase();
    let sig = ToSign {
        scheme: scheme(prefix.is_some()),
        method: &method,
        exp: &exp,
        kid: kid.unwrap_or(""),
        resource: prefix.unwrap_or(&path.decoded),
        canonical_query: &canonical,
    }
    .signature(key);
    let mut out = String::with_capacity(target.len() + 96);
    out.push_str(target);
    out.push(if query.is_empty() { '?' } else { '&' });
    if target.ends_with('?') {
        out.pop();
    }
    out.push_str("exp=");
    out.push_str(&exp);
    if let Some(k) = kid {
        out.push_str("&kid=");
        out.push_str(k);
    }
    if prefix.is_some() {
        out.push_str("&prefix=");
        out.push_str(&encoded_prefix);
    }
    out.push_str("&sig=");
    out.push_str(&sig);
    Ok(out)
}

// ---- Its section of `routes[].auth` (path tokens included) and its signer ----

/// `auth.signed_url`: tollgate's own signed URLs (docs/reference.md: Signed URLs), and path
/// tokens (docs/reference.md: Path tokens) under the same keys.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlFile {
    pub keys: Vec<String>,
    pub max_ttl: Option<HumanDuration>,
    /// Also accept path tokens (docs/reference.md: Path tokens), for HLS/DASH.
    #[serde(default)]
    pub path_tokens: bool,
    /// The path-token segment's marker (default `tg`).
    pub path_token_marker: Option<String>,
}

/// The kind's registration (see `kinds/mod.rs`).
pub struct Section;

/// Listed in `kinds::REGISTRY`.
pub static SECTION: Section = Section;

impl Registered for Section {
    fn section(&self) -> &'static str {
        "signed_url"
    }

    fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<SignedUrlFile>()
    }

    /// The signed-URL kind, and the path-token kind when the route takes them.
    fn compile(&self, cx: &mut dyn CompileContext, path: &str, section: Value) -> Compiled {
        let Some(raw) = parse_section::<SignedUrlFile>(cx, path, section) else { return Vec::new() };
        if raw.keys.is_empty() {
            cx.error(&format!("{path}.keys"), "list at least one hmac key".to_owned());
        }
        let mut keys = Vec::new();
        for (i, name) in raw.keys.iter().enumerate() {
            let kpath = format!("{path}.keys[{i}]");
            match cx.key(&kpath, name) {
                Some(CompiledKey::Hmac { signer, .. }) => {
                    if !valid_kid(&signer.id) {
                        cx.error(&kpath, format!("kid {:?} must match [A-Za-z0-9._-]{{1,64}}", signer.id));
                    }
                    keys.push(signer);
                }
                Some(_) => cx.error(&kpath, format!("key {name:?} is not an hmac key; signed URLs need one")),
                None => {}
            }
        }
        let marker = raw.path_token_marker.unwrap_or_else(|| path_token::DEFAULT_MARKER.to_owned());
        if !path_token::valid_marker(&marker) {
            cx.error(&format!("{path}.path_token_marker"), "must match [A-Za-z0-9_-]{1,16}".to_owned());
        }
        let policy = SignedUrlPolicy { keys: keys.into(), max_ttl: raw.max_ttl.map(|d| d.0.as_secs()) };
        let mut kinds: Compiled = Vec::new();
        if raw.path_tokens {
            kinds.push(Box::new(path_token::PathTokens { policy: policy.clone(), marker: marker.into_boxed_str() }));
        }
        kinds.push(Box::new(policy));
        kinds
    }

    fn signer(&self) -> &dyn Signer {
        self
    }
}

impl Signer for Section {
    fn format(&self) -> &'static str {
        "tollgate"
    }

    fn options(&self) -> &'static [SignOption] {
        const OPTIONS: &[SignOption] = &[
            OPTION_PREFIX,
            SignOption {
                name: "method",
                value: Some("METHOD"),
                help: "the method the link is for (HEAD is covered by GET)",
                default: Some("GET"),
            },
            SignOption {
                name: "path-token",
                value: None,
                help: "write a path token after the prefix instead of query parameters: for HLS/DASH, \
                       whose players drop the query; grants --prefix, or the target's directory",
                default: None,
            },
            SignOption {
                name: "marker",
                value: Some("MARKER"),
                help: "the route's path-token marker (with --path-token)",
                default: Some("tg"),
            },
            OPTION_IP,
            SignOption {
                name: "jti",
                value: Some("ID"),
                help: "the link's id (`jti` parameter, signed): what use limits count and `tollgate revoke --jti` names",
                default: None,
            },
        ];
        OPTIONS
    }

    fn sign(&self, input: &SignInput<'_>) -> Result<String, String> {
        let path_token = input.flag("path-token");
        if !path_token && input.options.contains_key("marker") {
            return Err("--marker goes with --path-token".to_owned());
        }
        let target = match input.option("jti") {
            Some(_) if path_token => return Err("--jti cannot be used with --path-token".to_owned()),
            Some(id) => with_id(input.target, id)?,
            None => input.target.to_owned(),
        };
        let target = match input.option("ip") {
            Some(_) if path_token => return Err("--ip cannot be used with --path-token".to_owned()),
            Some(ip) => with_ip(&target, ip)?,
            None => target,
        };
        let method = input.option("method").unwrap_or("GET").to_ascii_uppercase();
        let request = SignRequest {
            target: &target,
            method: &method,
            exp: input.exp,
            kid: input.kid,
            prefix: input.option("prefix"),
            path_token: path_token.then(|| input.option("marker").unwrap_or(path_token::DEFAULT_MARKER)),
        };
        sign(&input.key.hmac()?, &request)
    }
}

/// What `tollgate sign` needs for tollgate's own formats.
pub struct SignRequest<'a> {
    /// `/path?query`, or a full `https://host/path?query` URL.
    pub target: &'a str,
    pub method: &'a str,
    /// Expiry, unix seconds.
    pub exp: u64,
    pub kid: Option<&'a str>,
    pub prefix: Option<&'a str>,
    /// Write a path token with this marker instead of query parameters.
    pub path_token: Option<&'a str>,
}

/// Signs a path or URL; returns it with the signed-URL parameters appended
/// (or a path token inserted).
pub fn sign(secret: &[u8], req: &SignRequest<'_>) -> Result<String, String> {
    if !(1..100_000_000_000).contains(&req.exp) {
        return Err(format!("exp {} is outside what a signed URL can carry (1 to 11 digits)", req.exp));
    }
    let key = HmacKey::new(req.kid.unwrap_or(""), secret);
    let (origin, target) = split_origin(req.target);
    let signed = match req.path_token {
        Some(marker) => {
            if req.method != "GET" && req.method != "HEAD" {
                return Err("a path token grants GET and HEAD only".to_owned());
            }
            path_token::sign_path(&key, &target, req.exp, req.kid, req.prefix, marker)
        }
        .map_err(|e| e.to_string())?,
        None => sign_target(&key, req.method, &target, req.exp, req.kid, req.prefix).map_err(|e| e.to_string())?,
    };
    Ok(format!("{origin}{signed}"))
}

/// Adds a `jti` (a link's id, README: One-time and limited links) to a target's query, encoded
/// strictly; it is then signed like every other parameter.
pub fn with_id(target: &str, id: &str) -> Result<String, String> {
    if id.is_empty() {
        return Err("--jti must not be empty".to_owned());
    }
    let mut out = target.trim_end_matches('?').to_owned();
    out.push(if out.contains('?') { '&' } else { '?' });
    out.push_str(ID_PARAM);
    out.push('=');
    query::encode_strict(id.as_bytes(), &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"tollgate-test-vector-secret-0123456789abcdef";
    const EXP: u64 = 1_893_456_000;

    fn policy() -> SignedUrlPolicy {
        SignedUrlPolicy {
            keys: vec![Arc::new(HmacKey::new("k2026", SECRET)), Arc::new(HmacKey::new("old", &[7u8; 32]))].into(),
            max_ttl: None,
        }
    }

    fn check(policy: &SignedUrlPolicy, method: &str, target: &str, now: u64) -> Result<(), AuthError> {
        let (raw_path, query) = target.split_once('?').unwrap_or((target, ""));
        let path = normalize::check_path(raw_path).map_err(|_| AuthError::Malformed)?;
        let names = CredentialNames::signed_url();
        let found = query::scan(query, &names).map_err(|_| AuthError::Malformed)?;
        verify(policy, method, &path.decoded, query, &found, now)
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        secret: String,
        method: String,
        request_target: String,
        string_to_sign: String,
        sig: String,
        forwarded_target: String,
    }

    /// Every case of `shared/vectors/signed-url.json`: the string to sign, the
    /// signature, verification and the forwarded target.
    #[test]
    fn shared_vectors() {
        let text = include_str!("../../../tests/vectors/signed-url.json");
        let vectors: Vec<Vector> = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(vectors.len() >= 7);
        for v in vectors {
            let key = HmacKey::new("k2026", v.secret.as_bytes());
            let (raw_path, query) = v.request_target.split_once('?').unwrap_or((&v.request_target, ""));
            let names = CredentialNames::signed_url();
            let found = query::scan(query, &names).unwrap_or_default();
            let path = normalize::check_path(raw_path).unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
            let prefix = found.get("prefix").and_then(decode_prefix);
            let canonical = query::canonical(query).unwrap_or_default();
            let (exp, kid) = (found.get("exp").unwrap_or(""), found.get("kid").unwrap_or(""));
            let to_sign = ToSign {
                scheme: scheme(prefix.is_some()),
                method: &v.method,
                exp,
                kid,
                resource: prefix.as_deref().unwrap_or(&path.decoded),
                canonical_query: &canonical,
            };
            assert_eq!(to_sign.text(), v.string_to_sign, "{}", v.name);
            assert_eq!(to_sign.signature(&key), v.sig, "{}", v.name);
            let policy = SignedUrlPolicy { keys: vec![Arc::new(key)].into(), max_ttl: None };
            assert_eq!(verify(&policy, &v.method, &path.decoded, query, &found, EXP - 60), Ok(()), "{}", v.name);
            let forwarded = match query::strip(query, &found) {
                Some(q) => format!("{raw_path}?{q}"),
                None => raw_path.to_owned(),
            };
            assert_eq!(forwarded, v.forwarded_target, "{}", v.name);
        }
    }

    fn signed(method: &str, target: &str, kid: Option<&str>, prefix: Option<&str>) -> String {
        let key = HmacKey::new("k2026", SECRET);
        sign_target(&key, method, target, EXP, kid, prefix).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn sign_target_round_trips() {
        let p = policy();
        let url = signed("GET", "/media/a%20b.jpg?w=1", None, None);
        assert_eq!(check(&p, "GET", &url, EXP - 10), Ok(()));
        assert_eq!(check(&p, "HEAD", &url, EXP - 10), Ok(()));
        let url = signed("GET", "/media/x", Some("k2026"), None);
        assert_eq!(check(&p, "GET", &url, EXP - 10), Ok(()));
    }

    #[test]
    fn refusals() {
        let p = policy();
        let url = signed("GET", "/b/a.txt", None, None);
        assert_eq!(check(&p, "GET", &url, EXP + 1), Err(AuthError::Expired));
        assert_eq!(check(&p, "GET", &url.replace("/b/a.txt", "/b/b.txt"), EXP - 1), Err(AuthError::BadSignature));
        assert_eq!(check(&p, "PUT", &url, EXP - 1), Err(AuthError::WrongMethod));
        assert_eq!(check(&p, "DELETE", &url, EXP - 1), Err(AuthError::WrongMethod));
        assert_eq!(check(&p, "GET", &format!("{url}&versionId=1"), EXP - 1), Err(AuthError::BadSignature));
        let put = signed("PUT", "/b/a.txt", None, None);
        assert_eq!(check(&p, "GET", &put, EXP - 1), Err(AuthError::BadSignature));
        let other_kid = signed("GET", "/b/a.txt", Some("nope"), None);
        assert_eq!(check(&p, "GET", &other_kid, EXP - 1), Err(AuthError::UnknownKey));
        let with_old = signed("GET", "/b/a.txt", Some("old"), None);
        assert_eq!(
            check(&p, "GET", &with_old, EXP - 1),
            Err(AuthError::BadSignature),
            "signed with k2026 but names old"
        );
    }

    #[test]
    fn prefix_grants_stop_at_the_slash() {
        let p = policy();
        let url = signed("GET", "/b/u1/x", None, Some("/b/u1/"));
        assert_eq!(check(&p, "GET", &url, EXP - 1), Ok(()));
        let other = url.replace("/b/u1/x", "/b/u1/deeper/y");
        assert_eq!(check(&p, "GET", &other, EXP - 1), Ok(()));
        let sibling = url.replace("/b/u1/x", "/b/u10/x");
        assert_eq!(check(&p, "GET", &sibling, EXP - 1), Err(AuthError::WrongResource));
        let key = HmacKey::new("k", SECRET);
        assert_eq!(sign_target(&key, "GET", "/b/u1/x", EXP, None, Some("/b/u1")), Err(SignError::BadPrefix));
        assert_eq!(sign_target(&key, "GET", "/b/x", EXP, None, Some("/b/u1/")), Err(SignError::BadPrefix));
    }

    #[test]
    fn exp_must_be_plain_decimal() {
        let p = policy();
        let url = signed("GET", "/b/a.txt", None, None);
        let exp = EXP.to_string();
        for bad in [
            format!("+{exp}"),
            format!("%20{exp}"),
            format!("0{exp}"),
            format!("{exp}.0"),
            "1e10".to_owned(),
            "123456789012345678901".to_owned(),
            String::new(),
        ] {
            let tampered = url.replace(&format!("exp={exp}"), &format!("exp={bad}"));
            assert_eq!(check(&p, "GET", &tampered, EXP - 1), Err(AuthError::Malformed), "exp={bad}");
        }
    }

    #[test]
    fn max_ttl_bounds_the_link_lifetime() {
        let p = SignedUrlPolicy { max_ttl: Some(3600), ..policy() };
        let url = signed("GET", "/b/a.txt", None, None);
        assert_eq!(check(&p, "GET", &url, EXP - 3600), Ok(()));
        assert_eq!(check(&p, "GET", &url, EXP - 3601), Err(AuthError::ClaimMismatch));
    }

    #[test]
    fn malformed_pieces() {
        let p = policy();
        assert_eq!(check(&p, "GET", "/b/a?exp=1893456000", EXP - 1), Err(AuthError::Malformed));
        assert_eq!(check(&p, "GET", "/b/a?sig=abc", EXP - 1), Err(AuthError::Malformed));
        let url = signed("GET", "/b/a", None, None);
        assert_eq!(check(&p, "GET", &format!("{url}&kid=a%20b"), EXP - 1), Err(AuthError::Malformed));
        assert_eq!(check(&p, "GET", &format!("{url}&prefix=%2Fb"), EXP - 1), Err(AuthError::Malformed));
        let short_sig = url.rsplit_once("&sig=").map(|(a, _)| format!("{a}&sig=abc")).unwrap_or_default();
        assert_eq!(check(&p, "GET", &short_sig, EXP - 1), Err(AuthError::BadSignature));
    }
}
