//! What tollgate answers by itself, for every phase: the one table from
//! refusal to answer (docs/reference.md: Answers: status, stable error code,
//! `WWW-Authenticate`), the cookie exchange's redirect, and the body type
//! of every answer. Bodies of refusals are tiny fixed JSON: no addresses,
//! OS errors, paths or credentials ever reach a client.

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use crate::auth::{AuthError, Carrier, Denial};
use crate::body::BoxError;
use crate::metrics::{Outcome, UpstreamErrorKind};
use crate::splice::SpliceBody;
use crate::upstream::UpstreamError;
use crate::upstream::pool::UpstreamBody;

/// Why tollgate answered instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The request target is not in normal form, or not in origin form.
    NotNormal,
    /// The request target is longer than `limits.max_uri_bytes`.
    UriTooLong,
    /// The request head is larger than `limits.max_header_bytes`.
    HeadersTooLarge,
    NoRoute,
    /// With the route's `Allow` value.
    MethodNotAllowed(HeaderValue),
    /// Authentication refused; `bearer` when the route accepts bearer tokens.
    Auth {
        denial: Denial,
        bearer: bool,
    },
    /// The body is over the route's limit.
    TooLarge,
    /// An upload without the route's required `Content-Type`.
    UnsupportedMediaType,
    /// An upload to an object store without `Content-Length`.
    LengthRequired,
    /// The object store's own refusal (absent key, failed precondition,
    /// unsatisfiable range), retold without its XML body.
    Relayed {
        status: StatusCode,
        code: &'static str,
        content_range: Option<HeaderValue>,
    },
    Upstream(UpstreamError),
    /// A manifest the route should rewrite cannot be: 502.
    Manifest(ManifestRefusal),
}

/// Why a manifest could not be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestRefusal {
    /// Over the route's `manifests.max_size`.
    TooLarge,
    /// Compressed although `identity` was asked for.
    Encoded,
}

impl ManifestRefusal {
    pub fn code(self) -> &'static str {
        match self {
            ManifestRefusal::TooLarge => "manifest_too_large",
            ManifestRefusal::Encoded => "manifest_encoded",
        }
    }
}

impl From<UpstreamError> for Rejection {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Relayed { status, code, content_range } => {
                Rejection::Relayed { status, code, content_range }
            }
            other => Rejection::Upstream(other),
        }
    }
}

impl Rejection {
    /// Status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Rejection::NotNormal => (StatusCode::BAD_REQUEST, AuthError::Malformed.code()),
            Rejection::UriTooLong => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            Rejection::HeadersTooLarge => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large"),
            Rejection::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            Rejection::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Rejection::Auth { denial, .. } => (auth_status(*denial), denial.error.code()),
            Rejection::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Rejection::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Rejection::LengthRequired => (StatusCode::LENGTH_REQUIRED, "length_required"),
            Rejection::Relayed { status, code, .. } => (*status, code),
            Rejection::Upstream(UpstreamError::Timeout) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            Rejection::Upstream(UpstreamError::BodyTooLarge) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Rejection::Upstream(UpstreamError::ClientAborted) => (StatusCode::BAD_REQUEST, AuthError::Malformed.code()),
            Rejection::Upstream(UpstreamError::Failed(_)) => (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
            Rejection::Upstream(UpstreamError::Relayed { status, code, .. }) => (*status, code),
            Rejection::Manifest(why) => (StatusCode::BAD_GATEWAY, why.code()),
        }
    }

    /// How the request is counted.
    pub fn outcome(&self) -> Outcome {
        match self {
            Rejection::Relayed { .. } | Rejection::Upstream(UpstreamError::Relayed { .. }) => Outcome::Forwarded,
            Rejection::NotNormal
            | Rejection::LengthRequired
            | Rejection::UriTooLong
            | Rejection::HeadersTooLarge
            | Rejection::Upstream(UpstreamError::ClientAborted) => Outcome::Malformed,
            Rejection::NoRoute => Outcome::NoRoute,
            Rejection::MethodNotAllowed(_) => Outcome::MethodNotAllowed,
            Rejection::Auth { .. } => Outcome::Denied,
            Rejection::TooLarge
            | Rejection::UnsupportedMediaType
            | Rejection::Upstream(UpstreamError::BodyTooLarge) => Outcome::TooLarge,
            Rejection::Upstream(_) | Rejection::Manifest(_) => Outcome::UpstreamError,
        }
    }

    /// The upstream failure kind, when there is one.
    pub fn upstream_kind(&self) -> Option<UpstreamErrorKind> {
        match self {
            Rejection::Upstream(UpstreamError::Failed(kind)) => Some(*kind),
            Rejection::Upstream(UpstreamError::Timeout) => Some(UpstreamErrorKind::Timeout),
            _ => None,
        }
    }

    /// The answer.
    pub fn into_response(self) -> Response<ResponseBody> {
        let (status, code) = self.status_and_code();
        let mut resp = error_response(status, code);
        let headers = resp.headers_mut();
        match self {
            Rejection::MethodNotAllowed(allow) => {
                headers.insert(ALLOW, allow);
            }
            Rejection::Relayed { content_range: Some(range), .. } => {
                headers.insert(http::header::CONTENT_RANGE, range);
            }
            Rejection::Auth { denial, bearer } => {
                if let Some(v) = www_authenticate(denial, bearer) {
                    headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(v));
                }
                if matches!(denial.error, AuthError::StoreUnavailable | AuthError::TooManyStreams) {
                    headers.insert(RETRY_AFTER, HeaderValue::from_static(STORE_RETRY_AFTER));
                }
            }
            _ => {}
        }
        resp
    }
}

