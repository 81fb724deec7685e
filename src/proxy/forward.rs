//! Phase 6, forward: strip every credential carrier and hop-by-hop header,
//! set the forwarding headers, build the upstream request (docs/reference.md: Canonical query) and
//! send it, streaming the body (`Upstream::send`: pooled connection,
//! retry, and the object store's signing and answers).
//!
//! Order matters: headers named in `Connection` and client copies of the
//! headers tollgate owns (`X-Forwarded-*`, forwarded claims) are removed
//! first, then tollgate's own values are set, so a client can neither
//! unset nor pre-set them.

use std::net::SocketAddr;

use http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_LENGTH, FORWARDED, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::answers::Rejection;
use super::state::ConnInfo;
use crate::auth::{Carrier, Grant};
use crate::body::RequestBody;
use crate::config::Config;
use crate::routes::Route;
use crate::upstream::pool::UpstreamBody;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The upstream's answer, and the `Host` it was sent (a name it knows
/// itself by, for its redirects).
pub struct Answer {
    pub response: Response<UpstreamBody>,
    pub sent_host: Option<HeaderValue>,
}

/// Sends the request upstream for `path_and_query` and waits for the head.
pub async fn forward(
    config: &Config,
    route: &Route,
    mut parts: Parts,
    body: Incoming,
    grant: Option<&Grant>,
    path_and_query: PathAndQuery,
    conn: &ConnInfo,
) -> Result<Answer, Rejection> {
    let upstream = &route.upstream;
    let forward = Forward {
        scheme: &upstream.settings.scheme,
        authority: &upstream.settings.authority,
        host: (!upstream.settings.preserve_host).then_some(&upstream.host),
        path_and_query,
        grant,
        cookies: &config.credential_cookies,
        credential_headers: &config.credential_headers,
        // A request served unverified by a report-only route never forwards
        // it: it may be the very credential that was refused.
        keep_authorization: route.forward_authorization && (grant.is_some() || !route.report_only),
        claim_headers: &config.claim_headers,
        peer: conn.peer,
        tls: conn.tls,
        trust_forwarded: config.trust_forwarded_headers,
    };
    upstream_head(&mut parts, forward).map_err(|_| Rejection::NotNormal)?;
    let sent_host = parts.headers.get(HOST).cloned();
    let body = if has_body(&parts.method, &parts.headers) {
        RequestBody::new(body, route.max_body)
    } else {
        RequestBody::empty()
    };
    let response = upstream.send(Request::from_parts(parts, body), &route.name, &route.metrics).await?;
    Ok(Answer { response, sent_host })
}

/// Whether a request may carry a body worth streaming.
fn has_body(method: &Method, headers: &HeaderMap) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
        || headers.contains_key(CONTENT_LENGTH)
        || headers.contains_key(TRANSFER_ENCODING)
}

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
