//! The credential kinds, one module each, behind [`crate::auth::Kind`]:
//! native signed URLs (docs/reference.md: Signed URLs) with path tokens, JWTs from a header,
//! the query or a cookie, cookies exchanged for a URL credential
//! (README: Cookies); and, for links minted for a CDN or for nginx, CloudFront signed
//! URLs and cookies, Akamai EdgeAuth tokens, Cloud CDN signed URLs and
//! cookies, and nginx `secure_link` hashes (`cdn.rs` holds what those four
//! share).
//!
//! # A kind is one file and one line
//! Everything of a kind lives in `kinds/<kind>.rs`:
//! 1. its section of `routes[].auth`: a serde struct (`deny_unknown_fields`,
//!    `JsonSchema`), deserialised and compiled by its `Registered::compile`
//!    (errors reported with their YAML paths through `CompileContext`);
//! 2. its key format under `keys:`, if it has one (`Registered::key_format`);
//! 3. its verifier: `impl Kind` (where its credential is, what verifies it,
//!    what it grants), whose checks report to the tracer `tollgate explain`
//!    prints;
//! 4. its signer: `impl Signer` (`tollgate sign --format <format>`), with
//!    the options it reads;
//! 5. its schema: `Registered::schema` (the section's `JsonSchema`).
//!
//! A new kind adds exactly two lines outside its file: `pub mod <kind>;`
//! below, and `&<kind>::SECTION,` in [`REGISTRY`]. The config compiler, the
//! schema (`tollgate schema`), `tollgate sign` and `tollgate explain` know
//! kinds only through the registry; `tests/kinds.rs` checks that every
//! registered kind has a section in the schema, a signer whose links its
//! verifier accepts, and an explain trace. Stateful checks (use limits,
//! revocation) are a phase after verification, not part of any kind.

use crate::auth::section::Registered;

pub mod cdn;
pub mod cloud_cdn;
pub mod cloudfront;
pub mod edgeauth;
pub mod exchanged_cookie;
pub mod hmac;
pub mod jwt;
pub mod path_token;
pub mod secure_link;
pub mod signed_url;

/// Every credential kind a route's `auth` can name, in the order a route's
/// kinds are asked for a credential.
pub static REGISTRY: &[&dyn Registered] = &[
    &signed_url::SECTION,
    &jwt::SECTION,
    &cloudfront::SECTION,
    &secure_link::SECTION,
    &edgeauth::SECTION,
    &cloud_cdn::SECTION,
];

/// The registered kind whose section (or `tollgate sign --format`) is `name`.
pub fn registered(name: &str) -> Option<&'static dyn Registered> {
    REGISTRY.iter().copied().find(|r| r.section() == name || r.signer().format() == name)
}
