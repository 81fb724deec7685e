//! nginx `secure_link` links, verified as `ngx_http_secure_link_module`
//! does, so links minted for nginx keep working in front of it.
//!
//! ```text
//! secure_link     $arg_md5,$arg_expires;                        (hash_param, expires_param)
//! secure_link_md5 "$secure_link_expires$uri$remote_addr secret"; (md5, with $secret for the secret)
//! md5 = base64url(MD5(expression)), with or without padding
//! ```
//! The module's rules, followed to the byte (the differential test in
//! `tests/compat_secure_link.rs` runs nginx itself on the same links):
//! the hash value (at most 24 characters) is decoded as base64url up to its
//! first `=`, whatever follows, and must give 16 bytes; `expires` is plain
//! digits (leading zeros allowed, `$secure_link_expires` is the text as
//! sent); `expires=0`, an empty or non-numeric `expires` are refused; the
//! link is expired once `expires` is earlier than now (a link is still good
//! in its last second). The hash is checked first, then the expiry.
//!
//! Variables: `$secure_link_expires`, `$uri` (the decoded path), `$remote_addr`
//! (the client address, see `auth::client_ip`), `$arg_NAME` (the raw value of
//! the first `NAME=` query parameter, name compared without case, as nginx)
//! and `$secret` (the route's key, from a file or the environment instead of
//! the nginx config). Where tollgate is stricter than nginx: a credential
//! parameter given twice is refused (nginx takes the first), and the
//! parameter names are exact (nginx's `$arg_md5` also reads `MD5=`).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::constant_time;
use md5::{Digest, Md5};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::cdn::{self, NamedSecret};
use crate::auth::error::{AuthError, Carrier};
use crate::auth::grant::Grant;
use crate::auth::keys::SecretEncoding;
use crate::auth::kind::AuthRequest;
use crate::auth::kind::Kind;
use crate::auth::kind::Presented;
use crate::auth::kind::VerifyContext;
use crate::auth::section::{CompileContext, Compiled, KeyFormat, Registered, parse_section};
use crate::auth::sign::{SignInput, SignOption, Signer, append_query, split_origin};

/// One piece of a `secure_link_md5` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(Box<str>),
    Expires,
    Uri,
    RemoteAddr,
    Arg(Box<str>),
    Secret,
}

/// Parses an nginx expression (`$name` or `${name}`) into its parts.
pub fn parse_template(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (name, after) = match rest.strip_prefix('{') {
            Some(inner) => {
                let end = inner.find('}').ok_or("a ${ without its }")?;
                (&inner[..end], &inner[end + 1..])
            }
            None => {
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        let part = match name {
            "secure_link_expires" => Part::Expires,
            "uri" => Part::Uri,
            "remote_addr" => Part::RemoteAddr,
            "secret" => Part::Secret,
            n if n.starts_with("arg_") && n.len() > 4 => Part::Arg(n[4..].into()),
            "" => return Err("a $ without a variable name".to_owned()),
            other => {
                return Err(format!(
                    "${other} is not supported: use $secure_link_expires, $uri, $remote_addr, $arg_NAME and $secret"
                ));
            }
        };
        if !literal.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut literal).into()));
        }
        parts.push(part);
        rest = after;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal.into()));
    }
    Ok(parts)
}

/// The kind: a route's `secure_link` rules.
#[derive(Debug)]
pub struct SecureLink {
    /// Secrets tried in order (rotation: old and new).
    pub keys: Vec<Arc<NamedSecret>>,
    pub template: Vec<Part>,
    pub hash_param: Box<str>,
    pub expires_param: Box<str>,
}

impl Kind for SecureLink {
    fn name(&self) -> &'static str {
        "secure_link"
    }

    fn query_params(&self) -> Vec<&str> {
        vec![&*self.hash_param, &*self.expires_param]
    }

    fn find<'r>(&self, req: &AuthRequest<'r>, found: &mut dyn FnMut(Presented<'r>)) -> Result<(), AuthError> {
        if req.found.any_of(&[&self.hash_param, &self.expires_param]) {
            let hash = req.found.get(&self.hash_param).unwrap_or_default();
            found(Presented { carrier: Carrier::SignedUrl, credential: Cow::Borrowed(hash) });
        }
        Ok(())
    }

    /// One MD5: cheaper than a cache lookup, so never cached.
    fn verify(&self, _: &Presented<'_>, req: &AuthRequest<'_>, ctx: &VerifyContext<'_>) -> Result<Grant, AuthError> {
        let (Some(hash), Some(expires)) = (req.found.get(&self.hash_param), req.found.get(&self.expires_param)) else {
            return Err(AuthError::Malformed);
        };
        let vars = Vars { expires, uri: req.path, remote_addr: req.client_ip, query: req.query };
        let verdict = self.check(hash, &vars, ctx.now);
        cdn::trace_verdict(&mut ctx.tracer(), "secure_link", &verdict);
        verdict.map(|()| Grant::plain(Carrier::SignedUrl))
    }
}

