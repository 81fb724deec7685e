//! `tollgate explain`: why a link is accepted or refused, check by check.
//!
//! It runs the proxy's own phases on the request — `proxy::normalize`,
//! `proxy::route`, `proxy::verify`, `proxy::target` and `proxy::admit` —
//! with a tracer in the verify phase, so every check the proxy makes is
//! reported in order. The admit phase (use limits, revocation) reads the
//! configured store and never writes it: it asks as a HEAD request would,
//! which never takes a use.
//! For a signature mismatch the string to sign tollgate expected is shown
//! line by line. Key material never appears: steps name key ids only.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use http::{Method, Request};

use crate::auth::{self, AuthError, Denial, Grant, VerifyCache};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::answers::Rejection;
use crate::proxy::verify::{self, Verifier};
use crate::proxy::{admit, normalize, route, target};
use crate::routes::Route;
use crate::store::Store;

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
pub async fn explain(config: &Config, metrics: &Metrics, probe: &Probe<'_>) -> Explanation {
    let mut out = String::new();
    let verdict = run(config, metrics, probe, &mut out).await;
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

async fn run(config: &Config, metrics: &Metrics, probe: &Probe<'_>, out: &mut String) -> Result<String, Rejection> {
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

    let path = normalize::path(&parts).inspect_err(|_| {
        line(out, "normal form", false, "the path is not in normal form (dot segments, //, %2F, bad escapes)");
    })?;
    line(out, "normal form", true, &format!("decoded path {:?}", path.decoded));
    let route = route::pick(config, &parts, &path).inspect_err(|r| {
        let why = match r {
            Rejection::NoRoute => "no route's prefix (and host) matches",
            _ => "this route does not accept // or %2F in its paths",
        };
        line(out, "route", false, why);
    })?;
    line(
        out,
        "route",
        true,
        &format!("{:?} (prefix {:?}, upstream {:?})", route.name, route.prefix, route.upstream.settings.name),
    );
    if route.allows(&parts.method) {
        line(out, "method", true, parts.method.as_str());
    } else {
        line(out, "method", false, &format!("{} is not one of {}", parts.method, route.allow_header()));
    }
    route::answer_itself(&route, &parts)?;

    // A fresh cache: explain verifies, never answers from memory.
    let cache = VerifyCache::new(auth::CacheSettings::default());
    let steps = Mutex::new(Vec::new());
    let verifier = Verifier {
        cache: &cache,
        counters: &metrics.cache,
        trust_forwarded: config.trust_forwarded_headers,
        now: auth::unix_now(),
        trace: Some(&steps),
    };
    let verdict = verify::verify(&route, &parts, &path, peer, &verifier).await;
    for step in steps.into_inner().unwrap_or_default() {
        let indent = if step.check == "credential" { "" } else { "  " };
        line(out, &format!("{indent}{}", step.check), step.ok, &step.detail);
    }
    let verified = match verdict {
        Ok(v) => v,
        Err(Rejection::Auth { denial, .. }) if route.report_only && denial.error != auth::AuthError::Malformed => {
            match verify::unverified(&route, &parts, &config.path_token_markers) {
                Some(v) => {
                    line(
                        out,
                        "report-only",
                        true,
                        &format!("the route serves it anyway, counted and logged as {}", denial.error.code()),
                    );
                    v
                }
                None => {
                    line(out, "report-only", false, "not for a request with a credential in its path");
                    let bearer = route.auth.as_ref().is_some_and(auth::RouteAuth::accepts_bearer);
                    return Err(Rejection::Auth { denial, bearer });
                }
            }
        }
        Err(rejection) => return Err(rejection),
    };
    let forwarded = target::upstream(&route, &parts, &path, &verified)?.path_and_query.to_string();
    admit_read_only(config, metrics, &route, verified.grant.as_ref(), out).await?;
    Ok(forwarded)
}

/// The admit phase, read-only: the id rule, then the configured store asked
/// as a HEAD request asks (a use is looked at, never taken).
async fn admit_read_only(
    config: &Config,
    metrics: &Metrics,
    route: &Route,
    grant: Option<&Grant>,
    out: &mut String,
) -> Result<(), Rejection> {
    let (Some(policy), Some(grant)) = (&route.state, grant) else { return Ok(()) };
    if let Some(share) = policy.share {
        line(
            out,
            "share",
            true,
            &format!(
                "share_limit ({} client networks): not checked here; the proxy refuses (403 shared) a network past \
                 the limit, and explain records none",
                share.max_networks
            ),
        );
    }
    if let Some(streams) = policy.streams {
        line(
            out,
            "streams",
            true,
            &format!(
                "stream_limit ({} at once): not checked here; the proxy answers 429 too_many_streams while that \
                 many downloads of the credential are in flight",
                streams.max_streams
            ),
        );
    }
    if policy.use_limit.is_none() && !policy.revocation {
        return Ok(());
    }
    let limit = |l: crate::routes::state::UseLimit| {
        format!("use limit ({} use(s), grace {})", l.uses, crate::duration::human(l.grace.as_secs()))
    };
    let what = match (policy.use_limit, policy.revocation) {
        (Some(l), true) => format!("{} and revocation", limit(l)),
        (Some(l), false) => limit(l),
        (None, _) => "revocation".to_owned(),
    };
    let refuse = |error| Rejection::Auth { denial: Denial { error, carrier: Some(grant.carrier) }, bearer: false };
    if policy.use_limit.is_some() && grant.facts.id.is_none() {
        line(
            out,
            "id",
            false,
            &format!(
                "the route has a {what}, and this credential carries no id to count (a signed URL's id=, a JWT's jti)"
            ),
        );
        return Err(refuse(AuthError::ClaimMismatch));
    }
    let store = match Store::new(&config.store, metrics.store.clone()) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            line(out, "store", false, &format!("cannot open the store: {e}"));
            return Err(refuse(AuthError::StoreUnavailable));
        }
    };
    if let Err(e) = store.ping().await {
        let consequence = if policy.fail_open {
            "this route fails open: the proxy forwards without the check"
        } else {
            "the proxy refuses with 503 (fail closed)"
        };
        line(
            out,
            "admit",
            policy.fail_open,
            &format!("{what}: the {} store cannot be reached ({e}); {consequence}", store.kind()),
        );
        return if policy.fail_open { Ok(()) } else { Err(refuse(AuthError::StoreUnavailable)) };
    }
    let verdict = admit::admit(policy, &store, &Method::HEAD, grant, None).await;
    let seen = match store.kind() {
        "memory" => {
            "memory store: revocations from its file are known; uses a running proxy counted live in that \
             process and cannot be seen from here"
        }
        _ => "redis store, read without taking a use",
    };
    match verdict {
        Ok(_) => {
            line(out, "admit", true, &format!("{what}: not revoked, not used up ({seen})"));
            Ok(())
        }
        Err(error) => {
            let why = match error {
                AuthError::Revoked => "the credential (or its subject) is revoked".to_owned(),
                AuthError::Replayed => "the credential's uses are spent".to_owned(),
                AuthError::StoreUnavailable => {
                    "the store cannot be reached: the proxy refuses with 503 (fail closed)".to_owned()
                }
                other => other.code().to_owned(),
            };
            line(out, "admit", false, &format!("{what}: {why} ({seen})"));
            Err(refuse(error))
        }
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
