//! The object-store leg of the pipeline: path → key, SigV4, and S3's
//! answers retold as tollgate's (see `upstream::s3` for the invariants).

use std::time::{Duration, SystemTime};

use http::header::CONTENT_RANGE;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderName, Response};
use http_body_util::{BodyExt, Limited};

use super::respond::Rejection;
use crate::auth::query::{decode_component, encode_strict, split_piece};
use crate::auth::{Carrier, Grant};
use crate::metrics::UpstreamErrorKind;
use crate::routes::Route;
use crate::upstream::UpstreamError;
use crate::upstream::pool::UpstreamBody;
use crate::upstream::s3::{FORWARDED_PARAMS, S3Error, S3Target};

/// Largest S3 error body read to find its `<Code>`.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The object path for a request, with the response overrides a signed URL
/// bound; every other parameter (and all of them for tokens) is dropped.
pub fn target(
    s3: &S3Target,
    prefix: &str,
    decoded_path: &str,
    raw_query: &str,
    grant: Option<&Grant>,
) -> Result<PathAndQuery, Rejection> {
    let rest = decoded_path.strip_prefix(prefix).unwrap_or_default();
    let key = format!("{}{rest}", s3.key_prefix);
    if key.is_empty() {
        // An empty key would address the bucket itself (a listing).
        return Err(Rejection::NoRoute);
    }
    let mut target = s3.object_path(&key);
    if grant.is_some_and(|g| g.carrier == Carrier::SignedUrl) {
        // Re-encoded strictly, as the signed URL's canonical query had them:
        // the bytes S3 canonicalises are the bytes tollgate verified.
        let mut first = true;
        for piece in raw_query.split('&') {
            let (name, value) = split_piece(piece);
            let (Ok(name), Ok(value)) = (decode_component(name), decode_component(value)) else { continue };
            if FORWARDED_PARAMS.iter().any(|p| p.as_bytes() == &*name) {
                target.push(if first { '?' } else { '&' });
                encode_strict(&name, &mut target);
                target.push('=');
                encode_strict(&value, &mut target);
                first = false;
            }
        }
    }
    PathAndQuery::try_from(target).map_err(|_| Rejection::NotNormal)
}

/// Signs the head for the bucket; a failure is a deployment fault.
pub fn sign(s3: &S3Target, route: &Route, parts: &mut Parts) -> Result<(), Rejection> {
    s3.sign(parts, SystemTime::now()).map_err(|e| {
        tracing::error!(route = %route.name, error = %e, "Cannot sign the object-store request");
        Rejection::Upstream(UpstreamError::Failed(UpstreamErrorKind::Credentials))
    })
}

/// Passes successful answers on (without S3's internal headers) and retells
/// errors without their XML, unless the upstream exposes them.
pub async fn response(
    s3: &S3Target,
    route: &Route,
    mut resp: Response<UpstreamBody>,
) -> Result<Response<UpstreamBody>, Rejection> {
    let status = resp.status();
    // 2xx and 304 are the object; any other 3xx (PermanentRedirect to
    // another region) is a deployment fault and names the bucket.
    if status.is_success() || status == http::StatusCode::NOT_MODIFIED || s3.expose_errors {
        let internal: Vec<HeaderName> = resp
            .headers()
            .keys()
            .filter(|n| n.as_str().starts_with("x-amz-") && !n.as_str().starts_with("x-amz-meta-"))
            .cloned()
            .collect();
        for name in internal {
            resp.headers_mut().remove(name);
        }
        return Ok(resp);
    }
    let content_range = resp.headers().get(CONTENT_RANGE).cloned();
    let read = Limited::new(resp.into_body(), MAX_ERROR_BODY).collect();
    let body = match tokio::time::timeout(Duration::from_secs(5), read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => bytes::Bytes::new(),
    };
    match crate::upstream::s3::classify_error(status, &body) {
        S3Error::Client(status, code) => Err(Rejection::Relayed { status, code, content_range }),
        S3Error::Credentials => {
            tracing::error!(
                route = %route.name,
                bucket = %s3.bucket,
                status = status.as_u16(),
                "The object store refused tollgate's credentials or bucket: check the upstream's s3 settings"
            );
            Err(Rejection::Upstream(UpstreamError::Failed(UpstreamErrorKind::Credentials)))
        }
        S3Error::Unavailable => Err(Rejection::Upstream(UpstreamError::Failed(UpstreamErrorKind::Protocol))),
    }
}
