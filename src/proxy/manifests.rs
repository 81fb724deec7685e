//! Phase 6b, manifests (routes with `manifests:`): an HLS playlist or DASH
//! MPD answered upstream is read (bounded) and every URI in it that lies
//! inside the request's grant is made to carry the request's credential:
//! the path token inserted after the granted prefix, or the signed query
//! appended. A key URI (`EXT-X-KEY`) on a route with an HMAC key gets a
//! fresh one-path link of its own, short-lived, never the content grant.
//! Nothing outside the grant, on another host or of another scheme is
//! touched; the other bytes are copied unchanged (`crate::manifest`).

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HOST,
    IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};

use super::answers::{ManifestRefusal, Rejection};
use super::forward::Answer;
use super::target::Reinsert;
use crate::auth::kinds::signed_url::{sign_target, with_id};
use crate::auth::{Grant, Scope};
use crate::manifest::{self, Format, ManifestSettings, Use};
use crate::metrics::UpstreamErrorKind;
use crate::normalize::check_path;
use crate::routes::RouteTable;
use crate::upstream::UpstreamError;

/// What a manifest's URIs are made to carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carry {
    /// The token segment, after the granted prefix (as it arrived).
    PathToken { raw_prefix: String, segment: String },
    /// The request's whole signed query, appended to URIs without one.
    Query(String),
    /// A grant of one file: only key URIs are rewritten.
    Nothing,
}

/// What the rewriter needs of the request, taken before it is forwarded.
pub struct ManifestRequest {
    /// The path the client asked for, as it arrived (token included).
    path: String,
    /// The `Host` the client named, as written (port included).
    authority: Option<String>,
    /// The same, lower-case without port, as the route was picked by.
    host: Option<String>,
    /// `http` or `https`, as the client sees it: absolute URLs of the other
    /// scheme are never given the credential.
    scheme: &'static str,
    carry: Carry,
    scope: Option<Scope>,
    expires: Option<u64>,
    /// A credential was verified (key links are minted only then).
    verified: bool,
}

impl ManifestRequest {
    /// `None` unless the request may be answered with a manifest worth
    /// rewriting (GET on a route with `manifests:`).
    pub fn new(
        parts: &Parts,
        grant: Option<&Grant>,
        reinsert: Option<&Reinsert>,
        tls: bool,
        trust_forwarded: bool,
    ) -> Option<ManifestRequest> {
        if parts.method != Method::GET {
            return None;
        }
        // The names the route was picked by (`Host` first, as `route` does).
        let authority =
            parts.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| parts.uri.authority().map(|a| a.as_str()));
        let host = super::route::request_host(parts);
        let forwarded = trust_forwarded
            .then(|| parts.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()))
            .flatten()
            .map(|p| p.trim().eq_ignore_ascii_case("https"));
        let scheme = if forwarded.unwrap_or(tls) { "https" } else { "http" };
        let scope = grant.and_then(|g| g.scope.clone());
        let carry = match (reinsert, grant) {
            (Some(r), _) => Carry::PathToken { raw_prefix: r.raw_prefix.clone(), segment: r.segment.clone() },
            (None, Some(g)) if g.carrier.in_url() && matches!(scope, Some(Scope::Prefix(_))) => {
                Carry::Query(parts.uri.query().unwrap_or("").to_owned())
            }
            _ => Carry::Nothing,
        };
        Some(ManifestRequest {
            path: parts.uri.path().to_owned(),
            authority: authority.map(str::to_owned),
            host,
            scheme,
            carry,
            scope,
            expires: grant.and_then(|g| g.facts.expires_at),
            verified: grant.is_some(),
        })
    }
}

/// Asks the upstream for the whole manifest as bytes: no compression, no
/// range, no conditional (the answer is rewritten, so the client's cached
/// copy and the upstream's validators do not describe it).
pub fn prepare(headers: &mut HeaderMap, path: &str) {
    if Format::by_extension(path).is_some() {
        for name in [RANGE, IF_RANGE, IF_NONE_MATCH, IF_MODIFIED_SINCE, IF_MATCH, IF_UNMODIFIED_SINCE] {
            headers.remove(name);
        }
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
}

/// The upstream's answer, or a manifest's rewritten bytes.
pub enum Answered {
    Stream(Answer),
    /// With the `Host` the upstream was sent (for its redirects).
    Rewritten(Response<Bytes>, Option<HeaderValue>),
}

impl Answered {
    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        match self {
            Answered::Stream(a) => a.response.status(),
            Answered::Rewritten(r, _) => r.status(),
        }
    }
}

