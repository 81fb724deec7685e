//! The verification cache (README: Running in production): verdicts on bearer tokens, in moka.
//!
//! Invariants:
//! - the key is a SHA-256 digest of (route, method, carrier, resource,
//!   full credential), so a verdict for `/b/a` never answers for `/b/x`, and
//!   the token itself is not kept in memory;
//! - a positive entry lives at most until the token's `exp`, and the entry's
//!   own `exp` is checked again on every hit;
//! - refusals are kept for a short negative TTL, so a flood of one bad token
//!   costs one verification;
//! - the cache is bounded by entry count and is replaced wholesale when the
//!   configuration is reloaded; key-set rotation calls `invalidate_all`.
//!
//! Signed URLs are not cached: their HMAC costs about what the digest of a
//! cache key costs (see BENCHMARKS.md).

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use aws_lc_rs::digest;
use http::{HeaderName, HeaderValue};
use moka::Expiry;
use moka::sync::Cache;

use super::error::{AuthError, Carrier};
use super::grant::{Facts, Scope};

/// Cache sizing and lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub max_entries: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { max_entries: 100_000, ttl: Duration::from_secs(300), negative_ttl: Duration::from_secs(5) }
    }
}

/// A cached verdict.
#[derive(Debug, Clone)]
pub enum Verdict {
    Allow(Verified),
    Deny(AuthError),
}

/// Digest of everything a verdict depends on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CacheKey([u8; 32]);

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The key is already a uniform digest: its first 8 bytes are the hash.
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// Passes through the `u64` that `CacheKey::hash` writes.
#[derive(Default)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

impl CacheKey {
    /// Digest of (route, method, carrier, resource, credential), each field
    /// length-prefixed so no two different tuples share a byte string.
    pub fn new(route: u32, method: &str, carrier: Carrier, resource: &str, credential: &str) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&route.to_be_bytes());
        ctx.update(&[carrier.tag()]);
        for field in [method, resource, credential] {
            ctx.update(&(field.len() as u64).to_be_bytes());
            ctx.update(field.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        CacheKey(out)
    }
}

struct VerdictExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Expiry<CacheKey, Verdict> for VerdictExpiry {
    fn expire_after_create(&self, _key: &CacheKey, value: &Verdict, _at: Instant) -> Option<Duration> {
        Some(match value {
            Verdict::Allow(v) => self.ttl.min(Duration::from_secs(v.exp.saturating_sub(unix_now()))),
            Verdict::Deny(_) => self.negative_ttl,
        })
    }
}

/// The bounded verdict cache.
pub struct VerifyCache {
    entries: Cache<CacheKey, Verdict, BuildHasherDefault<PassThroughHasher>>,
}

impl VerifyCache {
    pub fn new(settings: CacheSettings) -> Self {
        let entries = Cache::builder()
            .max_capacity(settings.max_entries)
            .expire_after(VerdictExpiry { ttl: settings.ttl, negative_ttl: settings.negative_ttl })
            .build_with_hasher(BuildHasherDefault::default());
        VerifyCache { entries }
    }

    /// The cached verdict, if any. A positive verdict past its token's `exp`
    /// is never returned, whatever moka's timers say.
    pub fn get(&self, key: &CacheKey, now: u64) -> Option<Verdict> {
        match self.entries.get(key)? {
            Verdict::Allow(v) if v.exp < now => None,
            verdict => Some(verdict),
        }
    }

    /// Stores a verdict; an allow that expires within the second is not kept.
    pub fn insert(&self, key: CacheKey, verdict: Verdict, now: u64) {
        if matches!(&verdict, Verdict::Allow(v) if v.exp <= now) {
            return;
        }
        self.entries.insert(key, verdict);
    }

    /// Drops every verdict (a key set changed).
    pub fn invalidate_all(&self) {
        self.entries.invalidate_all();
    }

    /// Approximate number of entries (moka counts lazily).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What a verified credential grants the request, as cached (JWTs,
/// CloudFront links: checks that cost tens of microseconds).
#[derive(Debug, Clone)]
pub struct Verified {
    /// The token's `exp`, unix seconds: no cached verdict outlives it.
    pub exp: u64,
    /// Headers to add upstream, from `forward_claims`.
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
    /// The path pattern of the path claim that granted the request.
    pub scope: Option<Scope>,
    /// `jti`, `sub`, `iat` and `exp`, for the use-limit and revocation
    /// stage: cached with the verdict, since that stage runs on every
    /// request, cached or not.
    pub facts: Facts,
    /// The key that verified it, `jwt:<kid>` (empty kid when it has none).
    pub key: Option<Arc<str>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn allow(exp: u64) -> Verdict {
        Verdict::Allow(Verified {
            exp,
            headers: Arc::from(Vec::new()),
            scope: None,
            facts: crate::auth::Facts::default(),
            key: None,
        })
    }

    #[test]
    fn key_binds_every_field() {
        let base = CacheKey::new(1, "GET", Carrier::Header, "/b/a", "tok");
        assert!(base == CacheKey::new(1, "GET", Carrier::Header, "/b/a", "tok"));
        assert!(base != CacheKey::new(2, "GET", Carrier::Header, "/b/a", "tok"));
        assert!(base != CacheKey::new(1, "PUT", Carrier::Header, "/b/a", "tok"));
        assert!(base != CacheKey::new(1, "GET", Carrier::Query, "/b/a", "tok"));
        assert!(base != CacheKey::new(1, "GET", Carrier::Header, "/b/x", "tok"));
        assert!(base != CacheKey::new(1, "GET", Carrier::Header, "/b/a", "tok2"));
        assert!(
            CacheKey::new(1, "GET", Carrier::Header, "/b/a", "x")
                != CacheKey::new(1, "GET", Carrier::Header, "/b/ax", ""),
            "fields are length-prefixed"
        );
    }

    #[test]
    fn positive_verdicts_never_outlive_exp() {
        let cache = VerifyCache::new(CacheSettings::default());
        let now = unix_now();
        let key = CacheKey::new(1, "GET", Carrier::Header, "/a", "t");
        cache.insert(key, allow(now + 100), now);
        assert!(matches!(cache.get(&key, now), Some(Verdict::Allow(_))));
        assert!(cache.get(&key, now + 101).is_none(), "checked against exp on every hit");
        let stale = CacheKey::new(1, "GET", Carrier::Header, "/a", "stale");
        cache.insert(stale, allow(now), now);
        assert!(cache.get(&stale, now).is_none(), "an expiring verdict is not stored");
    }

    #[test]
    fn denials_are_cached_and_invalidated() {
        let cache = VerifyCache::new(CacheSettings::default());
        let key = CacheKey::new(1, "GET", Carrier::Query, "/a", "bad");
        cache.insert(key, Verdict::Deny(AuthError::BadSignature), unix_now());
        assert!(matches!(cache.get(&key, unix_now()), Some(Verdict::Deny(AuthError::BadSignature))));
        cache.invalidate_all();
        assert!(cache.get(&key, unix_now()).is_none());
    }

    #[test]
    fn bounded_by_entries() {
        let cache = VerifyCache::new(CacheSettings { max_entries: 100, ..CacheSettings::default() });
        let now = unix_now();
        for i in 0..5_000 {
            let key = CacheKey::new(1, "GET", Carrier::Header, "/a", &format!("bad-{i}"));
            cache.insert(key, Verdict::Deny(AuthError::BadSignature), now);
        }
        assert!(cache.len() <= 110, "cache grew to {}", cache.len());
    }
}
