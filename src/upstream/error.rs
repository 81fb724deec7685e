//! Why an exchange with an upstream failed, before it is mapped to an
//! answer (`proxy::answers`).

use http::HeaderValue;

use crate::metrics::UpstreamErrorKind;

/// Why an exchange with the upstream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// Maps to 502 `upstream_unavailable`.
    Failed(UpstreamErrorKind),
    /// Maps to 504 `upstream_timeout`.
    Timeout,
    /// The client's body went over the route's limit while streaming (413).
    BodyTooLarge,
    /// The client's body broke off; nothing to answer.
    ClientAborted,
    /// The object store's own refusal (absent key, failed precondition,
    /// unsatisfiable range), to retell without its XML body.
    Relayed { status: http::StatusCode, code: &'static str, content_range: Option<HeaderValue> },
}