/// What the expression's variables stand for in one request.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// The `expires` value as sent.
    pub expires: &'a str,
    /// The decoded path (`$uri`).
    pub uri: &'a str,
    pub remote_addr: IpAddr,
    /// The raw query (`$arg_NAME`).
    pub query: &'a str,
}

/// `$arg_NAME` as nginx reads it: the raw value of the first `NAME=`
/// parameter, the name compared without case; empty when absent.
pub fn nginx_arg<'q>(query: &'q str, name: &str) -> &'q str {
    for piece in query.split('&') {
        if let Some((n, v)) = piece.split_once('=')
            && n.eq_ignore_ascii_case(name)
        {
            return v;
        }
    }
    ""
}

/// The MD5 of the expression for these variables and this secret.
pub fn digest(template: &[Part], vars: &Vars<'_>, secret: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    for part in template {
        match part {
            Part::Text(t) => md5.update(t.as_bytes()),
            Part::Expires => md5.update(vars.expires.as_bytes()),
            Part::Uri => md5.update(vars.uri.as_bytes()),
            Part::RemoteAddr => md5.update(vars.remote_addr.to_string().as_bytes()),
            Part::Arg(name) => md5.update(nginx_arg(vars.query, name).as_bytes()),
            Part::Secret => md5.update(secret),
        }
    }
    md5.finalize().into()
}

/// nginx's `ngx_atotm`: digits only, at least one, no overflow.
fn parse_expires(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<u64>().ok().filter(|&v| v <= i64::MAX as u64)
}

/// nginx's `ngx_decode_base64url`: characters up to the first `=` must be
/// base64url and are decoded (unused low bits of the last one ignored);
/// anything from the `=` on is not looked at.
pub fn decode_nginx_base64url(text: &[u8]) -> Option<Vec<u8>> {
    fn value(b: u8) -> Option<u8> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        })
    }
    let len = text.iter().position(|&b| b == b'=').unwrap_or(text.len());
    let digits: Vec<u8> = text[..len].iter().map(|&b| value(b)).collect::<Option<_>>()?;
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let d = |i: usize| chunk.get(i).copied().unwrap_or(0);
        out.push(d(0) << 2 | d(1) >> 4);
        if chunk.len() > 2 {
            out.push(d(1) << 4 | d(2) >> 2);
        }
        if chunk.len() > 3 {
            out.push(d(2) << 6 | d(3));
        }
    }
    Some(out)
}

impl SecureLink {
    /// Checks a link's raw `hash` and variables against the route's
    /// secrets, then its expiry.
    pub fn check(&self, hash: &str, vars: &Vars<'_>, now: u64) -> Result<(), AuthError> {
        let expires = parse_expires(vars.expires).ok_or(AuthError::Malformed)?;
        if hash.len() > 24 {
            return Err(AuthError::BadSignature);
        }
        let given = decode_nginx_base64url(hash.as_bytes()).filter(|h| h.len() == 16).ok_or(AuthError::BadSignature)?;
        let matches = self.keys.iter().any(|key| {
            constant_time::verify_slices_are_equal(&digest(&self.template, vars, key.secret.bytes()), &given).is_ok()
        });
        if !matches {
            return Err(AuthError::BadSignature);
        }
        // nginx refuses 0 like a bad hash, and a past time as expired.
        if expires == 0 || expires < now {
            return Err(AuthError::Expired);
        }
        Ok(())
    }

    /// The hash for a link, base64url without padding (nginx's docs).
    pub fn sign(template: &[Part], vars: &Vars<'_>, secret: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest(template, vars, secret))
    }
}

// ---- Its section of `routes[].auth`, its key format and its signer ----

/// `auth.secure_link`: links minted for nginx's `secure_link` module.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecureLinkFile {
    /// `secure_link` keys (the `$secret` of the expression), tried in order.
    pub keys: Vec<String>,
    /// nginx's `secure_link_md5` expression with `$secret` where nginx's
    /// config has the secret, e.g. `"$secure_link_expires$uri$remote_addr $secret"`.
    pub md5: String,
    /// The query parameter with the hash (default `md5`).
    pub hash_param: Option<String>,
    /// The query parameter with the expiry (default `expires`).
    pub expires_param: Option<String>,
}

