//! The store's vocabulary, spoken by every backend: digests (store keys
//! are never raw ids, subjects or tokens), use queries and their answers,
//! revocations, errors and settings.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;

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

    /// A credential without an id, by its own bytes (share detection).
    pub fn credential(kind: u8, credential: &str) -> Digest {
        let mut value = Vec::with_capacity(credential.len() + 1);
        value.push(kind);
        value.extend_from_slice(credential.as_bytes());
        Digest::of("credential", &value)
    }

    /// A client network (its masked address bytes and prefix length).
    pub fn network(bytes: &[u8]) -> Digest {
        Digest::of("net", bytes)
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

/// One client network using a credential on a route (share detection).
#[derive(Debug, Clone, Copy)]
pub struct ShareQuery {
    /// The credential (its id, or its digest) and the route.
    pub key: UseKey,
    pub network: Digest,
    /// Networks allowed.
    pub max: u32,
    /// Record a network past `max` too (report-only: counted, not refused).
    pub record_all: bool,
    /// Keep the record until then (unix seconds): the credential's expiry.
    pub keep_until: u64,
}

/// The store's answer to [`ShareQuery`]: the networks known after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// The network had used the credential before.
    Known(u32),
    /// A new network, recorded (past `max` only when recording all).
    Added(u32),
    /// A new network past `max`, not recorded.
    Full(u32),
}

/// A download about to start on a credential with a stream limit.
#[derive(Debug, Clone, Copy)]
pub struct StreamQuery {
    pub key: UseKey,
    /// This download's slot (random).
    pub slot: u64,
    pub max: u32,
    /// Take a slot past `max` too (report-only).
    pub record_all: bool,
    /// The slot is freed this long after it was taken, if nothing frees it
    /// before (a replica that died holding it).
    pub lease_ms: u64,
}

/// The store's answer to [`StreamQuery`]: the streams in flight with this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    Taken(u32),
    /// Every slot is in use (not taken).
    Full(u32),
}

/// Bytes sent under one credential on a route (byte quotas).
#[derive(Debug, Clone, Copy)]
pub struct BytesCharge {
    pub key: UseKey,
    pub bytes: u64,
    /// Keep the total until then (unix seconds): the credential's expiry.
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

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
