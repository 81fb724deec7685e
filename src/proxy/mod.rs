//! The request pipeline, top to bottom:
//! normalize → route → verify → strip → forward → respond.
//!
//! Each stage is a plain function; the first refusal ends the request with
//! the answer of `respond.rs` and nothing is sent upstream. The whole
//! request runs against the configuration it started with, even if a reload
//! swaps in another one meanwhile.

pub mod admit;
mod object;
pub mod respond;
pub mod strip;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response, Version};
use hyper::body::Incoming;

use crate::auth::query::{self, CredentialNames, Found};
use crate::auth::{self, AuthError, AuthRequest, Denial, Grant, VerifyCache, VerifyContext};
use crate::body::RequestBody;
use crate::config::Config;
use crate::metrics::{Metrics, Outcome};
use crate::normalize;
use crate::routes::Route;
use respond::Rejection;
use respond::ResponseBody;

/// One configuration generation with the state that lives and dies with it.
pub struct Runtime {
    pub config: Config,
    pub cache: VerifyCache,
}

impl Runtime {
    pub fn new(config: Config) -> Self {
        let cache = VerifyCache::new(config.cache);
        Runtime { config, cache }
    }
}

/// State shared by every connection.
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Arc<Metrics>,
    /// The limits the server started with (the listener's buffers are sized
    /// by them, so a reload does not change them).
    pub limits: crate::config::Limits,
    /// Use counts and revocations: made at start and kept across reloads,
    /// so a reload never hands a link its uses back.
    pub store: Arc<crate::store::Store>,
}

/// Facts about the connection a request came on.
#[derive(Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// Plain TCP: large answers can be spliced into it.
    pub outlet: Option<Arc<crate::splice::Outlet>>,
}

/// A request being handled: counts it in flight, and accounts for it exactly
/// once — when it is answered, or when the client goes away first (hyper
/// then drops the handler mid-way, and `Drop` records it as aborted).
struct InFlight<'a> {
    shared: &'a Shared,
    start: Instant,
    method: Method,
    /// The raw path with path tokens redacted, kept only when the access
    /// log is on.
    path: Option<String>,
    peer: SocketAddr,
    route: Option<Arc<Route>>,
    carrier: Option<auth::Carrier>,
    /// The request's `Origin`, for routes with CORS rules.
    origin: Option<HeaderValue>,
    answered: bool,
}

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared, req: &Request<Incoming>, config: &Config, peer: SocketAddr) -> Self {
        shared.metrics.inflight.inc();
        let redacted = |path| auth::path_token::redact(path, &config.path_token_markers).into_owned();
        InFlight {
            shared,
            start: Instant::now(),
            method: req.method().clone(),
            // Never a credential: the query is not logged, token segments
            // are redacted.
            path: config.log.access_log.then(|| redacted(req.uri().path())),
            peer,
            route: None,
            carrier: None,
            origin: req.headers().get(ORIGIN).cloned(),
            answered: false,
        }
    }

    fn route_metrics(&self) -> &crate::metrics::RouteMetrics {
        self.route.as_ref().map_or(self.shared.metrics.unmatched(), |r| &r.metrics)
    }

    /// Counts and logs the request: outcome, duration, one access-log line.
    fn record(&mut self, status: u16, outcome: Outcome, reason: &str) {
        self.answered = true;
        let metrics = self.route_metrics();
        metrics.outcome(outcome).inc();
        let elapsed = self.start.elapsed();
        metrics.duration().observe(elapsed.as_secs_f64());
        if let Some(path) = &self.path {
            tracing::info!(
                target: "tollgate::access",
                route = self.route.as_ref().map_or(crate::metrics::UNMATCHED, |r| r.name.as_str()),
                method = self.method.as_str(),
                path = path.as_str(),
                status,
                outcome = outcome.label(),
                reason,
                carrier = self.carrier.map_or("", carrier_label),
                client = %self.peer.ip(),
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "Request"
            );
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.answered {
            // 499, as nginx logs a client that closed before the answer.
            self.record(499, Outcome::Aborted, "client_closed");
        }
        self.shared.metrics.inflight.dec();
    }
}