/// The kind's registration (see `kinds/mod.rs`).
pub struct Section;

/// Listed in `kinds::REGISTRY`.
pub static SECTION: Section = Section;

impl Registered for Section {
    fn section(&self) -> &'static str {
        "secure_link"
    }

    fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<SecureLinkFile>()
    }

    fn key_format(&self) -> Option<KeyFormat> {
        Some(KeyFormat {
            field: "secure_link",
            about: "The secret of an nginx `secure_link_md5` expression (`$secret`).",
            encoding: SecretEncoding::Raw,
            check: |_| Ok(()),
        })
    }

    fn compile(&self, cx: &mut dyn CompileContext, path: &str, section: Value) -> Compiled {
        let Some(raw) = parse_section::<SecureLinkFile>(cx, path, section) else { return Vec::new() };
        let keys = cdn::secrets(cx, path, &raw.keys, "secure_link");
        let template = match parse_template(&raw.md5) {
            Ok(t) => Some(t),
            Err(why) => {
                cx.error(&format!("{path}.md5"), why);
                None
            }
        };
        // Without the secret anyone could mint links; without the expiry a
        // holder could extend theirs.
        for (part, name) in [(Part::Secret, "$secret"), (Part::Expires, "$secure_link_expires")] {
            if template.as_ref().is_some_and(|t| !t.contains(&part)) {
                cx.error(&format!("{path}.md5"), format!("the expression must contain {name}"));
            }
        }
        let hash_param = raw.hash_param.unwrap_or_else(|| "md5".to_owned());
        let expires_param = raw.expires_param.unwrap_or_else(|| "expires".to_owned());
        for (field, value) in [("hash_param", &hash_param), ("expires_param", &expires_param)] {
            if !cdn::valid_param(value) {
                cx.error(&format!("{path}.{field}"), "must be a plain name (A-Z a-z 0-9 - _ .)".to_owned());
            }
        }
        if hash_param == expires_param {
            cx.error(&format!("{path}.expires_param"), "must differ from hash_param".to_owned());
        }
        let Some(template) = template else { return Vec::new() };
        vec![Box::new(SecureLink {
            keys,
            template,
            hash_param: hash_param.into_boxed_str(),
            expires_param: expires_param.into_boxed_str(),
        })]
    }

    fn signer(&self) -> &dyn Signer {
        self
    }
}

impl Signer for Section {
    fn format(&self) -> &'static str {
        "secure_link"
    }

    fn options(&self) -> &'static [SignOption] {
        const OPTIONS: &[SignOption] = &[
            SignOption {
                name: "md5",
                value: Some("EXPR"),
                help: "secure_link: nginx's secure_link_md5 expression, $secret for the key",
                default: None,
            },
            SignOption {
                name: "remote-addr",
                value: Some("ADDRESS"),
                help: "secure_link: the client address for $remote_addr",
                default: None,
            },
            SignOption {
                name: "hash-param",
                value: Some("NAME"),
                help: "secure_link: the hash parameter's name",
                default: Some("md5"),
            },
            SignOption {
                name: "expires-param",
                value: Some("NAME"),
                help: "secure_link: the expiry parameter's name",
                default: Some("expires"),
            },
        ];
        OPTIONS
    }

    fn sign(&self, input: &SignInput<'_>) -> Result<String, String> {
        let md5 = input.option("md5").ok_or("secure_link needs --md5 (the secure_link_md5 expression)")?;
        let remote_addr = match input.option("remote-addr") {
            Some(a) => Some(a.parse::<IpAddr>().map_err(|_| format!("--remote-addr {a:?} is not an address"))?),
            None => None,
        };
        let req = SecureLinkSign {
            target: input.target,
            md5,
            expires: input.exp,
            remote_addr,
            hash_param: input.option("hash-param").unwrap_or("md5"),
            expires_param: input.option("expires-param").unwrap_or("expires"),
        };
        sign_secure_link(&input.key.secret(SecretEncoding::Raw, 1)?, &req)
    }
}

/// What `tollgate sign --format secure_link` needs.
pub struct SecureLinkSign<'a> {
    /// `/path?query` or a full URL.
    pub target: &'a str,
    /// nginx's `secure_link_md5` expression, `$secret` for the secret.
    pub md5: &'a str,
    pub expires: u64,
    pub remote_addr: Option<IpAddr>,
    pub hash_param: &'a str,
    pub expires_param: &'a str,
}

