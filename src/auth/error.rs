//! Why a credential was refused, with the stable error codes of docs/reference.md: Answers.

use std::fmt;

/// Where a credential was found. Decides 401 versus 403 (docs/reference.md: Answers) and
/// which carrier the stripping stage removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Carrier {
    /// `exp`/`sig` query parameters.
    SignedUrl,
    /// `Authorization: Bearer`.
    Header,
    /// The route's token query parameter.
    Query,
    /// The route's credential cookie.
    Cookie,
    /// A path token segment (docs/reference.md: Path tokens).
    PathToken,
    /// A request header of the credential's own (EdgeAuth's `__token__`),
    /// not `Authorization`: refused with 403 like a URL credential.
    CustomHeader,
}

impl Carrier {
    /// Where the credential was, for the access log (`label`) and for
    /// people (`tollgate explain`).
    pub fn label(self) -> &'static str {
        match self {
            Carrier::SignedUrl => "signed_url",
            Carrier::Header => "header",
            Carrier::Query => "query",
            Carrier::Cookie => "cookie",
            Carrier::PathToken => "path_token",
            Carrier::CustomHeader => "custom_header",
        }
    }

    /// See [`Carrier::label`].
    pub fn describe(self) -> &'static str {
        match self {
            Carrier::SignedUrl => "query string",
            Carrier::Header => "Authorization header",
            Carrier::Query => "token query parameter",
            Carrier::Cookie => "Cookie header",
            Carrier::PathToken => "path (token segment)",
            Carrier::CustomHeader => "credential header",
        }
    }

    /// Credentials carried in the URL leak through Referer; answers to them get
    /// `Referrer-Policy: no-referrer`.
    pub fn in_url(self) -> bool {
        matches!(self, Carrier::SignedUrl | Carrier::Query | Carrier::PathToken)
    }

    /// Small integer used in cache keys.
    pub fn tag(self) -> u8 {
        self as u8
    }
}

/// A refused credential. `code()` is the stable string clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthError {
    /// The route is protected and the request carries no credential.
    MissingCredential,
    /// The request itself is malformed: a credential param twice, two
    /// credentials at once, `exp` not a plain decimal, an invalid `prefix`.
    Malformed,
    /// The signature does not verify, or the token cannot be parsed.
    BadSignature,
    /// Past `exp` (beyond the leeway for JWTs).
    Expired,
    /// Before `nbf`.
    NotYetValid,
    /// The `kid` names no key this route accepts.
    UnknownKey,
    /// Valid credential, but for another path.
    WrongResource,
    /// Valid signature for another method.
    WrongMethod,
    /// A required claim is missing or differs (iss, aud, custom claims,
    /// maximum lifetime), or a use-limited route got a credential without
    /// an id.
    ClaimMismatch,
    /// A use-limited credential is used up (README: One-time and limited links): 410.
    Replayed,
    /// The credential, or everything its subject was issued before a
    /// moment, was revoked (README: One-time and limited links).
    Revoked,
    /// The store a use limit or revocation needs did not answer in time:
    /// 503 with `Retry-After`.
    StoreUnavailable,
    /// The credential is used from more client networks than the route's
    /// `share_limit` allows: 403.
    Shared,
    /// As many downloads of the credential as its route's `stream_limit`
    /// allows are in flight: 429 with `Retry-After`.
    TooManyStreams,
    /// The credential has sent its route's `byte_quota`: 403.
    QuotaExceeded,
}

impl AuthError {
    /// Every variant, in `index()` order (for pre-registered metric handles).
    pub const ALL: [AuthError; 15] = [
        AuthError::MissingCredential,
        AuthError::Malformed,
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::UnknownKey,
        AuthError::WrongResource,
        AuthError::WrongMethod,
        AuthError::ClaimMismatch,
        AuthError::Replayed,
        AuthError::Revoked,
        AuthError::StoreUnavailable,
        AuthError::Shared,
        AuthError::TooManyStreams,
        AuthError::QuotaExceeded,
    ];

    /// Every code, in `index()` order (labels of the denial counters).
    pub const CODES: [&'static str; 15] = [
        "missing_credential",
        "malformed",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "unknown_key",
        "wrong_resource",
        "wrong_method",
        "claim_mismatch",
        "replayed",
        "revoked",
        "store_unavailable",
        "shared",
        "too_many_streams",
        "quota_exceeded",
    ];

    /// The stable error code of docs/reference.md: Answers.
    pub fn code(self) -> &'static str {
        Self::CODES[self.index()]
    }

    /// Position in [`AuthError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order() {
        for (i, e) in AuthError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        assert_eq!(AuthError::ALL.len(), AuthError::CODES.len());
        assert_eq!(AuthError::BadSignature.code(), "bad_signature");
        assert_eq!(AuthError::ClaimMismatch.code(), "claim_mismatch");
        assert_eq!(AuthError::StoreUnavailable.code(), "store_unavailable");
    }
}