/// Handles one request end to end; never fails, never panics on input.
pub async fn handle(shared: &Shared, req: Request<Incoming>, conn: ConnInfo) -> Response<ResponseBody> {
    let runtime = shared.runtime.load_full();
    let mut flight = InFlight::new(shared, &req, &runtime.config, conn.peer);
    let result = pipeline(&runtime, shared, req, conn, &mut flight).await;
    let (mut response, outcome, reason) = match result {
        Ok((resp, outcome)) => (resp, outcome, ""),
        Err(rejection) => {
            let metrics = flight.route_metrics();
            let outcome = rejection.outcome();
            let reason = match &rejection {
                Rejection::Auth { denial, .. } => {
                    if let Some(counter) = metrics.denied(denial.error.index()) {
                        counter.inc();
                    }
                    denial.error.code()
                }
                other => {
                    if let Some(kind) = other.upstream_kind() {
                        metrics.upstream_error(kind).inc();
                    }
                    other.status_and_code().1
                }
            };
            (rejection.into_response(), outcome, reason)
        }
    };
    // Answers tollgate gives by design (preflights) carry their own headers.
    if let Some(cors) = flight.route.as_ref().and_then(|r| r.cors.as_ref()).filter(|_| outcome != Outcome::Answered) {
        cors.decorate(response.headers_mut(), flight.origin.as_ref());
    }
    flight.record(response.status().as_u16(), outcome, reason);
    response
}

fn carrier_label(c: auth::Carrier) -> &'static str {
    match c {
        auth::Carrier::SignedUrl => "signed_url",
        auth::Carrier::Header => "header",
        auth::Carrier::Query => "query",
        auth::Carrier::Cookie => "cookie",
        auth::Carrier::PathToken => "path_token",
        auth::Carrier::CustomHeader => "custom_header",
    }
}

