//! The memory store: use records in this process, revocations from a file.
//!
//! For one replica only: two replicas would each count their own uses, and
//! a restart forgets every use (the revocations file is read again at
//! start). Revocations come from `store.memory.revocations_file`, which
//! `tollgate revoke` writes and the server re-reads when it changes: no
//! network endpoint can write them.
//!
//! Records are dropped when they expire (each shard swept every
//! [`SWEEP_EVERY`] new uses), never because the map is full: evicting a
//! live use record would hand the link its uses back. The map is split in
//! [`SHARDS`] by the id's digest, so workers rarely wait on each other and
//! a map that grows rehashes a small shard, not everything, under its lock.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use arc_swap::ArcSwap;

use super::model::{
    Admission, AdmitQuery, BytesCharge, Digest, ShareQuery, Sharing, StreamQuery, Streams, Ticket, UseKey,
};
use super::revocations::Revocations;

/// Sweep a shard's expired use records once per this many new uses in it.
const SWEEP_EVERY: u64 = 1024;

/// Independent parts of the use map.
pub const SHARDS: usize = 64;

#[derive(Default)]
struct Shard {
    uses: HashMap<UseKey, UseRecord>,
    begun: u64,
    /// Client networks per credential and route (share detection).
    networks: HashMap<UseKey, Networks>,
    /// Downloads in flight per credential and route: (slot, lease end ms).
    streams: HashMap<UseKey, Vec<(u64, u64)>>,
    /// Bytes sent per credential and route: (total, keep until, unix s).
    bytes: HashMap<UseKey, (u64, u64)>,
}

#[derive(Debug, Default)]
struct Networks {
    seen: Vec<Digest>,
    /// Dropped after this (unix seconds).
    keep_until: u64,
}

#[derive(Debug, Clone, Copy)]
struct UseRecord {
    /// Uses begun (and not given back).
    used: u32,
    /// The current use's grace window ends then (ms since the epoch).
    window_end_ms: u64,
    generation: u64,
    /// Dropped after this (unix seconds).
    keep_until: u64,
}

/// Use records and revocations of one process.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    revocations: ArcSwap<Revocations>,
    revocations_file: Option<PathBuf>,
}