/// Rewrites `answer` when it is a manifest; any other answer passes.
pub async fn phase(
    answer: Answer,
    req: &ManifestRequest,
    settings: &ManifestSettings,
    routes: &RouteTable,
    now: u64,
) -> Result<Answered, Rejection> {
    let headers = answer.response.headers();
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Some(format) = Format::detect(content_type, &req.path).filter(|_| answer.response.status() == StatusCode::OK)
    else {
        return Ok(Answered::Stream(answer));
    };
    if headers.get(CONTENT_ENCODING).is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity")) {
        return Err(Rejection::Manifest(ManifestRefusal::Encoded));
    }
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > settings.max_size) {
        return Err(Rejection::Manifest(ManifestRefusal::TooLarge));
    }
    let Answer { response, sent_host } = answer;
    let (mut parts, body) = response.into_parts();
    let limit = usize::try_from(settings.max_size).unwrap_or(usize::MAX);
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Rejection::Manifest(ManifestRefusal::TooLarge));
        }
        Err(_) => return Err(Rejection::Upstream(UpstreamError::Failed(UpstreamErrorKind::Protocol))),
    };
    let mut rewriter = Rewriter { req, settings, routes, now };
    // A DASH URI resolves against the BaseURLs before it: when one names
    // another origin, a rewritten URI could carry the credential there, so
    // such an MPD is passed on as it is.
    // In query form a relative URI after any BaseURL would get the query on
    // a path this rewriter did not resolve: such an MPD is passed on too.
    let unsafe_base = format == Format::Dash && {
        let mut probe = Bases { rewriter: &rewriter, foreign: false, any: false };
        manifest::rewrite(format, &bytes, &mut probe);
        probe.foreign || (probe.any && matches!(req.carry, Carry::Query(_)))
    };
    let out = if unsafe_base { bytes } else { Bytes::from(manifest::rewrite(format, &bytes, &mut rewriter)) };
    let h = &mut parts.headers;
    for name in [ETAG, LAST_MODIFIED, ACCEPT_RANGES, CONTENT_ENCODING] {
        h.remove(name);
    }
    h.insert(CONTENT_LENGTH, HeaderValue::from(out.len()));
    // It holds credentials, and they expire.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(Answered::Rewritten(Response::from_parts(parts, out), sent_host))
}

/// A URI as the manifest wrote it, located on the request's origin.
struct Located<'u> {
    /// `https://host` or `//host` as written, or "" for a path.
    origin: &'u str,
    /// The absolute raw path, dot segments removed.
    path: String,
    /// `?query#fragment` as written.
    suffix: &'u str,
}

struct Rewriter<'a> {
    req: &'a ManifestRequest,
    settings: &'a ManifestSettings,
    routes: &'a RouteTable,
    now: u64,
}