async fn pipeline(
    rt: &Runtime,
    shared: &Shared,
    req: Request<Incoming>,
    conn: ConnInfo,
    record: &mut InFlight<'_>,
) -> Result<(Response<ResponseBody>, Outcome), Rejection> {
    let (mut parts, body) = req.into_parts();
    let splice_ok = parts.method == Method::GET && matches!(parts.version, Version::HTTP_10 | Version::HTTP_11);

    // limits: exact 414/431 answers (hyper's own buffer limit is looser).
    let limits = &shared.limits;
    if parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len()) > limits.max_uri_bytes {
        return Err(Rejection::UriTooLong);
    }
    let head_bytes: usize = parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if head_bytes > limits.max_header_bytes {
        return Err(Rejection::HeadersTooLarge);
    }

    let (route, forward_pq, grant, reinsert) = {
        let raw_path = parts.uri.path();
        let raw_query = parts.uri.query().unwrap_or("");
        let path = normal_path(&parts)?;
        let route = route_for(&rt.config, &parts, &path)?;
        record.route = Some(route.clone());
        path_allowed(&route, &path)?;
        // A preflight carries no credential by design: answered here, never
        // forwarded, before anything asks for one.
        if let Some(preflight) = route.cors.as_ref().and_then(|c| c.preflight(&parts.method, &parts.headers)) {
            return Ok((preflight.map(|()| ResponseBody::empty()), Outcome::Answered));
        }
        if !route.allows(&parts.method) {
            let allow = HeaderValue::from_str(&route.allow_header()).unwrap_or(HeaderValue::from_static("GET"));
            return Err(Rejection::MethodNotAllowed(allow));
        }

        // verify
        let no_names = CredentialNames::default();
        let names = route.auth.as_ref().map_or(&no_names, auth::RouteAuth::credential_names);
        let found = query::scan(raw_query, names).map_err(|_| deny(&route, AuthError::Malformed))?;
        let grant = match &route.auth {
            None => None,
            Some(policy) => {
                let request = AuthRequest {
                    method: parts.method.as_str(),
                    path: &path.decoded,
                    raw_path,
                    query: raw_query,
                    found: &found,
                    headers: &parts.headers,
                    route_prefix: &route.prefix,
                    route_id: route.id,
                    client_ip: auth::client_ip(conn.peer.ip(), &parts.headers, rt.config.trust_forwarded_headers),
                };
                let verifier = VerifyContext {
                    cache: &rt.cache,
                    counters: &shared.metrics.cache,
                    now: auth::unix_now(),
                    trace: None,
                };
                let mut verdict = auth::authorize(policy, &request, &verifier);
                if let Err(Denial { error: AuthError::UnknownKey, carrier: Some(_) }) = verdict
                    && Box::pin(auth::jwks::refetch_for_unknown_kid(policy.key_sources())).await
                {
                    // The identity provider may have rotated: one more try
                    // against the keys just fetched.
                    verdict = auth::authorize(policy, &request, &verifier);
                }
                let grant = verdict.map_err(|denial| Rejection::Auth { denial, bearer: policy.accepts_bearer() })?;
                record.carrier = Some(grant.carrier);
                Some(grant)
            }
        };
        // exchange: a navigation that carries a URL credential is sent to the
        // clean URL with a cookie granting the same (SPEC §10).
        if let Some(grant) = &grant
            && let Some(exchange) = route.auth.as_ref().and_then(auth::RouteAuth::exchange)
            && grant.carrier.in_url()
            && parts.method == Method::GET
            && is_navigation(&parts.headers)
            && let (Some(scope), Some(exp), Some(key)) = (&grant.scope, grant.facts.expires_at, &grant.key)
            // A credential inside its leeway is served as it is: a cookie
            // would already have expired.
            && let Some(max_age) = exp.checked_sub(auth::unix_now()).filter(|left| *left > 0)
            && let Some(scope) = exchange.clip(scope)
        {
            let path = match &grant.path_span {
                Some(span) => Cow::Owned(format!("{}{}", &raw_path[..span.start], &raw_path[span.end..])),
                None => Cow::Borrowed(raw_path),
            };
            let location = forwarded_target(&path, raw_query, &found)?;
            let cookie = exchange.set_cookie(&scope, key, exp, max_age);
            return Ok((respond::see_other(location.as_str(), &cookie), Outcome::Answered));
        }
        // A credential in the path leaves it here: the upstream sees the
        // path without it, and answers get it put back into `Location`.
        let (pq, reinsert) = match grant.as_ref().and_then(|g| g.path_span.clone()) {
            Some(span) => {
                let stripped = format!("{}{}", &raw_path[..span.start], &raw_path[span.end..]);
                let pq = match &route.upstream.s3 {
                    None => forwarded_target(&stripped, raw_query, &found)?,
                    Some(s3) => {
                        let decoded = normalize::check_path(&stripped).map_err(|_| Rejection::NotNormal)?;
                        object::target(s3, &route.prefix, &decoded.decoded, "", grant.as_ref())?
                    }
                };
                let reinsert = strip::Reinsert {
                    raw_prefix: raw_path[..=span.start].to_owned(),
                    segment: raw_path[span.start + 1..span.end].to_owned(),
                };
                (pq, Some(reinsert))
            }
            None => {
                let pq = match &route.upstream.s3 {
                    None => forwarded_target(raw_path, raw_query, &found)?,
                    Some(s3) => object::target(s3, &route.prefix, &path.decoded, raw_query, grant.as_ref())?,
                };
                (pq, None)
            }
        };
        (route, pq, grant, reinsert)
    };
    check_body(&route, &parts)?;
    if route.upstream.s3.is_some() && parts.method == Method::PUT && !parts.headers.contains_key(CONTENT_LENGTH) {
        return Err(Rejection::LengthRequired);
    }

    // limit: use counts and revocation (SPEC §11). After verification, so
    // a cached verdict never skips it; after every other refusal, so a
    // refused request never takes a use.
    let use_guard = match (&route.state, &grant) {
        (Some(policy), Some(grant)) => {
            // Boxed, like the other stages only some routes reach: the store
            // round trip's state would otherwise enlarge every request's
            // future.
            Box::pin(admit::admit(policy, &shared.store, &parts.method, grant)).await.map_err(|error| {
                Rejection::Auth {
                    denial: Denial { error, carrier: Some(grant.carrier) },
                    bearer: route.auth.as_ref().is_some_and(auth::RouteAuth::accepts_bearer),
                }
            })?
        }
        _ => None,
    };

    // strip, forward: in one block, so that however it ends the use is
    // settled before the answer leaves (a client retrying at once after a
    // failure finds its use given back).
    let answer = async {
        // strip
        let upstream = &route.upstream;
        let forward = strip::Forward {
            scheme: &upstream.settings.scheme,
            authority: &upstream.settings.authority,
            host: (!upstream.settings.preserve_host).then_some(&upstream.host),
            path_and_query: forward_pq,
            grant: grant.as_ref(),
            cookies: &rt.config.credential_cookies,
            credential_headers: &rt.config.credential_headers,
            keep_authorization: route.forward_authorization,
            claim_headers: &rt.config.claim_headers,
            peer: conn.peer,
            tls: conn.tls,
            trust_forwarded: rt.config.trust_forwarded_headers,
        };
        strip::upstream_head(&mut parts, forward).map_err(|_| Rejection::NotNormal)?;
        // The names the upstream knows itself by, for its redirects.
        let sent_host = parts.headers.get(HOST).cloned();
        if let Some(s3) = &upstream.s3 {
            object::sign(s3, &route, &mut parts)?;
        }
        let body = if has_body(&parts.method, &parts.headers) {
            RequestBody::new(body, route.max_body)
        } else {
            RequestBody::empty()
        };

        // forward
        let sent = upstream.send(Request::from_parts(parts, body), &route.metrics).await;
        let mut resp = sent.and_then(crate::upstream::check_framing).map_err(Rejection::Upstream)?;
        if let Some(s3) = &upstream.s3 {
            resp = Box::pin(object::response(s3, &route, resp)).await?;
        }
        Ok::<_, Rejection>((resp, sent_host))
    }
    .await;
    if let Some(guard) = use_guard {
        let status = answer.as_ref().map_or_else(|r| r.status_and_code().0, |(resp, _)| resp.status());
        Box::pin(guard.settle(status)).await;
    }
    let (resp, sent_host) = answer?;

    // respond
    let upstream_authority = route.upstream.settings.authority.as_str();
    let own = [upstream_authority, sent_host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or(upstream_authority)];
    let carrier = grant.as_ref().map(|g: &Grant| g.carrier);
    let resp = strip::client_response(resp, carrier, reinsert.as_ref(), &own);
    let resp = match conn.outlet.as_ref() {
        Some(outlet) if splice_ok => respond::offer_splice(resp, outlet, &shared.metrics.spliced_bytes),
        _ => resp,
    };
    Ok((resp, Outcome::Forwarded))
}

