//! The state behind use-limited links and revocation (SPEC §11): a store
//! that every replica shares (Redis, Valkey) or that lives in this process
//! (memory, one replica).
//!
//! One interface, [`Store`], over two backends:
//! - [`Store::admit`]: one atomic step per request — is the credential's id
//!   revoked, and may it be used (a new use, the same use inside its grace
//!   window, or used up)? A new use comes with a [`Ticket`];
//! - [`Store::give_back`]: a use whose answer was not a success is returned
//!   (only by the ticket that opened it, so a late give-back never undoes a
//!   newer use);
//! - [`Store::subject_revoked_before`]: the instant before which everything
//!   a subject was issued is revoked;
//! - [`Store::revoke`]: written by `tollgate revoke`.
//!
//! Invariants:
//! - keys are SHA-256 digests of a domain tag and the value ([`Digest`]),
//!   never a raw id, subject or token;
//! - a use record expires with the credential, a revocation when every
//!   credential it can match has expired, so the store never grows without
//!   bound;
//! - every operation is bounded by the configured timeout: a dead store
//!   costs one timeout, never a hung request; errors are counted by
//!   operation, and timed.

pub mod memory;
pub mod redis;
pub mod revocations;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;

use crate::metrics::{StoreMetrics, StoreOp};

/// A store key's identity: SHA-256 over a domain tag and a value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    fn of(domain: &str, value: &[u8]) -> Digest {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"tollgate/");
        ctx.update(domain.as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Digest(out)
    }

    /// A credential id (`jti`).
    pub fn id(id: &str) -> Digest {
        Digest::of("jti", id.as_bytes())
    }

    /// A subject (`sub`).
    pub fn subject(sub: &str) -> Digest {
        Digest::of("sub", sub.as_bytes())
    }

    /// A route, by name (stable across replicas and reorderings of the file).
    pub fn route(name: &str) -> Digest {
        Digest::of("route", name.as_bytes())
    }

    /// Lower-case hex.
    pub fn hex(&self) -> String {
        crate::normalize::encode_hex(&self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Digest> {
        crate::normalize::decode_hex(text.as_bytes())?.try_into().ok().map(Digest)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({}…)", &self.hex()[..12])
    }
}

/// A use of credential `id` on route `route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UseKey {
    pub id: Digest,
    pub route: Digest,
}

/// What one request asks of the store.
#[derive(Debug, Clone, Copy)]
pub struct AdmitQuery {
    /// The credential's id.
    pub id: Digest,
    /// Refuse the id if it is revoked.
    pub check_revoked: bool,
    /// Count a use, if the route limits them.
    pub limit: Option<UseQuery>,
}

/// A use to count.
#[derive(Debug, Clone, Copy)]
pub struct UseQuery {
    pub route: Digest,
    /// Uses allowed.
    pub uses: u32,
    /// How long one use lasts after it began, milliseconds.
    pub grace_ms: u64,
    /// Look only (HEAD): refuse if used up, never begin a use.
    pub peek: bool,
    /// Keep the record until then (unix seconds): the credential's expiry.
    pub keep_until: u64,
}

/// The store's answer to [`AdmitQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Not revoked, and nothing to count (no limit, or HEAD).
    Allowed,
    /// Inside the grace window of a use that already began.
    SameUse,
    /// A new use began; give it back with the ticket if the answer fails.
    NewUse(Ticket),
    /// Used up.
    Replayed,
    /// The id is revoked.
    Revoked,
}

/// The right to give back one use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub key: UseKey,
    /// Which use: uses given back and begun again get new generations.
    pub generation: u64,
}

/// A revocation, as `tollgate revoke` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Credential `id` is refused until `until` (unix seconds).
    Id { id: Digest, until: u64 },
    /// Credentials of `subject` issued before `before` are refused until `until`.
    Subject { subject: Digest, before: u64, until: u64 },
}

/// The store did not answer, or answered nonsense. The text names no key
/// and no secret (Redis URLs are never part of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Unsupported(&'static str),
}

/// Which store, as compiled from `store:`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSettings {
    Memory(MemorySettings),
    Redis(RedisSettings),
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings::Memory(MemorySettings::default())
    }
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSettings::Memory(m) => write!(f, "memory({:?})", m.revocations_file),
            StoreSettings::Redis(r) => write!(f, "redis({:?}, {} url(s))", r.mode, r.urls.len()),
        }
    }
}

/// `store: {memory: ...}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemorySettings {
    /// Revocations written by `tollgate revoke`, read at start and whenever
    /// the file changes.
    pub revocations_file: Option<PathBuf>,
}

/// How the Redis URLs are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    /// One server (`redis://` or `rediss://`).
    Standalone,
    /// Seed nodes of a Redis Cluster.
    Cluster,
    /// Sentinels watching `master`.
    Sentinel { master: String },
}

