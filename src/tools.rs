//! `tollgate sign` and `tollgate token`: what a backend does to grant access,
//! for scripts, tests and first steps; `tollgate revoke`: how an operator
//! takes it back.

use std::path::Path;

use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::auth::keys::{HmacKey, MIN_SECRET_LEN, SecretEncoding, decode_secret};
use crate::auth::kinds::cdn::{NamedSecret, Secret};
use crate::auth::unix_now;
use crate::auth::{cloud_cdn, cloudfront, edgeauth, path_token, secure_link, signed_url};

/// Reads a secret from an environment variable or a file (one trailing
/// newline dropped, as in the config), decoded as `encoding`.
pub fn read_secret(env: Option<&str>, file: Option<&Path>, encoding: SecretEncoding) -> Result<Vec<u8>, String> {
    let secret = read_secret_any(env, file, encoding)?;
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!("the secret is {} bytes; at least {MIN_SECRET_LEN} are required", secret.len()));
    }
    Ok(secret)
}

/// Like [`read_secret`], for the CDN formats' keys, whose length the
/// format decides (a Cloud CDN key is 16 bytes).
pub fn read_secret_any(env: Option<&str>, file: Option<&Path>, encoding: SecretEncoding) -> Result<Vec<u8>, String> {
    let raw = match (env, file) {
        (Some(var), None) => std::env::var_os(var)
            .map(std::os::unix::ffi::OsStringExt::into_vec)
            .ok_or_else(|| format!("environment variable {var} is not set"))?,
        (None, Some(path)) => std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        _ => return Err("give exactly one of --key-env and --key-file".to_owned()),
    };
    let secret =
        decode_secret(raw, encoding).ok_or_else(|| "the secret is not valid in the given encoding".to_owned())?;
    if secret.is_empty() {
        return Err("the secret is empty".to_owned());
    }
    Ok(secret)
}

/// Splits `https://host/p?q` into its origin and `/p?q`, or fails: CDN
/// links sign the whole URL.
fn absolute(url: &str) -> Result<(&str, std::borrow::Cow<'_, str>), String> {
    match split_origin(url) {
        ("", _) => Err(format!("{url:?}: give the full URL the link is for (https://host/path)")),
        parts => Ok(parts),
    }
}

/// Appends `name=value` pairs to a URL's query.
fn append_query(url: &str, fields: &[(&str, String)]) -> String {
    let mut out = url.to_owned();
    for (i, (name, value)) in fields.iter().enumerate() {
        out.push(if i == 0 && !url.contains('?') { '?' } else { '&' });
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// What `tollgate sign --format cloudfront` needs.
pub struct CloudFrontSign<'a> {
    pub private_key_pem: &'a [u8],
    pub request: cloudfront::SignRequest<'a>,
    /// Print a `Cookie` header value instead of a URL.
    pub cookies: bool,
}

/// A CloudFront signed URL, or the signed cookies as one `Cookie` value.
pub fn sign_cloudfront(req: &CloudFrontSign<'_>) -> Result<String, String> {
    absolute(req.request.url)?;
    let key = cloudfront::PrivateKey::from_pem(req.private_key_pem)?;
    let fields = cloudfront::sign(&key, &req.request)?;
    if !req.cookies {
        return Ok(append_query(req.request.url, &fields));
    }
    let cookie = |name: &str| {
        let i = cloudfront::URL_PARAMS.iter().position(|p| *p == name).unwrap_or(0);
        cloudfront::COOKIES[i]
    };
    Ok(fields.iter().map(|(n, v)| format!("{}={v}", cookie(n))).collect::<Vec<_>>().join("; "))
}

/// What `tollgate sign --format secure_link` needs.
pub struct SecureLinkSign<'a> {
    /// `/path?query` or a full URL.
    pub target: &'a str,
    /// nginx's `secure_link_md5` expression, `$secret` for the secret.
    pub md5: &'a str,
    pub expires: u64,
    pub remote_addr: Option<std::net::IpAddr>,
    pub hash_param: &'a str,
    pub expires_param: &'a str,
}