fn deny(route: &Route, error: AuthError) -> Rejection {
    Rejection::Auth {
        denial: Denial { error, carrier: None },
        bearer: route.auth.as_ref().is_some_and(auth::RouteAuth::accepts_bearer),
    }
}

/// The raw path and the query without credentials.
pub fn forwarded_target(raw_path: &str, raw_query: &str, found: &Found<'_>) -> Result<PathAndQuery, Rejection> {
    let pq = match query::strip(raw_query, found) {
        Some(q) => PathAndQuery::try_from(format!("{raw_path}?{q}")),
        None => PathAndQuery::try_from(raw_path),
    };
    pq.map_err(|_| Rejection::NotNormal)
}

/// Stage 1, normalize: origin form only over HTTP/1 (an absolute-form host
/// is never used for anything), and a path in normal form (SPEC §5).
pub fn normal_path(parts: &http::request::Parts) -> Result<normalize::NormalPath<'_>, Rejection> {
    if parts.version != Version::HTTP_2 && parts.uri.scheme().is_some() {
        return Err(Rejection::NotNormal);
    }
    normalize::check_path(parts.uri.path()).map_err(|_| Rejection::NotNormal)
}

/// Stage 2, route: the longest matching prefix for the request's host.
pub fn route_for(
    config: &Config,
    parts: &http::request::Parts,
    path: &normalize::NormalPath<'_>,
) -> Result<Arc<Route>, Rejection> {
    let host = request_host(parts);
    // Shapes only some routes accept are malformed where no route matches.
    let unmatched =
        if path.empty_segment || path.encoded_slash_at.is_some() { Rejection::NotNormal } else { Rejection::NoRoute };
    config.routes.lookup(host.as_deref(), &path.decoded).ok_or(unmatched).cloned()
}