impl Rewriter<'_> {
    /// The URI's path on this origin; `None` for another origin or scheme.
    fn locate<'u>(&self, uri: &'u str) -> Option<Located<'u>> {
        let split = uri.find(['?', '#']).unwrap_or(uri.len());
        let (reference, suffix) = uri.split_at(split);
        let (origin, path) = if let Some(rest) = reference.strip_prefix("//") {
            let end = rest.find('/').unwrap_or(rest.len());
            self.same_authority(&rest[..end])?;
            (&reference[..2 + end], rest[end..].to_owned())
        } else if let Some(colon) = scheme_end(reference) {
            // Only the request's own scheme: never an `http://` copy of an
            // `https` origin, where the credential would travel in clear.
            if !reference[..colon].eq_ignore_ascii_case(self.req.scheme) {
                return None;
            }
            let rest = reference[colon + 1..].strip_prefix("//")?;
            let end = rest.find('/').unwrap_or(rest.len());
            self.same_authority(&rest[..end])?;
            (&reference[..colon + 3 + end], rest[end..].to_owned())
        } else if reference.starts_with('/') {
            ("", reference.to_owned())
        } else {
            let dir = &self.req.path[..=self.req.path.rfind('/')?];
            ("", format!("{dir}{reference}"))
        };
        let path = if path.is_empty() { "/".to_owned() } else { remove_dot_segments(&path) };
        Some(Located { origin, path, suffix })
    }

    fn same_authority(&self, authority: &str) -> Option<()> {
        self.req.authority.as_deref().filter(|a| a.eq_ignore_ascii_case(authority)).map(|_| ())
    }

    /// Whether the credential grants this raw path.
    fn granted(&self, raw_path: &str) -> bool {
        let Ok(path) = check_path(raw_path) else { return false };
        self.req.scope.as_ref().is_some_and(|s| s.covers(&path.decoded))
    }

    fn content(&self, uri: &str) -> Option<String> {
        let at = self.locate(uri)?;
        match &self.req.carry {
            Carry::PathToken { raw_prefix, segment } => {
                let carried = format!("{raw_prefix}{segment}/");
                if at.path.starts_with(&carried) {
                    return None; // resolves under the token already
                }
                let rest = at.path.strip_prefix(raw_prefix.as_str())?;
                self.granted(&at.path).then(|| format!("{}{carried}{rest}{}", at.origin, at.suffix))
            }
            Carry::Query(query) => {
                if at.suffix.starts_with('?') || !self.granted(&at.path) {
                    return None; // a query of its own would not be the one signed
                }
                let (reference, fragment) = uri.split_at(uri.find('#').unwrap_or(uri.len()));
                Some(format!("{reference}?{query}{fragment}"))
            }
            Carry::Nothing => None,
        }
    }

    /// A fresh one-path signed link to the key, for the route that serves
    /// it, when that route has an HMAC key; never longer than the request's
    /// own credential lives.
    fn key(&self, uri: &str) -> Option<String> {
        // Only for a verified request (never on `auth: none` or a
        // report-only pass), and only for the routes named in `key_routes`.
        if !self.req.verified || self.settings.key_routes.is_empty() {
            return None;
        }
        let at = self.locate(uri)?;
        let real = match &self.req.carry {
            Carry::PathToken { raw_prefix, segment } => {
                match at.path.strip_prefix(&format!("{raw_prefix}{segment}/")) {
                    Some(rest) => format!("{raw_prefix}{rest}"),
                    None => at.path,
                }
            }
            _ => at.path,
        };
        let decoded = check_path(&real).ok()?;
        let route = self.routes.lookup(self.req.host.as_deref(), &decoded.decoded)?;
        if !self.settings.key_routes.iter().any(|name| *name == route.name) {
            return None;
        }
        let key = route.auth.as_ref()?.kinds().iter().find_map(|k| k.link_key())?;
        let ttl = self.settings.key_link_ttl.as_secs().max(1);
        let exp = self.req.expires.map_or(self.now + ttl, |e| e.min(self.now + ttl));
        let query = at.suffix.split('#').next().unwrap_or("");
        let mut target = format!("{real}{query}");
        if route.state.as_ref().is_some_and(|s| s.use_limit.is_some()) {
            target = with_id(&target, &link_id()?).ok()?;
        }
        let signed = sign_target(key, "GET", &target, exp, None, None).ok()?;
        Some(format!("{}{signed}", at.origin))
    }
}

impl manifest::Rewrite for Rewriter<'_> {
    fn uri(&mut self, uri: &str, used: Use) -> Option<String> {
        // A template whose substitution comes before the path is fixed
        // (`$RepresentationID$/s.m4s`, `/$RepresentationID$/…`) could become
        // `//another.host/…` in the player: never given a credential.
        if uri.starts_with('$') || uri.contains("/$") {
            return None;
        }
        match used {
            Use::Content | Use::Base => self.content(uri),
            Use::Key => self.key(uri),
        }
    }
}

/// Finds the DASH `BaseURL`s: any, and any on another origin or scheme.
struct Bases<'a, 'r> {
    rewriter: &'a Rewriter<'r>,
    foreign: bool,
    any: bool,
}

impl manifest::Rewrite for Bases<'_, '_> {
    fn uri(&mut self, uri: &str, used: Use) -> Option<String> {
        if used == Use::Base {
            self.any = true;
            self.foreign |= self.rewriter.locate(uri).is_none();
        }
        None
    }
}

/// A random id for a use-limited key link.
fn link_id() -> Option<String> {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Where a URI's scheme ends (its `:`), if it has one (RFC 3986 §3.1).
fn scheme_end(uri: &str) -> Option<usize> {
    let colon = uri.find(':')?;
    let scheme = &uri[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .then_some(colon)
}

/// RFC 3986 §5.2.4 on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_resolve_as_rfc_3986_says() {
        assert_eq!(remove_dot_segments("/a/b/../c/./d.ts"), "/a/c/d.ts");
        assert_eq!(remove_dot_segments("/a/b/.."), "/a/");
        assert_eq!(remove_dot_segments("/../../x"), "/x");
        assert_eq!(remove_dot_segments("/a/./"), "/a/");
        assert_eq!(remove_dot_segments("/a/b/"), "/a/b/");
    }

    #[test]
    fn schemes_are_told_from_paths() {
        assert_eq!(scheme_end("https://h/x"), Some(5));
        assert_eq!(scheme_end("skd://key"), Some(3));
        assert_eq!(scheme_end("data:text/plain,x"), Some(4));
        assert_eq!(scheme_end("seg:1.ts").map(|_| ()), Some(()), "a colon in the first segment is a scheme");
        assert_eq!(scheme_end("./seg:1.ts"), None);
        assert_eq!(scheme_end("/a:b"), None);
        assert_eq!(scheme_end("1a:b"), None);
    }
}
