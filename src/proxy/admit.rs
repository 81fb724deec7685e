//! Phase 5, admit: use limits and revocation (README: One-time and limited links).
//!
//! It runs on every request of a route that has `use_limit` or
//! `revocation`, after the credential is verified (from the verdict cache
//! or not: the cache holds verification only, never a use) and before
//! anything is forwarded. One store round trip answers both questions for
//! a credential id; a subject's revocation is looked up alongside, in
//! parallel.
//!
//! A use begins with the first request whose answer is a success (below
//! 400) and lasts the route's grace window: requests inside it (Range,
//! resumes, a browser's re-fetch) are the same use. The request that opens
//! a use holds a [`UseGuard`]; unless the answer turns out a success (an
//! upstream error, a 5xx or 4xx), the guard gives the use back before the
//! answer leaves, and if the client leaves before the answer, when it is
//! dropped. The decision is made at the response head: a body that breaks
//! off later still counts as a use. HEAD never counts, it only looks;
//! preflights are answered before this stage.
//!
//! When the store fails, the route fails closed (503 `store_unavailable`)
//! unless it opted to fail open; both are counted.

use std::net::IpAddr;
use std::sync::Arc;

use http::{Method, StatusCode};

use super::answers::Rejection;
use crate::auth::{AuthError, Denial, Grant, RouteAuth, unix_now};
use crate::metrics::{UseCounters, UseResult};
use crate::routes::Route;
use crate::routes::state::{ByteQuota, ShareLimit, StatePolicy, StreamLimit};
use crate::store::{
    Admission, AdmitQuery, BytesCharge, Digest, ShareQuery, Sharing, Store, StreamQuery, Streams, Ticket, UseKey,
    UseQuery,
};

/// A new use, given back when dropped unless [`UseGuard::settle`] saw a
/// successful answer.
pub struct UseGuard {
    store: Arc<Store>,
    ticket: Ticket,
    counters: UseCounters,
    /// Settled: kept, or given back.
    settled: bool,
    /// Counted as given back (once, however it is given back).
    counted: bool,
}

impl UseGuard {
    /// Keeps the use if `status` is a success; gives it back otherwise,
    /// before the answer leaves.
    pub async fn settle(mut self, status: StatusCode) {
        if status.as_u16() >= 400 {
            self.count_given_back();
            // If this request is dropped mid-way, `Drop` gives it back
            // again: a give-back is idempotent (it ends the ticket's
            // generation).
            let _ = self.store.give_back(&self.ticket).await;
        }
        self.settled = true;
    }

    fn count_given_back(&mut self) {
        if !self.counted {
            self.counted = true;
            self.counters.get(UseResult::GivenBack).inc();
        }
    }
}

impl Drop for UseGuard {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // The request ended before its answer was known (the client left):
        // no answer was delivered, so no use. Spawned: a dropped request
        // cannot await anything.
        self.count_given_back();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, ticket) = (self.store.clone(), self.ticket);
            rt.spawn(async move {
                let _ = store.give_back(&ticket).await;
            });
        }
    }
}

/// A download's slot under a stream limit: freed when dropped — when the
/// answer's body ended, the client left, or the request was refused after
/// all. A replica that dies holding one leaves it to the lease.
pub struct StreamSlot {
    store: Arc<Store>,
    key: UseKey,
    slot: u64,
    gauge: Option<prometheus::IntGauge>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, key, slot) = (self.store.clone(), self.key, self.slot);
            rt.spawn(async move {
                let _ = store.free_stream(&key, slot).await;
            });
        }
    }
}

/// Where the bytes an answer sends are added up, under a byte quota.
pub struct QuotaCharge {
    store: Arc<Store>,
    key: UseKey,
    keep_until: u64,
}

impl QuotaCharge {
    /// Adds `bytes` (what the answer actually sent) to the credential's total.
    pub fn charge(self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let charge = BytesCharge { key: self.key, bytes, keep_until: self.keep_until };
            rt.spawn(async move {
                let _ = self.store.charge_bytes(&charge).await;
            });
        }
    }
}

