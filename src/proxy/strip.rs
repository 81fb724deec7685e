//! Stage 4: strip every credential carrier and hop-by-hop header, set the
//! forwarding headers, and build the upstream request (SPEC §1.5).
//!
//! Order matters: headers named in `Connection` and client copies of the
//! headers tollgate owns (`X-Forwarded-*`, forwarded claims) are removed
//! first, then tollgate's own values are set, so a client can neither
//! unset nor pre-set them.

use std::net::SocketAddr;

use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONNECTION, FORWARDED, HOST, LOCATION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
    REFERRER_POLICY, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Response, Uri, Version};

use super::respond::ResponseBody;
use crate::auth::{Carrier, Grant};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those the
/// `Connection` header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    const HOP_BY_HOP: [&HeaderName; 9] = [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &PROXY_AUTHENTICATE,
        &PROXY_AUTHORIZATION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
    ];
    // Most messages carry none: one pass over the names instead of nine
    // hashed removals on every request and response.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(&k)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Headers that frameworks behind a proxy read as the real URL
/// (`X-Original-URL`, `X-Rewrite-URL`, ...) or the real method
/// (`X-HTTP-Method-Override`, ...). tollgate verified one method on one
/// path: a client must not re-point or re-verb the request behind it, so
/// these never leave tollgate, on any route, whatever `Connection` says.
static REPOINTING: [HeaderName; 8] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Removes the [`REPOINTING`] headers.
pub fn remove_repointing(headers: &mut HeaderMap) {
    // Almost no request has one: a pass over the names, removals only then.
    if headers.keys().any(|k| REPOINTING.contains(k)) {
        for name in &REPOINTING {
            headers.remove(name);
        }
    }
}

/// Everything the upstream request is built from.
pub struct Forward<'a> {
    /// `http` or `https` and the upstream's authority.
    pub scheme: &'a http::uri::Scheme,
    pub authority: &'a http::uri::Authority,
    /// `Host` to send, unless the client's is preserved.
    pub host: Option<&'a HeaderValue>,
    /// Raw path plus the stripped query.
    pub path_and_query: PathAndQuery,
    pub grant: Option<&'a Grant>,
    /// Every route's credential cookies, removed whatever carried the
    /// credential and whatever the route.
    pub cookies: &'a [crate::auth::CookieName],
    /// Every route's credential headers (other than `Authorization`),
    /// removed likewise.
    pub credential_headers: &'a [HeaderName],
    /// Keep the client's `Authorization` header (the route's
    /// `forward_authorization`), unless it carried the verified credential.
    pub keep_authorization: bool,
    /// Headers tollgate sets from claims on this route.
    pub claim_headers: &'a [HeaderName],
    pub peer: SocketAddr,
    pub tls: bool,
    pub trust_forwarded: bool,
}

/// Turns the client's request head into the upstream's, in place.
pub fn upstream_head(parts: &mut Parts, f: Forward<'_>) -> Result<(), http::Error> {
    let client_host = parts
        .headers
        .get(HOST)
        .cloned()
        .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    remove_repointing(headers);

    if !f.keep_authorization || f.grant.is_some_and(|g| g.carrier == Carrier::Header) {
        headers.remove(AUTHORIZATION);
    }
    if !f.cookies.is_empty() {
        crate::auth::cookie::remove_matching(headers, |name| f.cookies.iter().any(|c| c.matches(name)));
    }
    for name in f.credential_headers {
        headers.remove(name);
    }
    for name in f.claim_headers {
        headers.remove(name);
    }
    if let Some(grant) = f.grant {
        for (name, value) in grant.headers.iter() {
            headers.insert(name.clone(), value.clone());
        }
    }

    let peer_ip = HeaderValue::from_str(&f.peer.ip().to_string())?;
    let proto = HeaderValue::from_static(if f.tls { "https" } else { "http" });
    if f.trust_forwarded {
        let chain = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prior) => HeaderValue::from_str(&format!("{prior}, {}", f.peer.ip()))?,
            None => peer_ip,
        };
        headers.insert(X_FORWARDED_FOR.clone(), chain);
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO.clone(), proto);
        }
        if !headers.contains_key(&X_FORWARDED_HOST)
            && let Some(h) = &client_host
        {
            headers.insert(X_FORWARDED_HOST.clone(), h.clone());
        }
    } else {
        headers.remove(FORWARDED);
        headers.insert(X_FORWARDED_FOR.clone(), peer_ip);
        headers.insert(X_FORWARDED_PROTO.clone(), proto);
        match &client_host {
            Some(h) => headers.insert(X_FORWARDED_HOST.clone(), h.clone()),
            None => headers.remove(&X_FORWARDED_HOST),
        };
    }

    match (f.host, client_host) {
        (Some(upstream_host), _) => {
            headers.insert(HOST, upstream_host.clone());
        }
        (None, Some(client)) => {
            headers.insert(HOST, client);
        }
        (None, None) => {}
    }

    parts.uri = Uri::builder()
        .scheme(f.scheme.clone())
        .authority(f.authority.clone())
        .path_and_query(f.path_and_query)
        .build()?;
    parts.version = Version::HTTP_11;
    Ok(())
}

/// A path token to put back into redirects under the prefix it grants.
#[derive(Debug, Clone)]
pub struct Reinsert {
    /// The granted prefix as it arrived (ends with `/`).
    pub raw_prefix: String,
    /// The token segment, without slashes.
    pub segment: String,
}

impl Reinsert {
    /// An origin-relative `location` with the token segment after the
    /// granted prefix, when its path lies under it (nginx's `/dir` →
    /// `/dir/` redirect); else `None`. Absolute locations never get one.
    fn location(&self, location: &str) -> Option<String> {
        if !location.starts_with('/') || location.starts_with("//") {
            return None;
        }
        let rest = location.strip_prefix(self.raw_prefix.as_str())?;
        Some(format!("{}{}/{rest}", self.raw_prefix, self.segment))
    }
}

