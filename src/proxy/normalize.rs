//! Phase 1, normalize: the request head within tollgate's exact limits
//! (414/431; hyper's own buffers are looser), the target in origin form
//! over HTTP/1 (an absolute-form host is never used for anything), and the
//! path in normal form (docs/reference.md: Signed URLs, `crate::normalize`).

use http::Version;
use http::request::Parts;

use super::answers::Rejection;
use crate::config::Limits;
use crate::normalize::{NormalPath, check_path};

/// The request's decoded path, or why the head is refused.
pub fn head<'p>(limits: &Limits, parts: &'p Parts) -> Result<NormalPath<'p>, Rejection> {
    if parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len()) > limits.max_uri_bytes {
        return Err(Rejection::UriTooLong);
    }
    let head_bytes: usize = parts.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if head_bytes > limits.max_header_bytes {
        return Err(Rejection::HeadersTooLarge);
    }
    path(parts)
}

/// Origin form over HTTP/1, and a path in normal form.
pub fn path(parts: &Parts) -> Result<NormalPath<'_>, Rejection> {
    if parts.version != Version::HTTP_2 && parts.uri.scheme().is_some() {
        return Err(Rejection::NotNormal);
    }
    check_path(parts.uri.path()).map_err(|_| Rejection::NotNormal)
}