/// An nginx `secure_link` link.
pub fn sign_secure_link(secret: &[u8], req: &SecureLinkSign<'_>) -> Result<String, String> {
    let (_, target) = split_origin(req.target);
    let (raw_path, query) = target.split_once('?').unwrap_or((&target, ""));
    let path = crate::normalize::check_path(raw_path)
        .map_err(|e| format!("the path is not in normal form ({e:?}); tollgate would refuse it"))?;
    let template = parse_template(req.md5)?;
    if template.contains(&Part::RemoteAddr) && req.remote_addr.is_none() {
        return Err("the expression uses $remote_addr: give --remote-addr".to_owned());
    }
    let expires = req.expires.to_string();
    let vars = Vars {
        expires: &expires,
        uri: &path.decoded,
        remote_addr: req.remote_addr.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        query,
    };
    let hash = SecureLink::sign(&template, &vars, secret);
    Ok(append_query(req.target, &[(req.hash_param, hash), (req.expires_param, expires)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::kinds::cdn::Secret;

    const TEMPLATE: &str = "$secure_link_expires$uri$remote_addr $secret";

    fn link() -> SecureLink {
        SecureLink {
            keys: vec![Arc::new(NamedSecret { id: "s".into(), secret: Secret::new(b"secret") })],
            template: parse_template(TEMPLATE).unwrap_or_default(),
            hash_param: "md5".into(),
            expires_param: "expires".into(),
        }
    }

    fn vars(expires: &str) -> Vars<'_> {
        Vars { expires, uri: "/s/link", remote_addr: IpAddr::from([127, 0, 0, 1]), query: "" }
    }

    #[test]
    fn templates_parse() {
        assert_eq!(
            parse_template("${secure_link_expires}$uri$arg_file-x $secret"),
            Ok(vec![Part::Expires, Part::Uri, Part::Arg("file".into()), Part::Text("-x ".into()), Part::Secret])
        );
        assert!(parse_template("$host $secret").is_err());
        assert!(parse_template("$ $secret").is_err());
        assert!(parse_template("${uri").is_err());
    }

    /// The example of nginx's documentation:
    /// `echo -n '2147483647/s/link127.0.0.1 secret' | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =`
    #[test]
    fn nginx_documentation_example() {
        let l = link();
        let v = vars("2147483647");
        assert_eq!(SecureLink::sign(&l.template, &v, b"secret"), "_e4Nc3iduzkWRm01TBBNYw");
        assert_eq!(l.check("_e4Nc3iduzkWRm01TBBNYw", &v, 1_700_000_000), Ok(()));
        assert_eq!(l.check("_e4Nc3iduzkWRm01TBBNYw==", &v, 1_700_000_000), Ok(()), "padding");
        assert_eq!(l.check("_e4Nc3iduzkWRm01TBBNYw=x", &v, 1_700_000_000), Ok(()), "nginx stops at =");
        assert_eq!(l.check("_e4Nc3iduzkWRm01TBBNYx", &v, 1_700_000_000), Ok(()), "unused low bits are ignored");
        assert_eq!(l.check("_e4Nc3iduzkWRm01TBBNYQ", &v, 1_700_000_000), Err(AuthError::BadSignature));
        assert_eq!(l.check("_e4Nc3iduzkWRm01TBBNYw", &v, 2_147_483_648), Err(AuthError::Expired));
        assert_eq!(l.check("_e4Nc3iduzkWRm01TBBNYw", &v, 2_147_483_647), Ok(()), "good in its last second");
        assert_eq!(l.check("_e4Nc3iduzkWRm01TBBNY", &v, 0), Err(AuthError::BadSignature), "21 characters");
        assert_eq!(l.check("_e4Nc3iduzkWRm01TBBNYw+", &v, 0), Err(AuthError::BadSignature));
    }

    #[test]
    fn expires_rules() {
        let l = link();
        for bad in ["", "-1", "+5", "1e9", "99999999999999999999"] {
            assert_eq!(l.check("x", &vars(bad), 0), Err(AuthError::Malformed), "{bad:?}");
        }
        let zero = vars("0");
        let hash = SecureLink::sign(&l.template, &zero, b"secret");
        assert_eq!(l.check(&hash, &zero, 0), Err(AuthError::Expired), "expires=0 is refused");
        let padded = vars("02147483647");
        let hash = SecureLink::sign(&l.template, &padded, b"secret");
        assert_eq!(l.check(&hash, &padded, 0), Ok(()), "leading zeros are signed as sent");
    }

    #[test]
    fn args_read_like_nginx() {
        assert_eq!(nginx_arg("a=1&File=x%20y&file=2", "file"), "x%20y");
        assert_eq!(nginx_arg("file&file=3", "file"), "3");
        assert_eq!(nginx_arg("afile=1", "file"), "");
    }
}