impl MemoryStore {
    /// An empty store; revocations are loaded by [`MemoryStore::reload_revocations`].
    pub fn new(revocations_file: Option<PathBuf>) -> Self {
        let store = MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            revocations: ArcSwap::from_pointee(Revocations::default()),
            revocations_file,
        };
        store.reload_revocations();
        store
    }

    /// The file revocations come from.
    pub fn revocations_file(&self) -> Option<&PathBuf> {
        self.revocations_file.as_ref()
    }

    /// Reads the revocations file again (a missing file holds none; an
    /// unreadable one keeps the revocations already loaded).
    pub fn reload_revocations(&self) {
        let Some(path) = &self.revocations_file else {
            return;
        };
        match Revocations::read(path) {
            Ok(r) => {
                tracing::info!(entries = r.len(), "Revocations loaded");
                self.revocations.store(r.into());
            }
            Err(e) => tracing::error!(error = %e, "Cannot read the revocations file; keeping the loaded ones"),
        }
    }

    pub fn admit(&self, query: &AdmitQuery, now_ms: u64) -> Admission {
        if query.check_revoked && self.revocations.load().id_revoked(query.id, now_ms / 1000) {
            return Admission::Revoked;
        }
        let Some(limit) = &query.limit else {
            return Admission::Allowed;
        };
        let key = UseKey { id: query.id, route: limit.route };
        let Ok(mut shard) = self.shard(&key).lock() else {
            // A panic while holding the lock cannot leave a half-written
            // record (every write is one assignment); refuse anyway.
            return Admission::Replayed;
        };
        let record = shard.uses.get(&key).copied();
        if let Some(r) = record {
            if now_ms < r.window_end_ms {
                return Admission::SameUse;
            }
            if r.used >= limit.uses {
                return Admission::Replayed;
            }
        } else if limit.uses == 0 {
            return Admission::Replayed;
        }
        if limit.peek {
            return Admission::Allowed;
        }
        let old = record.unwrap_or(UseRecord { used: 0, window_end_ms: 0, generation: 0, keep_until: 0 });
        let generation = old.generation + 1;
        shard.uses.insert(
            key,
            UseRecord {
                used: old.used + 1,
                window_end_ms: now_ms + limit.grace_ms,
                generation,
                keep_until: limit.keep_until.max(old.keep_until),
            },
        );
        shard.begun += 1;
        if shard.begun.is_multiple_of(SWEEP_EVERY) {
            let now = now_ms / 1000;
            shard.uses.retain(|_, r| r.keep_until >= now);
        }
        Admission::NewUse(Ticket { key, generation })
    }

    /// Records that `q.network` uses the credential, unless that would
    /// make more than `q.max` networks (and not recording all).
    pub fn share(&self, q: &ShareQuery, now: u64) -> Sharing {
        let Ok(mut shard) = self.shard(&q.key).lock() else {
            return Sharing::Full(q.max);
        };
        let record = shard.networks.entry(q.key).or_default();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        if record.seen.contains(&q.network) {
            return Sharing::Known(count(record.seen.len()));
        }
        if count(record.seen.len()) >= q.max && !q.record_all {
            return Sharing::Full(count(record.seen.len()));
        }
        record.seen.push(q.network);
        record.keep_until = record.keep_until.max(q.keep_until);
        let seen = count(record.seen.len());
        shard.begun += 1;
        if shard.begun.is_multiple_of(SWEEP_EVERY) {
            shard.networks.retain(|_, r| r.keep_until >= now);
        }
        Sharing::Added(seen)
    }

    /// Takes a stream slot unless `q.max` are in use (leases past their end
    /// are dropped first).
    pub fn take_stream(&self, q: &StreamQuery, now_ms: u64) -> Streams {
        let Ok(mut shard) = self.shard(&q.key).lock() else {
            return Streams::Full(q.max);
        };
        let slots = shard.streams.entry(q.key).or_default();
        slots.retain(|(_, until)| *until > now_ms);
        let n = u32::try_from(slots.len()).unwrap_or(u32::MAX);
        if n >= q.max && !q.record_all {
            return Streams::Full(n);
        }
        slots.push((q.slot, now_ms + q.lease_ms));
        Streams::Taken(n + 1)
    }

    /// Frees a stream slot.
    pub fn free_stream(&self, key: &UseKey, slot: u64) {
        if let Ok(mut shard) = self.shard(key).lock()
            && let Some(slots) = shard.streams.get_mut(key)
        {
            slots.retain(|(s, _)| *s != slot);
            if slots.is_empty() {
                shard.streams.remove(key);
            }
        }
    }

    /// Bytes sent so far under a credential.
    pub fn bytes_sent(&self, key: &UseKey, now: u64) -> u64 {
        self.shard(key)
            .lock()
            .ok()
            .and_then(|s| s.bytes.get(key).copied())
            .filter(|(_, until)| *until >= now)
            .map_or(0, |(n, _)| n)
    }

    /// Adds bytes sent under a credential.
    pub fn charge_bytes(&self, c: &BytesCharge, now: u64) {
        if let Ok(mut shard) = self.shard(&c.key).lock() {
            let entry = shard.bytes.entry(c.key).or_insert((0, 0));
            if entry.1 < now {
                *entry = (0, 0);
            }
            entry.0 = entry.0.saturating_add(c.bytes);
            entry.1 = entry.1.max(c.keep_until);
            shard.begun += 1;
            if shard.begun.is_multiple_of(SWEEP_EVERY) {
                shard.bytes.retain(|_, (_, until)| *until >= now);
            }
        }
    }

    pub fn give_back(&self, ticket: &Ticket) {
        if let Ok(mut shard) = self.shard(&ticket.key).lock()
            && let Some(r) = shard.uses.get_mut(&ticket.key)
            && r.generation == ticket.generation
            && r.used > 0
        {
            r.used -= 1;
            r.window_end_ms = 0;
            r.generation += 1;
        }
    }

    pub fn subject_revoked_before(&self, subject: Digest, now: u64) -> Option<u64> {
        self.revocations.load().subject_revoked_before(subject, now)
    }

    /// Use records held now (tests and diagnostics).
    pub fn records(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map_or(0, |s| s.uses.len())).sum()
    }

    fn shard(&self, key: &UseKey) -> &Mutex<Shard> {
        &self.shards[usize::from(key.id.0[0]) % SHARDS]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UseQuery;

    fn query(uses: u32, grace_ms: u64, peek: bool) -> AdmitQuery {
        AdmitQuery {
            id: Digest::id("j1"),
            check_revoked: true,
            limit: Some(UseQuery { route: Digest::route("r"), uses, grace_ms, peek, keep_until: u64::MAX }),
        }
    }

    #[test]
    fn a_use_lasts_its_grace_window_then_is_spent() {
        let s = MemoryStore::new(None);
        let q = query(1, 1000, false);
        assert!(matches!(s.admit(&q, 10_000), Admission::NewUse(_)));
        assert_eq!(s.admit(&q, 10_500), Admission::SameUse);
        assert_eq!(s.admit(&q, 11_000), Admission::Replayed);
        assert_eq!(s.admit(&query(1, 1000, true), 11_000), Admission::Replayed, "HEAD sees it used up");
    }

    #[test]
    fn expired_records_are_swept() {
        let s = MemoryStore::new(None);
        for i in 0..(SHARDS as u64 * SWEEP_EVERY * 2) {
            let q = AdmitQuery {
                id: Digest::id(&i.to_string()),
                check_revoked: false,
                limit: Some(UseQuery { route: Digest::route("r"), uses: 1, grace_ms: 0, peek: false, keep_until: 5 }),
            };
            assert!(matches!(s.admit(&q, 10_000), Admission::NewUse(_)));
        }
        assert!(s.records() < SHARDS * SWEEP_EVERY as usize, "{} records kept", s.records());
    }

    #[test]
    fn head_never_counts() {
        let s = MemoryStore::new(None);
        assert_eq!(s.admit(&query(1, 0, true), 1), Admission::Allowed);
        assert_eq!(s.admit(&query(1, 0, true), 2), Admission::Allowed);
        assert!(matches!(s.admit(&query(1, 0, false), 3), Admission::NewUse(_)));
    }

    #[test]
    fn networks_past_the_limit_are_refused_unless_recording_all() {
        let s = MemoryStore::new(None);
        let q = |net: &str, record_all: bool| ShareQuery {
            key: UseKey { id: Digest::id("j"), route: Digest::route("r") },
            network: Digest::network(net.as_bytes()),
            max: 2,
            record_all,
            keep_until: u64::MAX,
        };
        assert_eq!(s.share(&q("a", false), 1), Sharing::Added(1));
        assert_eq!(s.share(&q("a", false), 1), Sharing::Known(1));
        assert_eq!(s.share(&q("b", false), 1), Sharing::Added(2));
        assert_eq!(s.share(&q("c", false), 1), Sharing::Full(2));
        assert_eq!(s.share(&q("a", false), 1), Sharing::Known(2), "the first networks keep working");
        assert_eq!(s.share(&q("c", true), 1), Sharing::Added(3), "report-only records past the limit");
    }

    #[test]
    fn stream_slots_are_limited_freed_and_leased() {
        let s = MemoryStore::new(None);
        let key = UseKey { id: Digest::id("j"), route: Digest::route("r") };
        let q = |slot: u64| StreamQuery { key, slot, max: 2, record_all: false, lease_ms: 1000 };
        assert_eq!(s.take_stream(&q(1), 0), Streams::Taken(1));
        assert_eq!(s.take_stream(&q(2), 0), Streams::Taken(2));
        assert_eq!(s.take_stream(&q(3), 10), Streams::Full(2));
        s.free_stream(&key, 1);
        assert_eq!(s.take_stream(&q(3), 20), Streams::Taken(2), "a freed slot is taken again");
        assert_eq!(s.take_stream(&q(4), 1500), Streams::Taken(1), "the earlier slots' leases ended");
    }

    #[test]
    fn only_the_opening_ticket_gives_a_use_back_once() {
        let s = MemoryStore::new(None);
        let q = query(2, 0, false);
        let Admission::NewUse(first) = s.admit(&q, 1) else { panic!("first use") };
        let Admission::NewUse(second) = s.admit(&q, 2) else { panic!("second use") };
        s.give_back(&first);
        s.give_back(&second);
        s.give_back(&second);
        assert!(matches!(s.admit(&q, 3), Admission::NewUse(_)), "the second use came back");
        assert_eq!(s.admit(&q, 4), Admission::Replayed, "a stale ticket and a repeated give-back return nothing");
    }
}
