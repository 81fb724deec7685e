//! The Redis (or Valkey) store: standalone, Sentinel or Cluster, shared by
//! every replica.
//!
//! Atomicity: a request's revocation check and use count are one Lua script
//! on one key pair, so N replicas firing one link at once see exactly
//! `uses` new uses. Its clock is the server's (`TIME`), so replicas with
//! skewed clocks agree on grace windows.
//!
//! Keys (`<prefix>` defaults to `tollgate:`; digests are SHA-256, hex):
//! ```text
//! <prefix>{<id digest>}:revoked            revoked id, expires with the revocation
//! <prefix>{<id digest>}:use:<route digest> hash n (uses), w (window end, ms), g (generation)
//! <prefix>{<id digest>}:nets:<route digest> set of client-network digests (share detection)
//! <prefix>{<id digest>}:streams:<route digest> sorted set: stream slot -> lease end (ms)
//! <prefix>{<id digest>}:bytes:<route digest> bytes sent under the credential (byte quotas)
//! <prefix>subject:<subject digest>         "revoked before" instant, unix seconds
//! ```
//! The `{…}` hash tag puts an id's two keys in one Cluster slot, so the
//! script may touch both.
//!
//! Connections: one multiplexed connection per worker thread (driven by that
//! worker's runtime, like the upstream pools), made on first use. A failed
//! connection is dropped and made again by a later request; after a failed
//! attempt, requests fail at once for [`RECONNECT_BACKOFF`] instead of all
//! waiting on a dead server. Every operation, connecting included, is
//! bounded by `timeout`.
//!
//! Client crate: `redis` (redis-rs) rather than `fred`. Both are maintained,
//! run on tokio, speak TLS through rustls and know Cluster and Sentinel.
//! `fred` brings its own connection management: reconnect policies and
//! commands queued while it reconnects, which would hold a request on a
//! dead server instead of letting it fail closed within `timeout`. With
//! `redis` the store owns those decisions (one multiplexed connection per
//! worker, made on demand, dropped on error, the backoff above), and
//! `Script` runs `EVALSHA` with its `SCRIPT LOAD` fallback for us.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{SentinelClient, SentinelServerType};
use ::redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Script, Value};

use super::model::{
    Admission, AdmitQuery, BytesCharge, Digest, RedisMode, RedisSettings, Revocation, ShareQuery, Sharing, StoreError,
    StreamQuery, Streams, Ticket, UseKey, now_ms,
};
use crate::worker::{self, MAX_WORKERS};

/// After a failed connection attempt, how long requests fail at once.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

/// Revocation check and use count, atomically.
/// KEYS: revoked id, use record. ARGV: check revoked (0/1), count (0/1),
/// uses, grace ms, peek (0/1), keep until (unix s).
/// Returns {0 allowed | 1 same use | 2 new use | 3 replayed | 4 revoked, generation}.
const ADMIT: &str = r"
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {4, 0} end
if ARGV[2] ~= '1' then return {0, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rec = redis.call('HMGET', KEYS[2], 'n', 'w')
local n = tonumber(rec[1]) or 0
if now < (tonumber(rec[2]) or 0) then return {1, 0} end
if n >= tonumber(ARGV[3]) then return {3, 0} end
if ARGV[5] == '1' then return {0, 0} end
local g = redis.call('HINCRBY', KEYS[2], 'g', 1)
redis.call('HSET', KEYS[2], 'n', n + 1, 'w', now + tonumber(ARGV[4]))
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[6]) - tonumber(t[1]) then
  redis.call('EXPIREAT', KEYS[2], ARGV[6])
end
return {2, g}
";

/// Gives a use back if `g` is still the use's generation, and ends that
/// generation (so a second give-back of the same ticket does nothing).
/// KEYS: use record. ARGV: generation.
const GIVE_BACK: &str = r"
local rec = redis.call('HMGET', KEYS[1], 'n', 'g')
local n = tonumber(rec[1]) or 0
if rec[2] == ARGV[1] and n > 0 then
  redis.call('HSET', KEYS[1], 'n', n - 1, 'w', 0)
  redis.call('HINCRBY', KEYS[1], 'g', 1)
  return 1
end
return 0
";

