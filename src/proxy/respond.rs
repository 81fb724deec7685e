//! Phase 7, respond: the upstream's answer cleaned for the client (hop-by-hop
//! headers, `Referrer-Policy`, its own redirects made origin-relative, a
//! path token put back only there), its body spliced socket to socket when
//! it is large; and a refusal turned into its answer, counted, with the
//! route's CORS headers.

use std::sync::Arc;

use http::header::{CACHE_CONTROL, LOCATION, REFERRER_POLICY};
use http::{HeaderValue, Response};

use super::answers::{Rejection, ResponseBody};
use super::forward::remove_hop_by_hop;
use super::manifests::Answered;
use super::record::InFlight;
use super::target::Reinsert;
use crate::auth::Carrier;
use crate::metrics::Outcome;
use crate::routes::Route;
use crate::splice::Outlet;

/// The upstream's answer for the client; `outlet` is the client
/// connection's when a large body may be spliced into it.
pub fn answer(
    answer: Answered,
    route: &Route,
    carrier: Option<Carrier>,
    reinsert: Option<&Reinsert>,
    outlet: Option<&Arc<Outlet>>,
    spliced: &prometheus::IntCounter,
) -> Response<ResponseBody> {
    let upstream = route.upstream.settings.authority.as_str();
    let answer = match answer {
        Answered::Stream(answer) => answer,
        Answered::Rewritten(response, sent_host) => {
            let own = [upstream, sent_host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or(upstream)];
            let (parts, body) = client_response(response, carrier, reinsert, &own).into_parts();
            return Response::from_parts(parts, ResponseBody::full(body));
        }
    };
    let own = [upstream, answer.sent_host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or(upstream)];
    let (parts, body) = client_response(answer.response, carrier, reinsert, &own).into_parts();
    let body = match outlet {
        Some(outlet) => match crate::splice::offer(&parts, body, outlet, spliced) {
            Ok(spliced) => ResponseBody::Spliced(spliced),
            Err(body) => ResponseBody::Upstream(body),
        },
        None => ResponseBody::Upstream(body),
    };
    Response::from_parts(parts, body)
}

/// The answer to a refusal, counted on the request's route.
pub fn refusal(rejection: Rejection, flight: &InFlight<'_>) -> (Response<ResponseBody>, Outcome, &'static str) {
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
            if let Some(counter) = other.upstream_kind().and_then(|kind| metrics.upstream_error(kind)) {
                counter.inc();
            }
            other.status_and_code().1
        }
    };
    (rejection.into_response(), outcome, reason)
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
fn client_response<B>(
    resp: Response<B>,
    carrier: Option<Carrier>,
    reinsert: Option<&Reinsert>,
    own: &[&str],
) -> Response<B> {
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
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
