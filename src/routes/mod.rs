//! Stage 2: pick the route — longest matching path prefix, host-specific
//! routes before host-less ones (SPEC §1.3).
//!
//! Prefixes match on segment boundaries: `/u1` matches `/u1` and `/u1/x`,
//! never `/u10`. Matching runs on the decoded, normal-form path, which is
//! the path the upstream will see after its own decoding.

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
    /// Use limits and revocation (SPEC §11), checked after verification.
    pub state: Option<StatePolicy>,
    pub metrics: RouteMetrics,
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

    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host
            && host.is_none_or(|h| !h.eq_ignore_ascii_case(want))
        {
            return false;
        }
        crate::normalize::prefix_matches(&self.prefix, path)
    }
}

/// Routes in match order.
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Orders routes: host-specific first, then longer prefixes first; ties
    /// keep file order.
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by_key(|r| (r.host.is_none(), std::cmp::Reverse(r.prefix.len())));
        RouteTable { routes }
    }

    /// The route for a request. `host` is the request's host without port.
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matches(host, path))
    }

    /// Routes in match order.
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
