//! A route's use-limit and revocation policy (README: One-time and limited links), compiled once:
//! what the admit phase (`proxy::admit`) checks after verification.

use std::time::Duration;

use crate::metrics::UseCounters;
use crate::store::Digest;

/// A route's use limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UseLimit {
    pub uses: u32,
    pub grace: Duration,
}

/// A route's share detection: client networks per credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLimit {
    pub max_networks: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Count and log, never refuse.
    pub report_only: bool,
}

/// A route's concurrent-stream limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimit {
    pub max_streams: u32,
    pub lease: Duration,
    pub report_only: bool,
}

/// A route's byte quota per credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteQuota {
    pub bytes: u64,
    pub report_only: bool,
}

/// What the stage checks on one route, compiled once.
pub struct StatePolicy {
    pub use_limit: Option<UseLimit>,
    pub revocation: bool,
    pub share: Option<ShareLimit>,
    pub share_counters: crate::metrics::ShareCounters,
    pub streams: Option<StreamLimit>,
    pub quota: Option<ByteQuota>,
    /// Downloads in flight on this replica under the stream limit.
    pub streams_in_use: Option<prometheus::IntGauge>,
    /// Serve unchecked when the store fails (otherwise 503).
    pub fail_open: bool,
    /// The route, as store keys name it.
    pub route: Digest,
    /// Seconds a credential may be used past its `exp` (JWT leeway): its
    /// use record is kept that much longer.
    pub leeway: u64,
    /// How long a revocation must be kept for this route (seconds): the
    /// longest lifetime its kinds accept; 0 without revocation.
    pub revocation_keep: u64,
    pub counters: UseCounters,
}