/// An nginx `secure_link` link.
pub fn sign_secure_link(secret: &[u8], req: &SecureLinkSign<'_>) -> Result<String, String> {
    let (_, target) = split_origin(req.target);
    let (raw_path, query) = target.split_once('?').unwrap_or((&target, ""));
    let path = crate::normalize::check_path(raw_path)
        .map_err(|e| format!("the path is not in normal form ({e:?}); tollgate would refuse it"))?;
    let template = secure_link::parse_template(req.md5)?;
    if template.contains(&secure_link::Part::RemoteAddr) && req.remote_addr.is_none() {
        return Err("the expression uses $remote_addr: give --remote-addr".to_owned());
    }
    let expires = req.expires.to_string();
    let vars = secure_link::Vars {
        expires: &expires,
        uri: &path.decoded,
        remote_addr: req.remote_addr.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
        query,
    };
    let hash = secure_link::SecureLink::sign(&template, &vars, secret);
    Ok(append_query(req.target, &[(req.hash_param, hash), (req.expires_param, expires)]))
}

/// What `tollgate sign` needs.
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

/// Signs a path or URL; returns it with the signed-URL parameters appended.
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
        None => signed_url::sign_target(&key, req.method, &target, req.exp, req.kid, req.prefix)
            .map_err(|e| e.to_string())?,
    };
    Ok(format!("{origin}{signed}"))
}

/// Splits `https://host:port/p?q` into (`https://host:port`, `/p?q`); a URL
/// without a path gets `/`.
fn split_origin(target: &str) -> (&str, std::borrow::Cow<'_, str>) {
    if let Some(rest) = target.strip_prefix("http://").or_else(|| target.strip_prefix("https://")) {
        let scheme_len = target.len() - rest.len();
        let path_at = rest.find(['/', '?']).map_or(target.len(), |i| scheme_len + i);
        return match &target[path_at..] {
            "" => (target, "/".into()),
            t if t.starts_with('?') => (&target[..path_at], format!("/{t}").into()),
            t => (&target[..path_at], t.into()),
        };
    }
    ("", target.into())
}

/// What `tollgate sign --format edgeauth` needs.
pub struct EdgeAuthSign<'a> {
    /// `/path?query` or a full URL; URL mode hashes its path.
    pub target: &'a str,
    pub algorithm: edgeauth::Algorithm,
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
    let fields = edgeauth::SignFields { ip: req.ip, start: req.start, exp: req.exp, acl: req.acl, url: raw_path };
    let token = edgeauth::EdgeAuth::sign(req.algorithm, key, req.salt, &fields);
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
        return Ok(format!("{}={}", cloud_cdn::COOKIE, cloud_cdn::CloudCdn::sign_cookie(&key, prefix, req.expires)));
    }
    Ok(cloud_cdn::CloudCdn::sign_url(&key, req.url, req.expires, req.url_prefix))
}

/// Adds a `jti` (a link's id, SPEC §11) to a target's query, encoded
/// strictly; it is then signed like every other parameter.
pub fn with_id(target: &str, id: &str) -> Result<String, String> {
    if id.is_empty() {
        return Err("--jti must not be empty".to_owned());
    }
    let mut out = target.trim_end_matches('?').to_owned();
    out.push(if out.contains('?') { '&' } else { '?' });
    out.push_str(crate::auth::query::ID_PARAM);
    out.push('=');
    crate::auth::query::encode_strict(id.as_bytes(), &mut out);
    Ok(out)
}

/// What `tollgate revoke` revokes.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// One credential, by its `jti`.
    Id(String),
    /// Everything `sub` was issued before `before` (unix seconds; default:
    /// up to and including the current second).
    Subject { sub: String, before: Option<u64> },
}

