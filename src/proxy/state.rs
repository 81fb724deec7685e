//! What lives longer than one request: the configuration generation with
//! its verdict cache, the state every connection shares, and the facts of
//! one connection.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::auth::VerifyCache;
use crate::config::{Config, Limits};
use crate::metrics::Metrics;
use crate::splice::Outlet;
use crate::store::Store;

/// One configuration generation with the state that lives and dies with it.
pub struct Runtime {
    pub config: Config,
    pub cache: VerifyCache,
}

impl Runtime {
    pub fn new(config: Config) -> Self {
        let cache = VerifyCache::new(config.cache);
        Runtime { config, cache }
    }
}

/// State shared by every connection.
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Arc<Metrics>,
    /// The limits the server started with (the listener's buffers are sized
    /// by them, so a reload does not change them).
    pub limits: Limits,
    /// Use counts and revocations: made at start and kept across reloads,
    /// so a reload never hands a link its uses back.
    pub store: Arc<Store>,
}

/// Facts about the connection a request came on.
#[derive(Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// Plain TCP: large answers can be spliced into it.
    pub outlet: Option<Arc<Outlet>>,
}
