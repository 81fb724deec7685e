//! JWKS URLs (identity providers such as Keycloak, Auth0, Dex).
//!
//! One background task per URL fetches the set at start, refreshes it on an
//! interval, and refetches early when a token names an unknown `kid` — at
//! most once per cooldown, however many such tokens arrive. A failed fetch
//! keeps the last good keys. When the keys change, cached verdicts are
//! dropped, so a removed key stops being honoured at once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use prometheus::{IntCounterVec, IntGaugeVec};

use super::keyfile;
use super::keys::{JwtKey, JwtKeySource, KeySet};

/// A JWKS URL to fetch and refresh.
#[derive(Debug, Clone)]
pub struct JwksFetch {
    pub set: Arc<KeySet>,
    pub url: http::Uri,
    pub refresh: Duration,
    pub required_for_ready: bool,
    pub ca_file: Option<std::path::PathBuf>,
}

/// What a refresher reports to. It owns these instead of knowing the
/// server: the server decides what a key change or an attempt means.
#[derive(Clone)]
pub struct Hooks {
    /// A set's keys changed: verdicts made with the old keys must go.
    pub keys_changed: Arc<dyn Fn() + Send + Sync>,
    /// A fetch was attempted: readiness may have changed.
    pub attempted: Arc<dyn Fn() + Send + Sync>,
    /// `tollgate_jwks_fetches_total{keyset,result}`.
    pub fetches: IntCounterVec,
    /// `tollgate_jwks_last_success_timestamp_seconds{keyset}`.
    pub last_success: IntGaugeVec,
}

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for an early refetch it triggered.
const REFETCH_WAIT: Duration = Duration::from_secs(2);

/// Fetches and parses one JWKS URL.
pub async fn fetch(spec: &JwksFetch) -> Result<Vec<Arc<JwtKey>>, String> {
    let tls = crate::upstream::tls::client_config(spec.ca_file.as_deref())?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let connector =
        HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let req = Request::get(spec.url.clone())
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, concat!("tollgate/", env!("CARGO_PKG_VERSION")))
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| format!("request failed: {e}"))?;
        if resp.status() != StatusCode::OK {
            return Err(format!("answered {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        Ok(body.to_bytes())
    };
    let body = tokio::time::timeout(FETCH_TIMEOUT, exchange).await.map_err(|_| "timed out".to_owned())??;
    let (keys, skipped) = keyfile::parse_jwks(&body)?;
    for why in skipped {
        tracing::debug!(keyset = %spec.set.name, reason = %why, "JWK skipped");
    }
    Ok(keys)
}

/// Gives the sets of `new` the keys of `old` sets fetched from the same URL.
pub fn carry_over(old: &[JwksFetch], new: &[JwksFetch]) {
    for spec in new {
        if let Some(prev) = old.iter().find(|o| o.url == spec.url && o.set.is_loaded()) {
            spec.set.replace(prev.set.current().to_vec());
        }
    }
}

/// Fetches every set that has no keys yet and must have them.
pub async fn prime(sets: &[JwksFetch]) -> Result<(), String> {
    for spec in sets.iter().filter(|s| !s.set.is_loaded() && s.required_for_ready) {
        let keys = fetch(spec).await.map_err(|e| format!("{}: {e}", spec.set.name))?;
        spec.set.replace(keys);
    }
    Ok(())
}

/// Whether every set needed for readiness has keys.
pub fn all_ready(sets: &[JwksFetch]) -> bool {
    sets.iter().all(|s| !s.required_for_ready || s.set.is_loaded())
}

/// Fetches `spec` now and then every `refresh` (sooner on request) until
/// its set is stopped.
pub async fn run(spec: JwksFetch, hooks: Hooks) {
    let set = spec.set.clone();
    let name = set.name.clone();
    let mut backoff = Duration::from_secs(1);
    while !set.is_stopped() {
        let fetched = match fetch(&spec).await {
            Ok(keys) => {
                let count = keys.len();
                if set.replace(keys) {
                    (hooks.keys_changed)();
                    tracing::info!(keyset = %name, keys = count, "JWKS keys updated");
                }
                hooks.fetches.with_label_values(&[&name, "ok"]).inc();
                let now = i64::try_from(super::unix_now()).unwrap_or(i64::MAX);
                hooks.last_success.with_label_values(&[&name]).set(now);
                (hooks.attempted)();
                true
            }
            Err(e) => {
                hooks.fetches.with_label_values(&[&name, "error"]).inc();
                tracing::warn!(keyset = %name, error = %e, "JWKS fetch failed; keeping the last good keys");
                false
            }
        };
        set.attempts.send_modify(|n| *n += 1);
        // Until the first success, retry with backoff; then every `refresh`.
        let wait = if fetched || set.is_loaded() {
            backoff = Duration::from_secs(1);
            spec.refresh
        } else {
            let wait = backoff;
            backoff = (backoff * 2).min(spec.refresh);
            wait
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = set.refetch.notified() => {}
        }
    }
}

/// A token named a `kid` no key has: ask each remote set of the route for an
/// early refetch and wait briefly for it. `true` when a fetch happened, so
/// verification is worth one more try.
pub async fn refetch_for_unknown_kid<'a>(sources: impl IntoIterator<Item = &'a JwtKeySource>) -> bool {
    let mut waited = false;
    for source in sources {
        let JwtKeySource::Set(set) = source else {
            continue;
        };
        if !set.remote || !set.claim_refetch() {
            continue;
        }
        let mut attempts = set.attempts.subscribe();
        attempts.borrow_and_update();
        set.refetch.notify_one();
        waited |= tokio::time::timeout(REFETCH_WAIT, attempts.changed()).await.is_ok();
    }
    waited
}
