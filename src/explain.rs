//! `tollgate explain`: why a link is accepted or refused, check by check.
//!
//! It runs the proxy's own stages on the request — [`proxy::normal_path`],
//! [`proxy::route_for`], [`proxy::path_allowed`], the route's method list,
//! [`auth::choose`] and the chosen kind's `verify` — with a tracer in the
//! verify context, so every check the proxy makes is reported in order.
//! For a signature mismatch the string to sign tollgate expected is shown
//! line by line. Key material never appears: steps name key ids only.

use std::fmt::Write as _;
use std::sync::Mutex;

use http::Request;

use crate::auth::{self, AuthRequest, Denial, VerifyCache, VerifyContext, query};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::respond::Rejection;
use crate::proxy::{self};

/// What `explain` found: the report, and whether the proxy would forward.
pub struct Explanation {
    pub report: String,
    pub allowed: bool,
}

/// The request to explain.
pub struct Probe<'a> {
    /// `/path?query` or `http(s)://host/path?query`.
    pub url: &'a str,
    pub method: &'a str,
    /// `Name: value` lines.
    pub headers: &'a [String],
    /// The client address (default loopback), for IP-bound credentials.
    pub client: Option<std::net::IpAddr>,
}

/// Explains a request, check by check.
pub fn explain(config: &Config, metrics: &Metrics, probe: &Probe<'_>) -> Explanation {
    let mut out = String::new();
    let verdict = run(config, metrics, probe, &mut out);
    let allowed = verdict.is_ok();
    let _ = match verdict {
        Ok(forwarded) => writeln!(out, "result       allowed: forwarded upstream as {forwarded}"),
        Err(rejection) => {
            let (status, code) = rejection.status_and_code();
            writeln!(out, "result       refused: {} {code}", status.as_u16())
        }
    };
    Explanation { report: out, allowed }
}

fn line(out: &mut String, check: &str, ok: bool, detail: &str) {
    let _ = writeln!(out, "{check:<12} {} {detail}", if ok { "ok  " } else { "FAIL" });
}

fn run(config: &Config, metrics: &Metrics, probe: &Probe<'_>, out: &mut String) -> Result<String, Rejection> {
    let (host, target) = split_url(probe.url);
    let mut builder = Request::builder().method(probe.method).uri(target);
    if let Some(host) = host {
        builder = builder.header(http::header::HOST, host);
    }
    for h in probe.headers {
        let (name, value) = h.split_once(':').unwrap_or((h, ""));
        builder = builder.header(name.trim(), value.trim());
    }
    let Ok(request) = builder.body(()) else {
        line(out, "request", false, "the method, URL or a header is not valid HTTP");
        return Err(Rejection::NotNormal);
    };
    let (parts, ()) = request.into_parts();
    // The client address a credential may be bound to: `--client-ip`, or
    // loopback (as a request from this machine would be).
    let peer = probe.client.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));

    let path = proxy::normal_path(&parts).inspect_err(|_| {
        line(out, "normal form", false, "the path is not in normal form (dot segments, //, %2F, bad escapes; SPEC §5)");
    })?;
    line(out, "normal form", true, &format!("decoded path {:?}", path.decoded));
    let route = proxy::route_for(config, &parts, &path).inspect_err(|_| {
        line(out, "route", false, "no route's prefix (and host) matches");
    })?;
    line(
        out,
        "route",
        true,
        &format!("{:?} (prefix {:?}, upstream {:?})", route.name, route.prefix, route.upstream.settings.name),
    );
    proxy::path_allowed(&route, &path).inspect_err(|_| {
        line(out, "path shape", false, "this route does not accept // or %2F in its paths");
    })?;
    if !route.allows(&parts.method) {
        line(out, "method", false, &format!("{} is not one of {}", parts.method, route.allow_header()));
        return Err(Rejection::MethodNotAllowed(http::HeaderValue::from_static("GET")));
    }
    line(out, "method", true, parts.method.as_str());

    let raw_path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or("");
    let Some(policy) = &route.auth else {
        line(out, "credential", true, "none needed (auth: none)");
        return Ok(parts.uri.path_and_query().map_or_else(String::new, |pq| pq.to_string()));
    };
    let found = query::scan(raw_query, policy.credential_names()).map_err(|_| {
        line(out, "credential", false, "a credential parameter appears twice");
        deny(policy, auth::AuthError::Malformed, None)
    })?;
    let req = AuthRequest {
        method: parts.method.as_str(),
        path: &path.decoded,
        raw_path,
        query: raw_query,
        found: &found,
        headers: &parts.headers,
        route_prefix: &route.prefix,
        route_id: route.id,
        client_ip: auth::client_ip(peer, &parts.headers, config.trust_forwarded_headers),
    };
    let choice = auth::choose(policy, &req).map_err(|e| {
        let why = match e {
            auth::AuthError::MissingCredential => "none of the kinds this route accepts found a credential",
            _ => "two credentials, or one that cannot be read apart (refused as ambiguous)",
        };
        line(out, "credential", false, why);
        deny(policy, e, None)
    })?;
    let carrier = choice.presented.carrier;
    line(out, "credential", true, &format!("{} in the {}", choice.kind.name(), carrier_name(carrier)));

    // A fresh cache: explain verifies, never answers from memory.
    let cache = VerifyCache::new(auth::CacheSettings::default());
    let steps = Mutex::new(Vec::new());
    let ctx = VerifyContext { cache: &cache, counters: &metrics.cache, now: auth::unix_now(), trace: Some(&steps) };
    let verdict = choice.kind.verify(&choice.presented, &req, &ctx);
    for step in steps.into_inner().unwrap_or_default() {
        line(out, &format!("  {}", step.check), step.ok, &step.detail);
    }
    let grant = verdict.map_err(|e| deny(policy, e, Some(carrier)))?;
    let path = match &grant.path_span {
        Some(span) => format!("{}{}", &raw_path[..span.start], &raw_path[span.end..]),
        None => raw_path.to_owned(),
    };
    Ok(proxy::forwarded_target(&path, raw_query, &found)?.to_string())
}

fn deny(policy: &auth::RouteAuth, error: auth::AuthError, carrier: Option<auth::Carrier>) -> Rejection {
    Rejection::Auth { denial: Denial { error, carrier }, bearer: policy.accepts_bearer() }
}

fn carrier_name(c: auth::Carrier) -> &'static str {
    match c {
        auth::Carrier::SignedUrl => "query (exp, sig, kid, prefix)",
        auth::Carrier::Header => "Authorization header",
        auth::Carrier::Query => "token query parameter",
        auth::Carrier::Cookie => "Cookie header",
        auth::Carrier::PathToken => "path (token segment)",
        auth::Carrier::CustomHeader => "credential header",
    }
}

/// `https://host:port/p?q` → (`host:port`, `/p?q`); a bare target has no host.
fn split_url(url: &str) -> (Option<&str>, &str) {
    match url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) {
        Some(rest) => match rest.find(['/', '?']) {
            Some(i) => (Some(&rest[..i]), &rest[i..]),
            None => (Some(rest), "/"),
        },
        None => (None, url),
    }
}
