//! Stage 2: pick the route — longest matching path prefix, host-specific
//! routes before host-less ones (README: Configuration).
//!
//! Prefixes match on segment boundaries: `/u1` matches `/u1` and `/u1/x`,
//! never `/u10`. Matching runs on the decoded, normal-form path, which is
//! the path the upstream will see after its own decoding.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use http::Method;

use crate::auth::RouteAuth;
use crate::metrics::RouteMetrics;
pub mod cors;
pub mod state;

use crate::upstream::Upstream;
use cors::Cors;
use state::StatePolicy;

/// A compiled route.
pub struct Route {
    /// Position in the file; part of verification cache keys.
    pub id: u32,
    pub name: String,
    pub prefix: String,
    /// Lower-case host without port; `None` matches any host.
    pub host: Option<String>,
    pub methods: Vec<Method>,
    /// `None` for `auth: none`.
    pub auth: Option<RouteAuth>,
    pub upstream: Arc<Upstream>,
    pub allow_empty_segments: bool,
    pub allow_encoded_slashes: bool,
    /// Largest request body, bytes (0: no limit).
    pub max_body: u64,
    pub require_content_type: Option<String>,
    /// CORS rules, when the route is read cross-origin.
    pub cors: Option<Cors>,
    /// Forward the client's `Authorization` header (unless it carried the
    /// credential tollgate verified).
    pub forward_authorization: bool,
    /// Use limits and revocation (README: One-time and limited links), checked after verification.
    pub state: Option<StatePolicy>,
    pub metrics: RouteMetrics,
    /// Serve what verification refuses, counted and logged (`auth.report_only`).
    pub report_only: bool,
    /// Answers go no faster than (bytes a second, after a burst of bytes).
    pub response_rate: Option<(u64, u64)>,
    /// Log a record of every download it answers (README: Leaked links).
    pub download_records: bool,
    /// Rewrite the video manifests it answers (README: Video).
    pub manifests: Option<crate::manifest::ManifestSettings>,
}

impl Route {
    /// Whether the route answers `method`.
    pub fn allows(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }

    /// Value of the `Allow` header for 405 answers.
    pub fn allow_header(&self) -> String {
        self.methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
    }
}

/// The route table: every route in file order, and an index that finds
/// the longest matching prefix in time independent of the table's size.
///
/// A path's matching prefixes are its own leading bytes up to a segment
/// boundary: `/a/b/c.txt` can only be matched by `/a/b/c.txt`, `/a/b/`,
/// `/a/b`, `/a/`, `/a` or `/`. The lookup tries those, longest first and
/// only at lengths some prefix has, one hash probe each; host-specific
/// routes first, then host-less ones (README: Configuration). Equal prefixes: the first
/// in the file wins.
pub struct RouteTable {
    /// File order.
    routes: Vec<Arc<Route>>,
    by_host: HashMap<Box<str>, PrefixIndex, FxBuild>,
    any: PrefixIndex,
}

/// Routes of one host class by prefix.
#[derive(Default)]
struct PrefixIndex {
    by_prefix: HashMap<Box<[u8]>, Arc<Route>, FxBuild>,
    /// Which prefix lengths exist (bit `n`: a prefix of `n` bytes).
    lengths: Vec<u64>,
}

impl PrefixIndex {
    fn insert(&mut self, route: &Arc<Route>) {
        let len = route.prefix.len();
        if self.lengths.len() <= len / 64 {
            self.lengths.resize(len / 64 + 1, 0);
        }
        self.lengths[len / 64] |= 1 << (len % 64);
        self.by_prefix.entry(route.prefix.as_bytes().into()).or_insert_with(|| route.clone());
    }

    fn has_length(&self, len: usize) -> bool {
        self.lengths.get(len / 64).is_some_and(|word| word & (1 << (len % 64)) != 0)
    }

    fn lookup(&self, path: &str) -> Option<&Arc<Route>> {
        let bytes = path.as_bytes();
        let longest = bytes.len().min(self.lengths.len() * 64);
        (1..=longest).rev().find_map(|n| {
            let boundary = bytes[n - 1] == b'/' || n == bytes.len() || bytes[n] == b'/';
            if boundary && self.has_length(n) { self.by_prefix.get(&bytes[..n]) } else { None }
        })
    }
}

impl RouteTable {
    /// Indexes routes given in file order.
    pub fn new(routes: Vec<Arc<Route>>) -> Self {
        let mut by_host: HashMap<Box<str>, PrefixIndex, FxBuild> = HashMap::default();
        let mut any = PrefixIndex::default();
        for route in &routes {
            match &route.host {
                Some(host) => by_host.entry(host.as_str().into()).or_default().insert(route),
                None => any.insert(route),
            }
        }
        RouteTable { routes, by_host, any }
    }

    /// The route for a request. `host` is the request's host without port,
    /// lower case.
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        host.and_then(|h| self.by_host.get(h)).and_then(|index| index.lookup(path)).or_else(|| self.any.lookup(path))
    }

    /// Routes in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// FxHash (rustc's): a multiply-rotate hash, several times faster than
/// SipHash on short keys, with splitmix64's finalizer so that keys which
/// differ only in their first bytes (`/t1/`, `/t2/`; a product only
/// carries low bits upward) still differ in the low bits the table indexes
/// by. Keys are the configuration's own prefixes and hosts, so hash
/// flooding is not a concern.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

type FxBuild = BuildHasherDefault<FxHasher>;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(SEED);
        }
    }

    fn finish(&self) -> u64 {
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
}
