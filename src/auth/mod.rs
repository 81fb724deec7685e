//! Credentials: find the one a request carries and verify it (the verify
//! phase, `proxy::verify`, calls [`authorize`]).
//!
//! # Credential kinds
//! Each kind of credential is one module in `kinds/` behind one small
//! interface, [`Kind`], which answers three questions:
//! - **where** is my credential in this request ([`Kind::find`] reports each
//!   one it sees as a [`Presented`], with the [`Carrier`] it came in), and
//!   what would be stripped: the query parameters it owns
//!   ([`Kind::query_params`]), its cookies ([`Kind::cookies`]), and per
//!   credential its carrier (the `Authorization` header, a path segment);
//! - **is it valid** for this method, path and time ([`Kind::verify`]);
//! - **what does it grant**: the [`Grant`] (claim headers to forward, the
//!   path segment a path token occupies, and the [`Facts`] the stateful
//!   stage after verification reads: the credential's id, subject, issue
//!   and expiry times).
//!
//! [`authorize`] is the one place that applies the rule "at most one
//! credential per request" (README: Bearer tokens): two credentials, of one kind or of
//! two, are refused as malformed rather than resolved by a precedence rule
//! a client could play against the upstream; a credential cookie counts
//! only when the request carries no header or URL credential.
//!
//! A kind is one file in `kinds/` plus one registration line (see
//! `kinds/mod.rs`): its config section, verifier, signer, explain trace and
//! schema. `section.rs` and `sign.rs` are how the config compiler and
//! `tollgate sign` reach a kind. Stateful checks (use limits, revocation)
//! are a phase after verification, not part of a kind.

pub mod cache;
pub mod cookie;
pub mod error;
pub mod grant;
pub mod jwks;
pub mod keyfile;
pub mod keys;
pub mod kind;
pub mod kinds;
pub mod policy;
pub mod query;
pub mod section;
pub mod sign;

pub use cache::{CacheKey, CacheSettings, Verdict, Verified, VerifyCache, unix_now};
pub use error::{AuthError, Carrier};
pub use grant::{Denial, Facts, Grant, Scope};
pub use kind::*;
pub use policy::{Choice, RouteAuth, TooManyParams, authorize, choose};