/// What admission opened: a use (to settle with the answer's status), a
/// stream slot (to hold while the body goes out) and a quota to charge
/// with the bytes sent.
#[derive(Default)]
pub struct Admitted {
    pub guard: Option<UseGuard>,
    pub stream: Option<StreamSlot>,
    pub quota: Option<QuotaCharge>,
}

/// The phase: on a route with a use limit, revocation, share or stream
/// limit, checks the verified `grant`.
pub async fn phase(
    route: &Route,
    store: &Arc<Store>,
    method: &Method,
    grant: Option<&Grant>,
    client: IpAddr,
) -> Result<Admitted, Rejection> {
    let (Some(policy), Some(grant)) = (&route.state, grant) else { return Ok(Admitted::default()) };
    let refuse = |error| Rejection::Auth {
        denial: Denial { error, carrier: Some(grant.carrier) },
        bearer: route.auth.as_ref().is_some_and(RouteAuth::accepts_bearer),
    };
    // Boxed, like the other phases only some routes reach: the store round
    // trip's state would otherwise enlarge every request's future.
    let stream = match policy.streams.filter(|_| *method != Method::HEAD) {
        Some(limit) => Box::pin(take_stream(policy, limit, store, grant)).await.map_err(refuse)?,
        None => None,
    };
    let quota = match policy.quota.filter(|_| *method != Method::HEAD) {
        Some(quota) => Box::pin(check_quota(policy, quota, store, grant)).await.map_err(refuse)?,
        None => None,
    };
    let guard = Box::pin(admit(policy, store, method, grant, Some(client))).await.map_err(refuse)?;
    Ok(Admitted { guard, stream, quota })
}

/// Refuses a credential that has been sent its quota (an answer already
/// in flight finishes); else the charge to add the answer's bytes to.
async fn check_quota(
    policy: &StatePolicy,
    quota: ByteQuota,
    store: &Arc<Store>,
    grant: &Grant,
) -> Result<Option<QuotaCharge>, AuthError> {
    let Some(key) = credential_key(policy, grant) else { return Ok(None) };
    let charge = QuotaCharge { store: store.clone(), key, keep_until: keep_until(policy, grant) };
    match store.bytes_sent(&key).await {
        Ok(sent) if sent >= quota.bytes => {
            tracing::warn!(
                sent,
                quota = quota.bytes,
                report_only = quota.report_only,
                "Credential past its byte_quota"
            );
            if quota.report_only { Ok(Some(charge)) } else { Err(AuthError::QuotaExceeded) }
        }
        Ok(_) => Ok(Some(charge)),
        Err(_) => store_failed(policy, None),
    }
}

/// Takes a stream slot for the credential, or refuses one download more
/// than the route allows (or only reports it).
async fn take_stream(
    policy: &StatePolicy,
    limit: StreamLimit,
    store: &Arc<Store>,
    grant: &Grant,
) -> Result<Option<StreamSlot>, AuthError> {
    let Some(key) = credential_key(policy, grant) else { return Ok(None) };
    let mut slot = [0u8; 8];
    aws_lc_rs::rand::fill(&mut slot).map_err(|_| AuthError::StoreUnavailable)?;
    let query = StreamQuery {
        key,
        slot: u64::from_le_bytes(slot),
        max: limit.max_streams,
        record_all: limit.report_only,
        lease_ms: limit.lease.as_millis() as u64,
    };
    match store.take_stream(&query).await {
        Ok(Streams::Taken(n)) => {
            if n > limit.max_streams {
                tracing::warn!(
                    streams = n,
                    max_streams = limit.max_streams,
                    "Downloads past stream_limit (report only)"
                );
            }
            if let Some(g) = &policy.streams_in_use {
                g.inc();
            }
            Ok(Some(StreamSlot {
                store: store.clone(),
                key: query.key,
                slot: query.slot,
                gauge: policy.streams_in_use.clone(),
            }))
        }
        Ok(Streams::Full(_)) => Err(AuthError::TooManyStreams),
        Err(_) => store_failed(policy, None),
    }
}