/// Sets a revocation: value = max(old, ARGV[1]); expiry = max(old, ARGV[2]).
/// KEYS: revocation key. ARGV: value (instant or 1), until (unix s).
const REVOKE: &str = r"
local t = redis.call('TIME')
local ttl = tonumber(ARGV[2]) - tonumber(t[1])
if ttl <= 0 then return 0 end
local old = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local left = redis.call('TTL', KEYS[1])
if left > ttl then ttl = left end
local value = tonumber(ARGV[1])
if old > value then value = old end
redis.call('SET', KEYS[1], value, 'EX', ttl)
return 1
";

/// Records a client network of a credential, within a limit.
/// KEYS: the credential's network set. ARGV: network, max, record all
/// (0/1), keep until (unix s).
/// Returns {0 known | 1 added | 2 full, networks}.
const SHARE: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {0, redis.call('SCARD', KEYS[1])} end
local n = redis.call('SCARD', KEYS[1])
if n >= tonumber(ARGV[2]) and ARGV[3] ~= '1' then return {2, n} end
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[4]) - tonumber(redis.call('TIME')[1]) then
  redis.call('EXPIREAT', KEYS[1], ARGV[4])
end
return {1, n + 1}
";

/// Takes a stream slot within a limit; leases past their end are dropped.
/// KEYS: the credential's stream set. ARGV: slot, max, record all (0/1),
/// lease ms. Returns {1 taken | 0 full, streams}.
const TAKE_STREAM: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[2]) and ARGV[3] ~= '1' then return {0, n} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return {1, n + 1}
";

/// Adds bytes to a credential's total. KEYS: the total. ARGV: bytes, keep
/// until (unix s).
const CHARGE: &str = r"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) - tonumber(redis.call('TIME')[1]) then
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
end
return n
";

/// A connection of any of the three kinds.
#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

