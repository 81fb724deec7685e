//! Pieces the CDN-compatible kinds share (CloudFront, EdgeAuth, Cloud CDN,
//! nginx `secure_link`): the public origins a CDN's URLs name, wildcard
//! patterns, CIDR ranges, and secrets kept out of `Debug`.
//!
//! A CDN signs the URL its viewers see (`https://media.example.com/a.jpg`);
//! behind it, or behind a Kubernetes Service, tollgate receives the request
//! under another scheme and host (`http://tollgate.media.svc:8080`). The
//! scheme and host a signature covers are therefore never taken from the
//! request (a `Host` header is the client's to choose, and would let a link
//! signed for one distribution open another that shares its key); they are
//! the route's configured `origins`, and only the path and query come from
//! the request.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::error::AuthError;
pub use crate::auth::keys::{NamedSecret, Secret};
use crate::auth::kind::AuthRequest;
use crate::auth::kind::Tracer;
use crate::auth::query;
use crate::auth::section::{CarrierFile, CompileContext, CompiledKey};

/// The public origins (`https://host[:port]`) a route's CDN links name.
#[derive(Debug, Clone, Default)]
pub struct Origins(Vec<Box<str>>);

impl Origins {
    /// Checks and keeps `scheme://host[:port]` origins (lower case, no path).
    pub fn new(list: &[String]) -> Result<Self, (usize, String)> {
        let mut out = Vec::with_capacity(list.len());
        for (i, origin) in list.iter().enumerate() {
            if !valid_origin(origin) {
                return Err((
                    i,
                    format!("{origin:?} is not an origin: write http(s)://host[:port] in lower case, without a path"),
                ));
            }
            out.push(origin.as_str().into());
        }
        if out.is_empty() {
            return Err((0, "list at least one origin (the scheme and host your links are signed for)".to_owned()));
        }
        Ok(Origins(out))
    }

    /// The origins, in the configured order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|o| &**o)
    }
}

/// `http(s)://host[:port]`, lower case, nothing after the authority.
pub fn valid_origin(origin: &str) -> bool {
    let Some(authority) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else {
        return false;
    };
    !authority.is_empty()
        && authority.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:[]".contains(&b))
}

/// The request's path and query as a CDN signed them: the raw path, then
/// `?` and the query without any credential parameter of the route (in
/// order, byte for byte), or no `?` when nothing is left.
pub fn path_and_query<'r>(req: &AuthRequest<'r>) -> Cow<'r, str> {
    match query::strip(req.query, req.found) {
        None => Cow::Borrowed(req.raw_path),
        Some(q) => Cow::Owned(format!("{}?{q}", req.raw_path)),
    }
}

/// Matches `text` against `pattern`, where `*` matches any run of bytes
/// (`/` included) and, when `question` is set, `?` matches one byte.
/// Linear backtracking on the last `*`: no pattern costs more than
/// `pattern.len() * text.len()` steps.
pub fn wildcard_match(pattern: &[u8], text: &[u8], question: bool) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == text[t] || (question && c == b'?') => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// An address range: `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `addr[/bits]`; the address alone is one host.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) if !b.is_empty() && b.len() <= 3 && b.bytes().all(|c| c.is_ascii_digit()) => b.parse().ok()?,
            Some(_) => return None,
        };
        (bits <= max).then_some(Cidr { addr, bits })
    }

    /// Whether `ip` lies in the range (an IPv4 range never holds an IPv6
    /// address, except IPv4-mapped ones, which are compared as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// A plain decimal of at most 11 digits without a leading zero (an epoch
/// time as every signer writes it).
pub fn parse_epoch(raw: &str) -> Result<u64, AuthError> {
    crate::auth::kinds::hmac::parse_exp(raw).ok_or(AuthError::Malformed)
}

/// A query value, percent-decoded, as UTF-8.
pub fn decoded(raw: &str) -> Result<Cow<'_, str>, AuthError> {
    match query::decode_component(raw).map_err(|_| AuthError::Malformed)? {
        Cow::Borrowed(b) => Ok(Cow::Borrowed(std::str::from_utf8(b).map_err(|_| AuthError::Malformed)?)),
        Cow::Owned(v) => Ok(Cow::Owned(String::from_utf8(v).map_err(|_| AuthError::Malformed)?)),
    }
}

/// Reports a verdict of a format checked as a whole (`tollgate explain`):
/// each refusal names the check that failed, in the format's terms.
pub fn trace_verdict(t: &mut dyn Tracer, format: &str, verdict: &Result<(), AuthError>) {
    match verdict {
        Ok(()) => t.step(
            "signature",
            true,
            format_args!("a {format} signature of the route's keys, not expired, granting this path"),
        ),
        Err(e) => {
            let (check, why) = match e {
                AuthError::Malformed => ("token", "its fields are not the format's"),
                AuthError::UnknownKey => ("key", "it names a key the route does not have"),
                AuthError::BadSignature => ("signature", "no key of the route gives this signature for this URL"),
                AuthError::Expired => ("expiry", "it has expired"),
                AuthError::NotYetValid => ("expiry", "it is not valid yet"),
                AuthError::WrongResource => ("resource", "it does not grant this path"),
                _ => ("claims", "a condition it carries does not hold (client address, policy)"),
            };
            t.step(check, false, format_args!("{format}: {why}"));
        }
    }
}

