//! The state behind use-limited links and revocation (README: One-time and limited links): a store
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
pub mod model;
pub mod redis;
pub mod revocations;

pub use model::*;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::metrics::{StoreMetrics, StoreOp};

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

    /// Records a client network of a credential (share detection).
    pub async fn share(&self, query: &ShareQuery) -> Result<Sharing, StoreError> {
        self.timed(StoreOp::Share, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.share(query, now_ms() / 1000)),
                Backend::Redis(r) => r.share(query).await,
            }
        })
        .await
    }

    /// Takes a slot for a download on a credential with a stream limit.
    pub async fn take_stream(&self, query: &StreamQuery) -> Result<Streams, StoreError> {
        self.timed(StoreOp::Stream, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.take_stream(query, now_ms())),
                Backend::Redis(r) => r.take_stream(query).await,
            }
        })
        .await
    }

    /// Frees a download's stream slot.
    pub async fn free_stream(&self, key: &UseKey, slot: u64) -> Result<(), StoreError> {
        self.timed(StoreOp::Stream, async {
            match &self.backend {
                Backend::Memory(m) => {
                    m.free_stream(key, slot);
                    Ok(())
                }
                Backend::Redis(r) => r.free_stream(key, slot).await,
            }
        })
        .await
    }

    /// Bytes sent so far under a credential on a route (byte quotas).
    pub async fn bytes_sent(&self, key: &UseKey) -> Result<u64, StoreError> {
        self.timed(StoreOp::Bytes, async {
            match &self.backend {
                Backend::Memory(m) => Ok(m.bytes_sent(key, now_ms() / 1000)),
                Backend::Redis(r) => r.bytes_sent(key).await,
            }
        })
        .await
    }

    /// Adds the bytes one answer sent.
    pub async fn charge_bytes(&self, charge: &BytesCharge) -> Result<(), StoreError> {
        self.timed(StoreOp::Bytes, async {
            match &self.backend {
                Backend::Memory(m) => {
                    m.charge_bytes(charge, now_ms() / 1000);
                    Ok(())
                }
                Backend::Redis(r) => r.charge_bytes(charge).await,
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