/// Checks the client's network against the share limit, then revocation,
/// and counts the use of `grant` on a route with `policy`. `Ok(Some(guard))`
/// when the request opened a use. Without a `client` (`tollgate explain`)
/// no network is recorded.
pub async fn admit(
    policy: &StatePolicy,
    store: &Arc<Store>,
    method: &Method,
    grant: &Grant,
    client: Option<IpAddr>,
) -> Result<Option<UseGuard>, AuthError> {
    let facts = &grant.facts;
    let count = |r: UseResult| policy.counters.get(r).inc();
    let id = facts.id.as_deref().map(Digest::id);
    if let (Some(share), Some(client)) = (policy.share, client) {
        // First: a refused network must not take a use.
        if let Err(e) = check_sharing(policy, share, store, grant, client).await {
            return match e {
                AuthError::StoreUnavailable => store_failed(policy, None),
                other => Err(other),
            };
        }
    }
    if policy.use_limit.is_some() && id.is_none() {
        // Nothing to count uses of: a path token, a JWT without `jti`.
        count(UseResult::NoId);
        return Err(AuthError::ClaimMismatch);
    }
    let peek = matches!(*method, Method::HEAD | Method::OPTIONS);
    let query = id.map(|id| AdmitQuery {
        id,
        check_revoked: policy.revocation,
        limit: policy.use_limit.map(|l| UseQuery {
            route: policy.route,
            uses: l.uses,
            grace_ms: l.grace.as_millis() as u64,
            peek,
            keep_until: facts.expires_at.unwrap_or_else(|| unix_now() + 86_400) + policy.leeway + l.grace.as_secs() + 1,
        }),
    });
    let subject = facts.subject.as_deref().filter(|_| policy.revocation).map(Digest::subject);
    let admit = async {
        match &query {
            Some(q) => store.admit(q).await.map(Some),
            None => Ok(None),
        }
    };
    let by_subject = async {
        match subject {
            Some(s) => store.subject_revoked_before(s).await,
            None => Ok(None),
        }
    };
    let (admission, before) = tokio::join!(admit, by_subject);
    // A use begun by this request, to give back if it is refused after all.
    let guard = match &admission {
        Ok(Some(Admission::NewUse(ticket))) => Some(UseGuard {
            store: store.clone(),
            ticket: *ticket,
            counters: policy.counters.clone(),
            settled: false,
            counted: false,
        }),
        _ => None,
    };
    let (admission, before) = match (admission, before) {
        (Ok(a), Ok(b)) => (a, b),
        // The store logs and counts its own errors.
        (Err(_), _) | (_, Err(_)) => return store_failed(policy, guard),
    };
    // Everything issued before the subject's revocation (or at an unknown
    // time) is revoked.
    let subject_revoked = before.is_some_and(|t| facts.issued_at.is_none_or(|iat| iat < t));
    if subject_revoked || admission == Some(Admission::Revoked) {
        if let Some(mut g) = guard {
            // A use just begun by a revoked credential (its subject was
            // revoked): nothing to give back, it can never be used again
            // before it expires.
            g.settled = true;
        }
        count(UseResult::Revoked);
        return Err(AuthError::Revoked);
    }
    match admission {
        Some(Admission::Replayed) => {
            count(UseResult::Replayed);
            Err(AuthError::Replayed)
        }
        Some(Admission::SameUse) => {
            count(UseResult::SameUse);
            Ok(None)
        }
        Some(Admission::NewUse(_)) => {
            count(UseResult::FirstUse);
            Ok(guard)
        }
        Some(Admission::Allowed) if query.is_some_and(|q| q.limit.is_some()) => {
            count(UseResult::NotCounted);
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Records the client's network for the credential; refuses one network
/// more than the route allows (or only reports it).
async fn check_sharing(
    policy: &StatePolicy,
    share: ShareLimit,
    store: &Store,
    grant: &Grant,
    client: IpAddr,
) -> Result<(), AuthError> {
    let facts = &grant.facts;
    let Some(key) = credential_key(policy, grant) else {
        return Ok(()); // nothing identifies it (cannot happen on such a route)
    };
    let credential = key.id;
    let query = ShareQuery {
        key,
        network: network_of(client, share),
        max: share.max_networks,
        record_all: share.report_only,
        keep_until: keep_until(policy, grant),
    };
    let found = store.share(&query).await.map_err(|_| AuthError::StoreUnavailable)?;
    let networks = match found {
        Sharing::Full(n) => n + 1,
        Sharing::Added(n) if n > share.max_networks => n,
        _ => return Ok(()),
    };
    let refused = !share.report_only;
    policy.share_counters.get(refused).inc();
    // The credential's id, or a prefix of its digest: never the credential.
    let which = facts.id.as_deref().map_or_else(|| format!("digest:{}", &credential.hex()[..16]), str::to_owned);
    tracing::warn!(
        credential = %which,
        networks,
        max_networks = share.max_networks,
        report_only = share.report_only,
        "Credential used from more client networks than share_limit allows"
    );
    if refused { Err(AuthError::Shared) } else { Ok(()) }
}

/// The digest of the client's network: its address masked to the route's
/// prefix length for its family.
pub fn network_of(client: IpAddr, share: ShareLimit) -> Digest {
    let (mut bytes, prefix) = match client.to_canonical() {
        IpAddr::V4(v4) => (v4.octets().to_vec(), share.ipv4_prefix),
        IpAddr::V6(v6) => (v6.octets().to_vec(), share.ipv6_prefix),
    };
    for (i, byte) in bytes.iter_mut().enumerate() {
        let kept = usize::from(prefix).saturating_sub(i * 8).min(8);
        *byte &= if kept == 0 { 0 } else { 0xffu8 << (8 - kept) };
    }
    bytes.push(prefix);
    Digest::network(&bytes)
}

/// What the share, stream and quota records of a credential are kept
/// under: its id, or the digest of a credential that has none.
fn credential_key(policy: &StatePolicy, grant: &Grant) -> Option<UseKey> {
    let facts = &grant.facts;
    let id = facts.id.as_deref().map(Digest::id).or(facts.fingerprint.map(Digest))?;
    Some(UseKey { id, route: policy.route })
}

/// Until when a credential's records are kept: its expiry and leeway
/// (a day when it states none).
fn keep_until(policy: &StatePolicy, grant: &Grant) -> u64 {
    grant.facts.expires_at.unwrap_or_else(|| unix_now() + 86_400) + policy.leeway + 1
}

/// The store failed: 503, or on with the request where the route allows.
fn store_failed<T>(policy: &StatePolicy, kept: Option<T>) -> Result<Option<T>, AuthError> {
    if policy.fail_open {
        policy.counters.get(UseResult::FailOpen).inc();
        Ok(kept)
    } else {
        policy.counters.get(UseResult::FailClosed).inc();
        Err(AuthError::StoreUnavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_addresses_masked_to_the_prefix() {
        let share = ShareLimit { max_networks: 1, ipv4_prefix: 24, ipv6_prefix: 64, report_only: false };
        let net = |ip: &str| network_of(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])), share);
        assert_eq!(net("203.0.113.7"), net("203.0.113.250"));
        assert_ne!(net("203.0.113.7"), net("203.0.114.7"));
        assert_eq!(net("::ffff:203.0.113.9"), net("203.0.113.7"), "a mapped IPv4 address is IPv4");
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff::9"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        let narrow = ShareLimit { ipv4_prefix: 30, ..share };
        assert_ne!(network_of("10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])), narrow), net("10.0.0.5"));
    }
}