enum Target {
    Single(Client),
    Cluster(ClusterClient),
    /// Asked for the current master on every (re)connection, so a failover
    /// is followed by the next connection.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// One worker's connection.
#[derive(Default)]
struct Slot {
    /// The connection and its number (to drop only the one that failed).
    conn: Mutex<Option<(u64, Conn)>>,
    /// One connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    /// No attempt before then (ms since the epoch).
    retry_at_ms: AtomicU64,
    made: AtomicU64,
}

/// The Redis backend.
pub struct RedisStore {
    target: Target,
    config: AsyncConnectionConfig,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    required_for_ready: bool,
    /// One per worker, and one for the control plane (the last).
    slots: Box<[Slot]>,
    admit: Script,
    give_back: Script,
    revoke: Script,
    share: Script,
    take_stream: Script,
    charge: Script,
}

/// The error text of a Redis error: its kind and message, never the URL.
fn describe(e: &RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Checks the URLs and builds the clients; nothing connects yet.
    pub fn new(settings: &RedisSettings) -> Result<RedisStore, String> {
        let url_error = |e: RedisError| format!("not a Redis URL ({:?})", e.kind());
        let target = match &settings.mode {
            RedisMode::Standalone => match settings.urls.as_slice() {
                [url] => Target::Single(Client::open(url.as_str()).map_err(url_error)?),
                _ => return Err("a standalone Redis takes exactly one URL".to_owned()),
            },
            RedisMode::Cluster => Target::Cluster(
                ClusterClient::builder(settings.urls.iter().map(String::as_str))
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.timeout)
                    .build()
                    .map_err(url_error)?,
            ),
            RedisMode::Sentinel { master } => Target::Sentinel(tokio::sync::Mutex::new(
                SentinelClient::build(
                    settings.urls.iter().map(String::as_str).collect(),
                    master.clone(),
                    None,
                    SentinelServerType::Master,
                )
                .map_err(url_error)?,
            )),
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.timeout));
        Ok(RedisStore {
            target,
            config,
            prefix: settings.key_prefix.clone(),
            timeout: settings.timeout,
            connect_timeout: settings.connect_timeout,
            required_for_ready: settings.required_for_ready,
            slots: (0..=MAX_WORKERS).map(|_| Slot::default()).collect(),
            admit: Script::new(ADMIT),
            give_back: Script::new(GIVE_BACK),
            revoke: Script::new(REVOKE),
            share: Script::new(SHARE),
            take_stream: Script::new(TAKE_STREAM),
            charge: Script::new(CHARGE),
        })
    }

    pub fn required_for_ready(&self) -> bool {
        self.required_for_ready
    }

    fn revoked_key(&self, id: Digest) -> String {
        format!("{}{{{}}}:revoked", self.prefix, id.hex())
    }

    fn use_key(&self, key: &UseKey) -> String {
        format!("{}{{{}}}:use:{}", self.prefix, key.id.hex(), &key.route.hex()[..32])
    }

    fn networks_key(&self, key: &UseKey) -> String {
        format!("{}{{{}}}:nets:{}", self.prefix, key.id.hex(), &key.route.hex()[..32])
    }

    fn streams_key(&self, key: &UseKey) -> String {
        format!("{}{{{}}}:streams:{}", self.prefix, key.id.hex(), &key.route.hex()[..32])
    }

    fn bytes_key(&self, key: &UseKey) -> String {
        format!("{}{{{}}}:bytes:{}", self.prefix, key.id.hex(), &key.route.hex()[..32])
    }

    fn subject_key(&self, subject: Digest) -> String {
        format!("{}subject:{}", self.prefix, subject.hex())
    }

    /// This thread's connection, made if needed.
    async fn connection(&self, slot: usize) -> Result<(u64, Conn), StoreError> {
        let s = &self.slots[slot];
        let current = || s.conn.lock().ok().and_then(|c| c.clone());
        if let Some(c) = current() {
            return Ok(c);
        }
        let _one = s.connecting.lock().await;
        if let Some(c) = current() {
            return Ok(c);
        }
        if now_ms() < s.retry_at_ms.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("not connected (waiting before the next attempt)".to_owned()));
        }
        let attempt = async {
            match &self.target {
                Target::Single(client) => {
                    client.get_multiplexed_async_connection_with_config(&self.config).await.map(Conn::Single)
                }
                Target::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
                Target::Sentinel(client) => {
                    client.lock().await.get_async_connection_with_config(&self.config).await.map(Conn::Single)
                }
            }
        };
        let made = match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                s.retry_at_ms.store(now_ms() + RECONNECT_BACKOFF.as_millis() as u64, Ordering::Relaxed);
                return Err(describe(&e));
            }
            Err(_) => {
                s.retry_at_ms.store(now_ms() + RECONNECT_BACKOFF.as_millis() as u64, Ordering::Relaxed);
                return Err(StoreError::Timeout(self.connect_timeout));
            }
        };
        let number = s.made.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut c) = s.conn.lock() {
            *c = Some((number, made.clone()));
        }
        Ok((number, made))
    }

    /// Forgets connection `number` of `slot` (a later request reconnects).
    fn drop_connection(&self, slot: usize, number: u64) {
        if let Ok(mut c) = self.slots[slot].conn.lock()
            && c.as_ref().is_some_and(|(n, _)| *n == number)
        {
            *c = None;
        }
    }

    /// Runs `op` on this worker's connection within the timeout. A
    /// connection that failed or hung is dropped.
    async fn run<T, F>(&self, slot: usize, op: impl FnOnce(Conn) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        let mut used = None;
        let work = async {
            let (number, conn) = self.connection(slot).await?;
            used = Some(number);
            op(conn).await.map_err(|e| {
                if e.is_unrecoverable_error() || e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    self.drop_connection(slot, number);
                }
                describe(&e)
            })
        };
        let result = tokio::time::timeout(self.timeout, work).await;
        match result {
            Ok(r) => r,
            Err(_) => {
                if let Some(number) = used {
                    self.drop_connection(slot, number);
                }
                Err(StoreError::Timeout(self.timeout))
            }
        }
    }

    pub async fn admit(&self, q: &AdmitQuery) -> Result<Admission, StoreError> {
        let use_key = q.limit.as_ref().map(|l| UseKey { id: q.id, route: l.route });
        let limit =
            q.limit.unwrap_or(super::model::UseQuery { route: q.id, uses: 0, grace_ms: 0, peek: true, keep_until: 0 });
        let revoked = self.revoked_key(q.id);
        let record = use_key.as_ref().map_or_else(|| revoked.clone(), |k| self.use_key(k));
        let flag = |b: bool| if b { "1" } else { "0" };
        let (code, generation): (i64, u64) = self
            .run(worker::current(), |mut conn| async move {
                self.admit
                    .key(&revoked)
                    .key(&record)
                    .arg(flag(q.check_revoked))
                    .arg(flag(q.limit.is_some()))
                    .arg(limit.uses)
                    .arg(limit.grace_ms)
                    .arg(flag(limit.peek))
                    .arg(limit.keep_until)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match (code, use_key) {
            (0, _) => Admission::Allowed,
            (1, _) => Admission::SameUse,
            (2, Some(key)) => Admission::NewUse(Ticket { key, generation }),
            (3, _) => Admission::Replayed,
            (4, _) => Admission::Revoked,
            _ => return Err(StoreError::Unavailable(format!("unexpected answer {code} from the admit script"))),
        })
    }

    pub async fn share(&self, q: &ShareQuery) -> Result<Sharing, StoreError> {
        let key = self.networks_key(&q.key);
        let network = q.network.hex();
        let (code, n): (i64, u32) = self
            .run(worker::current(), |mut conn| async move {
                self.share
                    .key(&key)
                    .arg(&network[..32])
                    .arg(q.max)
                    .arg(if q.record_all { "1" } else { "0" })
                    .arg(q.keep_until)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match code {
            0 => Sharing::Known(n),
            1 => Sharing::Added(n),
            2 => Sharing::Full(n),
            _ => return Err(StoreError::Unavailable(format!("unexpected answer {code} from the share script"))),
        })
    }

    pub async fn take_stream(&self, q: &StreamQuery) -> Result<Streams, StoreError> {
        let key = self.streams_key(&q.key);
        let (taken, n): (i64, u32) = self
            .run(worker::current(), |mut conn| async move {
                self.take_stream
                    .key(&key)
                    .arg(q.slot)
                    .arg(q.max)
                    .arg(if q.record_all { "1" } else { "0" })
                    .arg(q.lease_ms)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(if taken == 1 { Streams::Taken(n) } else { Streams::Full(n) })
    }

    pub async fn free_stream(&self, key: &UseKey, slot: u64) -> Result<(), StoreError> {
        let key = self.streams_key(key);
        self.run(worker::current(), |mut conn| async move {
            ::redis::cmd("ZREM").arg(&key).arg(slot).query_async::<i64>(&mut conn).await
        })
        .await
        .map(|_| ())
    }

    pub async fn bytes_sent(&self, key: &UseKey) -> Result<u64, StoreError> {
        let key = self.bytes_key(key);
        self.run(worker::current(), |mut conn| async move {
            ::redis::cmd("GET").arg(&key).query_async::<Option<u64>>(&mut conn).await
        })
        .await
        .map(Option::unwrap_or_default)
    }

    pub async fn charge_bytes(&self, c: &BytesCharge) -> Result<(), StoreError> {
        let key = self.bytes_key(&c.key);
        let _: i64 = self
            .run(worker::current(), |mut conn| async move {
                self.charge.key(&key).arg(c.bytes).arg(c.keep_until).invoke_async(&mut conn).await
            })
            .await?;
        Ok(())
    }

    pub async fn give_back(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let key = self.use_key(&ticket.key);
        let _: i64 = self
            .run(worker::current(), |mut conn| async move {
                self.give_back.key(&key).arg(ticket.generation).invoke_async(&mut conn).await
            })
            .await?;
        Ok(())
    }

    pub async fn subject_revoked_before(&self, subject: Digest) -> Result<Option<u64>, StoreError> {
        let key = self.subject_key(subject);
        self.run(worker::current(), |mut conn| async move {
            ::redis::cmd("GET").arg(&key).query_async::<Option<u64>>(&mut conn).await
        })
        .await
    }

    pub async fn revoke(&self, r: &Revocation) -> Result<(), StoreError> {
        let (key, value, until) = match *r {
            Revocation::Id { id, until } => (self.revoked_key(id), 1, until),
            Revocation::Subject { subject, before, until } => (self.subject_key(subject), before, until),
        };
        let _: i64 = self
            .run(MAX_WORKERS, |mut conn| async move {
                self.revoke.key(&key).arg(value).arg(until).invoke_async(&mut conn).await
            })
            .await?;
        Ok(())
    }

    /// PING on the control plane's own connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(MAX_WORKERS, |mut conn| async move { ::redis::cmd("PING").query_async::<String>(&mut conn).await })
            .await
            .map(|_| ())
    }
}
