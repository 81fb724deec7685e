//! The request's phases, top to bottom; each is a function in its own file
//! with one input and one output, and the first refusal ends the request
//! with its answer (`answers.rs`), nothing sent upstream:
//!
//! | phase | file | learns |
//! |---|---|---|
//! | normalize | `normalize.rs` | the head within limits, the decoded normal-form path |
//! | route | `route.rs` | the route; preflights and methods answered |
//! | verify | `verify.rs` | the credential parameters, the grant |
//! | target | `target.rs` | a cookie exchange, or what the upstream is asked for |
//! | admit | `admit.rs` | a use taken (use limits, revocation) |
//! | forward | `forward.rs` | the upstream's answer |
//! | respond | `respond.rs` | the client's answer |
//!
//! `record.rs` counts and logs each request once; `state.rs` holds what
//! lives longer than a request. The whole request runs
//! against the configuration it started with, even if a reload swaps in
//! another one meanwhile. `tollgate explain` runs normalize, route and
//! verify as they are here.

pub mod admit;
pub mod answers;
pub mod forward;
pub mod manifests;
pub mod normalize;
pub mod record;
pub mod respond;
pub mod route;
pub mod state;
pub mod target;
pub mod verify;

use http::{Method, Request, Response, Version};
use hyper::body::Incoming;

use crate::auth::AuthError;
use crate::metrics::Outcome;
use answers::{Rejection, ResponseBody};
use record::InFlight;
pub use state::{ConnInfo, Runtime, Shared};

/// Handles one request end to end; never fails, never panics on input.
pub async fn handle(shared: &Shared, req: Request<Incoming>, conn: ConnInfo) -> Response<ResponseBody> {
    let runtime = shared.runtime.load_full();
    let mut flight = InFlight::new(&shared.metrics, &req, &runtime.config, conn.peer);
    let (mut response, outcome, reason) = match pipeline(&runtime, shared, req, conn, &mut flight).await {
        Ok((response, outcome)) => (response, outcome, ""),
        Err(rejection) => respond::refusal(rejection, &flight),
    };
    // Answers tollgate gives by design (preflights) carry their own headers.
    if let Some(cors) = flight.route.as_ref().and_then(|r| r.cors.as_ref()).filter(|_| outcome != Outcome::Answered) {
        cors.decorate(response.headers_mut(), flight.origin.as_ref());
    }
    flight.record(response.status().as_u16(), outcome, reason);
    response
}