/// The path shapes only some routes opt into (object keys with `//` or
/// `%2F` after the prefix).
pub fn path_allowed(route: &Route, path: &normalize::NormalPath<'_>) -> Result<(), Rejection> {
    if path.empty_segment && !route.allow_empty_segments {
        return Err(Rejection::NotNormal);
    }
    if let Some(at) = path.encoded_slash_at
        && (!route.allow_encoded_slashes || at < route.prefix.len())
    {
        return Err(Rejection::NotNormal);
    }
    Ok(())
}

/// A top-level navigation (a link followed, a URL typed), as opposed to a
/// sub-resource (`<img>`, `<video>`, `fetch`), by the Fetch metadata
/// headers every current browser sends.
fn is_navigation(headers: &http::HeaderMap) -> bool {
    let is = |name: &str, want: &[u8]| headers.get(name).is_some_and(|v| v.as_bytes() == want);
    is("sec-fetch-mode", b"navigate") && is("sec-fetch-dest", b"document")
}

/// The host a request names, lower-case, without port.
fn request_host(parts: &http::request::Parts) -> Option<String> {
    let raw = match parts.headers.get(HOST) {
        Some(h) => h.to_str().ok()?,
        None => parts.uri.authority()?.as_str(),
    };
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => raw,
    };
    Some(host.to_ascii_lowercase())
}

/// Whether a request may carry a body worth streaming.
fn has_body(method: &Method, headers: &http::HeaderMap) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
        || headers.contains_key(CONTENT_LENGTH)
        || headers.contains_key(http::header::TRANSFER_ENCODING)
}

/// Refuses bodies the route would not accept, before anything is sent.
fn check_body(route: &Route, parts: &http::request::Parts) -> Result<(), Rejection> {
    if route.max_body > 0
        && let Some(len) = parts.headers.get(CONTENT_LENGTH)
        && len.to_str().ok().and_then(|v| v.parse::<u64>().ok()).is_some_and(|n| n > route.max_body)
    {
        return Err(Rejection::TooLarge);
    }
    if let Some(prefix) = &route.require_content_type
        && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE)
    {
        let ok = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase()));
        if !ok {
            return Err(Rejection::UnsupportedMediaType);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port() {
        let parts =
            |host: &str| Request::builder().uri("/x").header(HOST, host).body(()).unwrap_or_default().into_parts().0;
        assert_eq!(request_host(&parts("Files.Example:8080")).as_deref(), Some("files.example"));
        assert_eq!(request_host(&parts("files.example")).as_deref(), Some("files.example"));
        assert_eq!(request_host(&parts("[::1]:80")).as_deref(), Some("[::1]"));
    }
}
