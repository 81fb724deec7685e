//! What a verified credential grants ([`Grant`], [`Scope`]) and states
//! about itself ([`Facts`]), and a refusal ([`Denial`]): the values the
//! phases after verification read. A leaf of `auth`.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use super::error::{AuthError, Carrier};

/// What a credential grants, decoded: one path, or everything under a
/// prefix (ending in `/`). An exchanged cookie grants exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Path(Box<str>),
    Prefix(Box<str>),
}

impl Scope {
    /// Whether the decoded `path` lies in the scope.
    pub fn covers(&self, path: &str) -> bool {
        match self {
            Scope::Path(p) => **p == *path,
            Scope::Prefix(p) => path.starts_with(&**p),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Path(p) => write!(f, "the path {p:?}"),
            Scope::Prefix(p) => write!(f, "everything under {p:?}"),
        }
    }
}

/// A verified request.
#[derive(Debug, Clone)]
pub struct Grant {
    pub carrier: Carrier,
    /// Headers to add upstream (forwarded claims).
    pub headers: Arc<[(HeaderName, HeaderValue)]>,
    /// Bytes of the raw path the credential occupies (`/<segment>`),
    /// removed before forwarding.
    pub path_span: Option<Range<usize>>,
    /// What the credential grants (for cookie exchange), when known.
    pub scope: Option<Scope>,
    /// The key that verified it, `<kind>:<key id>` (for cookie exchange:
    /// the cookie names it, and dies with it), when known.
    pub key: Option<Arc<str>>,
    /// What the use-limit and revocation stage (and the cookie exchange's
    /// expiry) needs to know.
    pub facts: Facts,
}

impl Grant {
    /// A grant that forwards nothing of its own.
    pub fn plain(carrier: Carrier) -> Self {
        Grant {
            carrier,
            headers: Arc::from(Vec::new()),
            path_span: None,
            scope: None,
            key: None,
            facts: Facts::default(),
        }
    }
}

/// Facts a verified credential states about itself, for the stage after
/// verification (use limits and revocation, README: One-time and limited links). Never logged: an id
/// or a subject may be personal data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The credential's id: a JWT's `jti` (a string), a signed URL's `jti`
    /// parameter on routes that read it.
    pub id: Option<Arc<str>>,
    /// A JWT's `sub` (a string).
    pub subject: Option<Arc<str>>,
    /// A JWT's `iat`, unix seconds.
    pub issued_at: Option<u64>,
    /// The credential's expiry, unix seconds.
    pub expires_at: Option<u64>,
    /// A digest of the credential's bytes, on routes that count
    /// credentials without an id (share detection).
    pub fingerprint: Option<[u8; 32]>,
}

/// A refused request; `carrier` is known when a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial {
    pub error: AuthError,
    pub carrier: Option<Carrier>,
}

impl From<AuthError> for Denial {
    fn from(error: AuthError) -> Self {
        Denial { error, carrier: None }
    }
}