/// The phases, in order.
async fn pipeline(
    rt: &Runtime,
    shared: &Shared,
    req: Request<Incoming>,
    conn: ConnInfo,
    record: &mut InFlight<'_>,
) -> Result<(Response<ResponseBody>, Outcome), Rejection> {
    let start = std::time::Instant::now();
    let (mut parts, body) = req.into_parts();
    let path = normalize::head(&shared.limits, &parts)?;
    let route = route::pick(&rt.config, &parts, &path)?;
    record.route = Some(route.clone());
    if let Some(answer) = route::answer_itself(&route, &parts)? {
        return Ok((answer, Outcome::Answered));
    }
    let verifier = verify::Verifier {
        cache: &rt.cache,
        counters: &shared.metrics.cache,
        trust_forwarded: rt.config.trust_forwarded_headers,
        now: crate::auth::unix_now(),
        trace: None,
    };
    let verified = match verify::verify(&route, &parts, &path, conn.peer.ip(), &verifier).await {
        Ok(verified) => verified,
        // Report-only: counted as the refusal it would be, logged, served.
        Err(Rejection::Auth { denial, .. }) if route.report_only && denial.error != AuthError::Malformed => {
            let Some(unverified) = verify::unverified(&route, &parts, &rt.config.path_token_markers) else {
                let bearer = route.auth.as_ref().is_some_and(crate::auth::RouteAuth::accepts_bearer);
                return Err(Rejection::Auth { denial, bearer });
            };
            if let Some(counter) = route.metrics.denied(denial.error.index()) {
                counter.inc();
            }
            tracing::warn!(reason = denial.error.code(), "Would refuse (auth.report_only): served");
            unverified
        }
        Err(rejection) => return Err(rejection),
    };
    record.carrier = verified.grant.as_ref().map(|g| g.carrier);
    if let Some(redirect) = target::exchange(&route, &parts, &verified)? {
        return Ok((redirect, Outcome::Answered));
    }
    let target = target::upstream(&route, &parts, &path, &verified)?;
    let grant = verified.grant;
    route::check_body(&route, &parts)?;
    // After verification, so a cached verdict never skips it; after every
    // other refusal, so a refused request never takes a use.
    let client = crate::auth::client_ip(conn.peer.ip(), &parts.headers, rt.config.trust_forwarded_headers);
    let admitted = admit::phase(&route, &shared.store, &parts.method, grant.as_ref(), client).await?;
    // A recorded or paced answer goes frame by frame: never spliced.
    let splice_ok = parts.method == Method::GET
        && matches!(parts.version, Version::HTTP_10 | Version::HTTP_11)
        && !route.download_records
        && route.response_rate.is_none()
        && admitted.stream.is_none()
        && admitted.quota.is_none();
    // Routes that rewrite manifests ask for them whole and unencoded.
    let manifest = match route.manifests {
        Some(_) => {
            manifests::prepare(&mut parts.headers, parts.uri.path());
            let tls = conn.tls;
            let trust = rt.config.trust_forwarded_headers;
            manifests::ManifestRequest::new(&parts, grant.as_ref(), target.reinsert.as_ref(), tls, trust)
        }
        None => None,
    };
    let answer = forward::forward(&rt.config, &route, parts, body, grant.as_ref(), target.path_and_query, &conn).await;
    let answer = match (answer, manifest, route.manifests.as_ref()) {
        (Ok(answer), Some(m), Some(settings)) => {
            manifests::phase(answer, &m, settings, &rt.config.routes, verifier.now).await
        }
        (answer, _, _) => answer.map(manifests::Answered::Stream),
    };
    // Settled before the answer leaves, however it ended (a manifest that
    // could not be rewritten included): a client that retries at once
    // after a failure finds its use given back.
    if let Some(guard) = admitted.guard {
        let status = answer.as_ref().map_or_else(|r| r.status_and_code().0, manifests::Answered::status);
        Box::pin(guard.settle(status)).await;
    }
    let answer = answer?;
    let outlet = conn.outlet.as_ref().filter(|_| splice_ok);
    let carrier = grant.as_ref().map(|g| g.carrier);
    let spliced = &shared.metrics.spliced_bytes;
    let mut response = respond::answer(answer, &route, carrier, target.reinsert.as_ref(), outlet, spliced);
    if let Some((rate, burst)) = route.response_rate {
        let body = std::mem::replace(response.body_mut(), ResponseBody::empty());
        *response.body_mut() = ResponseBody::Paced(Box::new(crate::body::Paced::new(body, rate, burst)));
    }
    // The stream slot is held until, and the quota charged and the download
    // recorded when, the body ends or the client leaves.
    let download = route
        .download_records
        .then(|| record::Download::new(route.clone(), grant.as_ref(), client, response.status().as_u16(), start));
    if download.is_some() || admitted.stream.is_some() || admitted.quota.is_some() {
        let (slot, quota) = (admitted.stream, admitted.quota);
        let body = std::mem::replace(response.body_mut(), ResponseBody::empty());
        let on_end = move |bytes, complete| {
            drop(slot);
            if let Some(q) = quota {
                q.charge(bytes);
            }
            if let Some(d) = download {
                d.write(bytes, complete);
            }
        };
        let observed = crate::body::Observed::new(body, Box::new(on_end));
        *response.body_mut() = ResponseBody::Observed(Box::new(observed));
    }
    Ok((response, Outcome::Forwarded))
}