/// Writes a revocation to the configured store: Redis directly, the memory
/// store through its revocations file (which the running server watches).
/// It is kept `keep` (default: the longest credential lifetime a route
/// that checks revocations accepts). Returns a line for the operator.
pub async fn revoke(
    config: &crate::config::Config,
    metrics: &crate::metrics::Metrics,
    target: &RevokeTarget,
    keep: Option<std::time::Duration>,
) -> Result<String, String> {
    use crate::store::{Digest, Revocation, Store, StoreSettings, revocations::Revocations};
    let keep = keep
        .or(config.revocation_lifetime)
        .ok_or("no route checks revocations: set `revocation: true` on a route's auth")?
        .as_secs();
    let now = unix_now();
    let revocation = match target {
        RevokeTarget::Id(id) if id.is_empty() => return Err("--jti must not be empty".to_owned()),
        RevokeTarget::Id(id) => Revocation::Id { id: Digest::id(id), until: now + keep },
        RevokeTarget::Subject { sub, before } => {
            let before = before.unwrap_or(now + 1);
            Revocation::Subject { subject: Digest::subject(sub), before, until: before.max(now) + keep }
        }
    };
    let until = match revocation {
        Revocation::Id { until, .. } | Revocation::Subject { until, .. } => until,
    };
    match &config.store {
        StoreSettings::Memory(m) => {
            let path = m.revocations_file.as_ref().ok_or(
                "the memory store takes revocations from a file: set store.memory.revocations_file (or use redis)",
            )?;
            Revocations::append_to(path, &revocation, now)?;
            Ok(format!("revoked until {until} (unix seconds), written to {}", path.display()))
        }
        StoreSettings::Redis(_) => {
            let store = Store::new(&config.store, metrics.store.clone())?;
            store.revoke(&revocation).await.map_err(|e| e.to_string())?;
            Ok(format!("revoked until {until} (unix seconds), in Redis"))
        }
    }
}

/// The key material `tollgate token` signs with.
pub enum TokenKey {
    Secret(Vec<u8>),
    PrivatePem(Vec<u8>),
}

/// Mints a JWT: `claims` merged over `exp = now + ttl` and `iat = now`.
pub fn token(
    key: &TokenKey,
    alg: Algorithm,
    kid: Option<&str>,
    ttl_secs: u64,
    claims: Map<String, Value>,
) -> Result<String, String> {
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
    let now = unix_now();
    let mut body = Map::new();
    body.insert("iat".into(), now.into());
    body.insert("exp".into(), (now + ttl_secs).into());
    body.extend(claims);
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &body, &encoding).map_err(|e| e.to_string())
}

/// Parses `name=value`; the value is JSON when it parses as JSON, else a string.
pub fn parse_claim(text: &str) -> Result<(String, Value), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("claim {text:?} must look like name=value"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((name.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_kept() {
        let split = |t| {
            let (origin, target) = split_origin(t);
            (origin.to_owned(), target.into_owned())
        };
        assert_eq!(split("https://f.example/a?b=1"), ("https://f.example".into(), "/a?b=1".into()));
        assert_eq!(split("http://127.0.0.1:8080"), ("http://127.0.0.1:8080".into(), "/".into()));
        assert_eq!(split("/a"), ("".into(), "/a".into()));
        assert_eq!(split("https://f.example?x=1"), ("https://f.example".into(), "/?x=1".into()));
    }

    #[test]
    fn ids_are_added_encoded() {
        assert_eq!(with_id("/a", "x y"), Ok("/a?jti=x%20y".to_owned()));
        assert_eq!(with_id("/a?b=1", "k"), Ok("/a?b=1&jti=k".to_owned()));
        assert_eq!(with_id("/a?", "k"), Ok("/a?jti=k".to_owned()));
        assert!(with_id("/a", "").is_err());
    }

    #[test]
    fn claims_parse_as_json_or_string() {
        assert_eq!(parse_claim("division=Honda"), Ok(("division".into(), Value::String("Honda".into()))));
        assert_eq!(parse_claim("n=3"), Ok(("n".into(), Value::from(3))));
        assert_eq!(parse_claim(r#"path=["/a/*"]"#), Ok(("path".into(), serde_json::json!(["/a/*"]))));
        assert!(parse_claim("novalue").is_err());
    }
}