/// `303 See Other` to `location`, setting `cookie`: the answer of a cookie
/// exchange. Never stored, and the credential-bearing URL is not sent on.
pub fn see_other(location: &str, cookie: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(http::header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(cookie) {
        h.insert(http::header::SET_COOKIE, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(http::header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// Seconds a client is asked to wait after `store_unavailable`: long
/// enough for a Redis failover or restart, short enough for a person.
pub const STORE_RETRY_AFTER: &str = "5";

/// 401 for a missing credential or a bad bearer header token; 403 for a bad
/// URL or cookie credential and for a valid credential that does not grant
/// this request; 400 for a malformed one; 410 for a used-up one; 503 when
/// the store the route needs is unreachable.
fn auth_status(denial: Denial) -> StatusCode {
    match (denial.error, denial.carrier) {
        (AuthError::Malformed, _) => StatusCode::BAD_REQUEST,
        (AuthError::Replayed, _) => StatusCode::GONE,
        (AuthError::StoreUnavailable, _) => StatusCode::SERVICE_UNAVAILABLE,
        (AuthError::TooManyStreams, _) => StatusCode::TOO_MANY_REQUESTS,
        (AuthError::MissingCredential, _) => StatusCode::UNAUTHORIZED,
        (
            AuthError::WrongResource
            | AuthError::WrongMethod
            | AuthError::ClaimMismatch
            | AuthError::Shared
            | AuthError::QuotaExceeded,
            _,
        ) => StatusCode::FORBIDDEN,
        (_, Some(Carrier::Header)) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    }
}

fn www_authenticate(denial: Denial, bearer: bool) -> Option<&'static str> {
    match (denial.error, denial.carrier) {
        (AuthError::MissingCredential, _) if bearer => Some(r#"Bearer realm="tollgate""#),
        (AuthError::Malformed | AuthError::Replayed | AuthError::StoreUnavailable | AuthError::TooManyStreams, _) => {
            None
        }
        (
            AuthError::WrongResource | AuthError::WrongMethod | AuthError::ClaimMismatch | AuthError::Shared,
            Some(Carrier::Header),
        ) => Some(r#"Bearer error="insufficient_scope""#),
        (_, Some(Carrier::Header)) => Some(r#"Bearer error="invalid_token""#),
        _ => None,
    }
}

/// A JSON error answer: `{"error":"<code>"}`.
pub fn error_response(status: StatusCode, code: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(format!("{{\"error\":\"{code}\"}}\n")));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// What tollgate answers with.
pub enum ResponseBody {
    /// A small local answer (errors, probes, metrics).
    Full(Option<Bytes>),
    /// The upstream's body, streamed through.
    Upstream(UpstreamBody),
    /// A large upstream body, moved socket to socket (`crate::splice`).
    Spliced(SpliceBody),
    /// An answer whose delivery is recorded (download records).
    Observed(Box<crate::body::Observed<ResponseBody>>),
    /// An answer sent no faster than the route's `response_rate`.
    Paced(Box<crate::body::Paced<ResponseBody>>),
}

impl ResponseBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody::Full(Some(bytes.into()))
    }

    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ResponseBody::Spliced(body) => Pin::new(body).poll_frame(cx),
            ResponseBody::Observed(body) => Pin::new(&mut **body).poll_frame(cx),
            ResponseBody::Paced(body) => Pin::new(&mut **body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(data) => data.is_none(),
            ResponseBody::Upstream(body) => body.is_end_stream(),
            ResponseBody::Spliced(body) => body.is_end_stream(),
            ResponseBody::Observed(body) => body.is_end_stream(),
            ResponseBody::Paced(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            ResponseBody::Upstream(body) => body.size_hint(),
            ResponseBody::Spliced(body) => body.size_hint(),
            ResponseBody::Observed(body) => body.size_hint(),
            ResponseBody::Paced(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(error: AuthError, carrier: Option<Carrier>) -> Rejection {
        Rejection::Auth { denial: Denial { error, carrier }, bearer: true }
    }

    /// The table of docs/reference.md: Answers, row by row.
    #[test]
    fn status_table() {
        use AuthError::*;
        let rows: Vec<(Rejection, u16, &str)> = vec![
            (auth(MissingCredential, None), 401, "missing_credential"),
            (auth(BadSignature, Some(Carrier::Header)), 401, "bad_signature"),
            (auth(Expired, Some(Carrier::Header)), 401, "expired"),
            (auth(UnknownKey, Some(Carrier::Header)), 401, "unknown_key"),
            (auth(BadSignature, Some(Carrier::SignedUrl)), 403, "bad_signature"),
            (auth(BadSignature, Some(Carrier::CustomHeader)), 403, "bad_signature"),
            (auth(Expired, Some(Carrier::Query)), 403, "expired"),
            (auth(NotYetValid, Some(Carrier::Cookie)), 403, "not_yet_valid"),
            (auth(UnknownKey, Some(Carrier::SignedUrl)), 403, "unknown_key"),
            (auth(WrongResource, Some(Carrier::Header)), 403, "wrong_resource"),
            (auth(WrongMethod, Some(Carrier::SignedUrl)), 403, "wrong_method"),
            (auth(ClaimMismatch, Some(Carrier::Query)), 403, "claim_mismatch"),
            (auth(Malformed, None), 400, "malformed"),
            (auth(Malformed, Some(Carrier::SignedUrl)), 400, "malformed"),
            (Rejection::NotNormal, 400, "malformed"),
            (Rejection::NoRoute, 404, "no_route"),
            (Rejection::MethodNotAllowed(HeaderValue::from_static("GET")), 405, "method_not_allowed"),
            (Rejection::Upstream(UpstreamError::Failed(UpstreamErrorKind::Connect)), 502, "upstream_unavailable"),
            (Rejection::Upstream(UpstreamError::Failed(UpstreamErrorKind::Credentials)), 502, "upstream_unavailable"),
            (Rejection::Upstream(UpstreamError::Timeout), 504, "upstream_timeout"),
            (Rejection::TooLarge, 413, "payload_too_large"),
            (auth(Replayed, Some(Carrier::SignedUrl)), 410, "replayed"),
            (auth(Replayed, Some(Carrier::Header)), 410, "replayed"),
            (auth(Revoked, Some(Carrier::Header)), 401, "revoked"),
            (auth(Revoked, Some(Carrier::Query)), 403, "revoked"),
            (auth(Revoked, Some(Carrier::SignedUrl)), 403, "revoked"),
            (auth(StoreUnavailable, Some(Carrier::SignedUrl)), 503, "store_unavailable"),
            (auth(StoreUnavailable, Some(Carrier::Header)), 503, "store_unavailable"),
        ];
        for (rejection, status, code) in rows {
            let (s, c) = rejection.status_and_code();
            assert_eq!((s.as_u16(), c), (status, code), "{rejection:?}");
        }
    }

    #[test]
    fn www_authenticate_where_stated() {
        let get = |r: Rejection| {
            r.into_response().headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap_or_default().to_owned())
        };
        assert_eq!(get(auth(AuthError::MissingCredential, None)).as_deref(), Some(r#"Bearer realm="tollgate""#));
        assert_eq!(
            get(auth(AuthError::Expired, Some(Carrier::Header))).as_deref(),
            Some(r#"Bearer error="invalid_token""#)
        );
        assert_eq!(get(auth(AuthError::Expired, Some(Carrier::SignedUrl))), None);
        let signed_only =
            Rejection::Auth { denial: Denial { error: AuthError::MissingCredential, carrier: None }, bearer: false };
        assert_eq!(get(signed_only), None);
        assert_eq!(
            get(auth(AuthError::Revoked, Some(Carrier::Header))).as_deref(),
            Some(r#"Bearer error="invalid_token""#)
        );
        assert_eq!(get(auth(AuthError::Replayed, Some(Carrier::Header))), None);
        let busy = auth(AuthError::StoreUnavailable, Some(Carrier::Header)).into_response();
        assert_eq!(busy.headers().get(WWW_AUTHENTICATE), None);
        assert_eq!(busy.headers().get(RETRY_AFTER).map(HeaderValue::as_bytes), Some(STORE_RETRY_AFTER.as_bytes()));
        let r = Rejection::MethodNotAllowed(HeaderValue::from_static("GET, HEAD")).into_response();
        assert_eq!(r.headers().get(ALLOW).map(HeaderValue::as_bytes), Some(&b"GET, HEAD"[..]));
    }
}