/// An absolute `location` that points at the upstream itself (its address,
/// or the `Host` tollgate sent it), made origin-relative: the client
/// follows it on the origin it asked, never on the upstream's internal
/// address. `None` for any other location.
fn own_location<'l>(location: &'l str, own: &[&str]) -> Option<&'l str> {
    let rest = location.strip_prefix("http://").or_else(|| location.strip_prefix("https://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if !own.iter().any(|o| o.eq_ignore_ascii_case(authority)) {
        return None;
    }
    Some(match &rest[end..] {
        "" => "/",
        path if path.starts_with('/') => path,
        // `http://host?q`: the root with a query.
        _ => return None,
    })
}

/// The upstream's answer, cleaned for the client. `own` are the names the
/// upstream knows itself by (its authority, the `Host` it was sent).
pub fn client_response(
    resp: Response<crate::upstream::pool::UpstreamBody>,
    carrier: Option<Carrier>,
    reinsert: Option<&Reinsert>,
    own: &[&str],
) -> Response<ResponseBody> {
    let (mut parts, body) = resp.into_parts();
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    if carrier.is_some_and(Carrier::in_url) && !headers.contains_key(REFERRER_POLICY) {
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    if reinsert.is_some() && !headers.contains_key(CACHE_CONTROL) {
        // A token in the path makes every URL under it a credential: keep
        // shared caches from storing answers keyed by it.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    }
    if let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
        let local = own_location(location, own);
        let moved = match (reinsert, local.unwrap_or(location)) {
            (Some(r), path) => r.location(path),
            (None, _) => None,
        };
        let value = moved.or_else(|| local.map(str::to_owned));
        if let Some(value) = value.and_then(|l| HeaderValue::try_from(l).ok()) {
            headers.insert(LOCATION, value);
        }
    }
    Response::from_parts(parts, ResponseBody::Upstream(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, X-Secret, x-forwarded-for"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(PROXY_AUTHORIZATION, HeaderValue::from_static("Basic x"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn redirects_under_the_prefix_keep_the_token() {
        let r = Reinsert { raw_prefix: "/media/u1/".into(), segment: "tg~1~s".into() };
        assert_eq!(r.location("/media/u1/video/").as_deref(), Some("/media/u1/tg~1~s/video/"));
        assert_eq!(r.location("http://h:80/media/u1/video/"), None, "absolute: another origin");
        assert_eq!(r.location("/media/u2/video/"), None);
        assert_eq!(r.location("//evil/media/u1/x"), None);
        assert_eq!(r.location("video/"), None);
    }

    #[test]
    fn the_upstreams_own_redirects_become_origin_relative() {
        let own = ["127.0.0.1:8081", "files.example"];
        assert_eq!(own_location("http://127.0.0.1:8081/media/u1/sub/", &own), Some("/media/u1/sub/"));
        assert_eq!(own_location("https://FILES.example/a?b=1", &own), Some("/a?b=1"));
        assert_eq!(own_location("http://127.0.0.1:8081", &own), Some("/"));
        assert_eq!(own_location("http://127.0.0.1:80812/x", &own), None);
        assert_eq!(own_location("http://other.example/media/u1/x", &own), None);
        assert_eq!(own_location("/media/u1/x", &own), None, "already relative");
    }

    #[test]
    fn url_and_method_overrides_go() {
        let mut h = HeaderMap::new();
        for name in &REPOINTING {
            h.insert(name.clone(), HeaderValue::from_static("/admin/delete"));
        }
        h.insert("x-keep", HeaderValue::from_static("yes"));
        remove_repointing(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
    }

    #[test]
    fn head_is_rewritten_for_the_upstream() {
        let req = http::Request::builder()
            .uri("/media/x?exp=1&sig=2&w=3")
            .header(HOST, "files.example")
            .header(AUTHORIZATION, "Bearer t")
            .header("x-auth-subject", "forged")
            .header(X_FORWARDED_FOR.clone(), "6.6.6.6")
            .header(CONNECTION, "x-auth-subject")
            .body(())
            .unwrap_or_default();
        let (mut parts, ()) = req.into_parts();
        let grant = Grant {
            headers: Arc::from(vec![(HeaderName::from_static("x-auth-subject"), HeaderValue::from_static("alice"))]),
            ..Grant::plain(Carrier::Header)
        };
        let host = HeaderValue::from_static("127.0.0.1:8081");
        let f = Forward {
            scheme: &http::uri::Scheme::HTTP,
            authority: &"127.0.0.1:8081".parse().unwrap_or_else(|_| panic!()),
            host: Some(&host),
            path_and_query: PathAndQuery::from_static("/media/x?w=3"),
            grant: Some(&grant),
            cookies: &[],
            credential_headers: &[],
            keep_authorization: false,
            claim_headers: &[HeaderName::from_static("x-auth-subject")],
            peer: "10.1.2.3:5555".parse().unwrap_or_else(|_| panic!()),
            tls: false,
            trust_forwarded: false,
        };
        upstream_head(&mut parts, f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parts.uri, "http://127.0.0.1:8081/media/x?w=3");
        assert!(!parts.headers.contains_key(AUTHORIZATION));
        assert_eq!(parts.headers["x-auth-subject"], "alice");
        assert_eq!(parts.headers[&X_FORWARDED_FOR], "10.1.2.3");
        assert_eq!(parts.headers[&X_FORWARDED_HOST], "files.example");
        assert_eq!(parts.headers[HOST], "127.0.0.1:8081");
    }
}