/// `store: {redis: ...}`. The URLs may hold a password: never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub urls: Vec<String>,
    pub mode: RedisMode,
    /// Prepended to every key (several deployments can share one Redis).
    pub key_prefix: String,
    /// Longest any operation may take, connecting included.
    pub timeout: Duration,
    /// Longest a connection attempt may take.
    pub connect_timeout: Duration,
    /// Keep `/readyz` at 503 while the store is unreachable.
    pub required_for_ready: bool,
}

/// The shared store, with its metrics.
pub struct Store {
    backend: Backend,
    metrics: StoreMetrics,
    /// When a store failure was last logged (ms since the epoch): at most
    /// one line a second, however many requests fail during an outage.
    last_logged_ms: AtomicU64,
}

enum Backend {
    Memory(memory::MemoryStore),
    Redis(Box<redis::RedisStore>),
}

impl Store {
    /// Builds the store (a Redis store connects lazily, on first use).
    pub fn new(settings: &StoreSettings, metrics: StoreMetrics) -> Result<Store, String> {
        let backend = match settings {
            StoreSettings::Memory(m) => Backend::Memory(memory::MemoryStore::new(m.revocations_file.clone())),
            StoreSettings::Redis(r) => Backend::Redis(Box::new(redis::RedisStore::new(r)?)),
        };
        Ok(Store { backend, metrics, last_logged_ms: AtomicU64::new(0) })
    }

    /// `memory` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// The memory backend, when that is the one (its revocations file is
    /// watched by the server).
    pub fn memory(&self) -> Option<&memory::MemoryStore> {
        match &self.backend {
            Backend::Memory(m) => Some(m),
            Backend::Redis(_) => None,
        }
    }

    /// Whether `/readyz` should turn 503 while the store is unreachable.
    pub fn required_for_ready(&self) -> bool {
        match &self.backend {
            Backend::Memory(_) => false,
            Backend::Redis(r) => r.required_for_ready(),
        }
    }

    /// Checks a revocation by id and counts a use, atomically.
    pub async fn admit(&self, query: &AdmitQuery) -> Result<Admission, StoreError> {
        self.timed(StoreOp::Admit, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.admit(query, now_ms())),
                Backend::Redis(r) => r.admit(query).await,
            }
        })
        .await
    }

    /// The instant (unix seconds) before which everything `subject` was
    /// issued is revoked, if any.
    pub async fn subject_revoked_before(&self, subject: Digest) -> Result<Option<u64>, StoreError> {
        self.timed(StoreOp::Subject, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.subject_revoked_before(subject, now_ms() / 1000)),
                Backend::Redis(r) => r.subject_revoked_before(subject).await,
            }
        })
        .await
    }

    /// Gives back the use `ticket` began.
    pub async fn give_back(&self, ticket: &Ticket) -> Result<(), StoreError> {
        self.timed(StoreOp::GiveBack, async {
            match &self.backend {
                Backend::Memory(m) => {
                    m.give_back(ticket);
                    Ok(())
                }
                Backend::Redis(r) => r.give_back(ticket).await,
            }
        })
        .await
    }

    /// Writes a revocation. The memory store takes revocations from its
    /// file only (see [`revocations`]), so this fails for it.
    pub async fn revoke(&self, revocation: &Revocation) -> Result<(), StoreError> {
        self.timed(StoreOp::Revoke, async {
            match &self.backend {
                Backend::Memory(_) => Err(StoreError::Unsupported(
                    "the memory store reads revocations from store.memory.revocations_file",
                )),
                Backend::Redis(r) => r.revoke(revocation).await,
            }
        })
        .await
    }

    /// Whether the store answers, from the control plane (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.timed(StoreOp::Ping, async {
            match &self.backend {
                Backend::Memory(_) => Ok(()),
                Backend::Redis(r) => r.ping().await,
            }
        })
        .await
    }

    async fn timed<T>(&self, op: StoreOp, work: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = work.await;
        self.metrics.duration(op).observe(start.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics.error(op).inc();
            let now = now_ms();
            let last = self.last_logged_ms.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= 1000
                && self.last_logged_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            {
                tracing::warn!(op = op.label(), error = %e, "Store operation failed (at most one line a second)");
            }
        }
        result
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_domain_separated_and_round_trip() {
        assert_ne!(Digest::id("alice"), Digest::subject("alice"));
        assert_ne!(Digest::id("alice"), Digest::route("alice"));
        let d = Digest::id("link-1");
        assert_eq!(Digest::from_hex(&d.hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
        assert!(!format!("{d:?}").contains(&d.hex()), "Debug shows a prefix only");
    }
}