// ---- What the CDN formats' sections share ----

/// The secrets of one format (`keys.<name>.<format>`) a section names.
pub fn secrets(cx: &mut dyn CompileContext, path: &str, names: &[String], format: &str) -> Vec<Arc<NamedSecret>> {
    if names.is_empty() {
        cx.error(&format!("{path}.keys"), format!("list at least one {format} key"));
    }
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let kpath = format!("{path}.keys[{i}]");
        match cx.key(&kpath, name) {
            Some(CompiledKey::Secret(f, secret)) if f == format => out.push(secret),
            Some(_) => {
                let article = if format.starts_with('e') { "an" } else { "a" };
                cx.error(&kpath, format!("key {name:?} is not {article} {format} key"));
            }
            None => {}
        }
    }
    out
}

/// `from:` for formats carried in the query or a cookie; default both.
pub fn query_or_cookie(cx: &mut dyn CompileContext, path: &str, raw: Option<Vec<CarrierFile>>) -> (bool, bool) {
    let Some(list) = raw else {
        return (true, true);
    };
    let (mut query, mut cookie) = (false, false);
    for (i, c) in list.iter().enumerate() {
        match c {
            CarrierFile::Query => query = true,
            CarrierFile::Cookie => cookie = true,
            CarrierFile::Header => {
                cx.error(&format!("{path}.from[{i}]"), "this format is carried in the query or a cookie".to_owned())
            }
        }
    }
    if !query && !cookie {
        cx.error(&format!("{path}.from"), "list query and/or cookie".to_owned());
    }
    (query, cookie)
}

/// A section's public origins, errors at `<path>.origins[i]`.
pub fn origins(cx: &mut dyn CompileContext, path: &str, raw: &[String]) -> Option<Origins> {
    match Origins::new(raw) {
        Ok(o) => Some(o),
        Err((i, why)) => {
            let at = if raw.is_empty() { format!("{path}.origins") } else { format!("{path}.origins[{i}]") };
            cx.error(&at, why);
            None
        }
    }
}

/// Query parameter names a route may configure: nothing to encode.
pub fn valid_param(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let m = |p: &str, t: &str| wildcard_match(p.as_bytes(), t.as_bytes(), true);
        assert!(m("https://a.example/v/*", "https://a.example/v/x/y.mp4?q=1"));
        assert!(m("https://a.example/v/*", "https://a.example/v/"));
        assert!(!m("https://a.example/v/*", "https://a.example/w/x"));
        assert!(m("https://a.example/v/?.ts", "https://a.example/v/1.ts"));
        assert!(!m("https://a.example/v/?.ts", "https://a.example/v/12.ts"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("*.mp4", "/x.mp4.mp4"));
        assert!(!m("exact", "exactly"));
        assert!(!wildcard_match(b"a?c", b"abc", false), "? is literal where the format has no ?");
        assert!(wildcard_match(b"a?c", b"a?c", false));
    }

    #[test]
    fn cidr_ranges() {
        let c = |s: &str| Cidr::parse(s).unwrap_or_else(|| panic!("{s}"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        assert!(c("192.0.2.0/24").contains(ip("192.0.2.77")));
        assert!(!c("192.0.2.0/24").contains(ip("192.0.3.1")));
        assert!(c("192.0.2.9").contains(ip("192.0.2.9")));
        assert!(!c("192.0.2.9/32").contains(ip("192.0.2.8")));
        assert!(c("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(c("10.0.0.0/9").contains(ip("10.127.0.1")));
        assert!(!c("10.0.0.0/9").contains(ip("10.128.0.1")));
        assert!(c("192.0.2.0/24").contains(ip("::ffff:192.0.2.5")), "IPv4-mapped addresses are IPv4");
        assert!(c("2001:db8::/32").contains(ip("2001:db8:1::1")));
        assert!(!c("2001:db8::/32").contains(ip("192.0.2.1")));
        for bad in ["192.0.2.0/33", "192.0.2.0/", "x/8", "192.0.2.0/+8", "::/129"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn origins_are_plain() {
        assert!(valid_origin("https://d111111abcdef8.cloudfront.net"));
        assert!(valid_origin("http://127.0.0.1:8080"));
        for bad in ["https://a.example/", "https://A.example", "ftp://a", "https://", "a.example"] {
            assert!(!valid_origin(bad), "{bad}");
        }
    }
}
